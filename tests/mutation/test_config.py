"""The mutation run's configuration cannot rot: every module, function, test and
equivalent mutant it names still exists, and the mutator still makes the
mutants the run is for (the move tables' dropped and added states).

Fast (no mutant is run); ``make mutation`` runs them (docs/MUTATION.md).
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

from tests.mutation.config import EXCLUDED_TESTS, GROUPS, PINNED
from tests.mutation.equivalent import EQUIVALENT
from tests.mutation.mutants import iter_valid, mutants_of

ROOT = Path(__file__).resolve().parents[2]
TARGETS = [t for g in GROUPS for t in g.targets]


def _names(path: Path) -> set[str]:
    """Module-level names, functions and methods (``Class.method``) defined in ``path``."""
    names: set[str] = set()

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(prefix + node.name)
                if isinstance(node, ast.ClassDef):
                    walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.Assign):
                names.update(prefix + t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(prefix + node.target.id)

    walk(ast.parse(path.read_text(encoding="utf-8")).body, "")
    return names


@lru_cache(maxsize=1)
def _all_mutants() -> tuple:
    found = []
    for target in TARGETS:
        data = (ROOT / target.path).read_bytes()
        found += mutants_of(target.path, data, target.only)  # validity (the text parses) is the runner's check
    return tuple(found)


@pytest.mark.parametrize("target", TARGETS, ids=[t.path for t in TARGETS])
def test_every_target_and_every_name_it_picks_exists(target):
    path = ROOT / target.path
    assert path.is_file()
    assert not (set(target.only or ()) - _names(path))


def test_every_test_path_exists():
    paths = {p for g in GROUPS for p in g.tests} | set(EXCLUDED_TESTS)
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == []


def test_every_group_has_mutants_and_no_two_mutants_share_an_id():
    found = _all_mutants()
    assert len({m.id for m in found}) == len(found)
    for group in GROUPS:
        paths = {t.path for t in group.targets}
        assert sum(m.path in paths for m in found) > 20, group.name


def test_the_move_tables_are_mutated_states_dropped_and_added():
    data = (ROOT / "service/lifecycle.py").read_bytes()
    table = {(m.operator, m.scope, m.replacement) for m in mutants_of("service/lifecycle.py", data)}
    # The first example: a paid order allowed to move to failed, closed or back to prepaid.
    for target in ("FAILED", "CLOSED", "PREPAID"):
        assert ("add", f"ORDER_MACHINE[{target}]", "{CREATED, PREPAID, PAID}") in table
    assert ("add", "CHECKOUT_MACHINE[CLOSED]", "{OPEN, PAID}") in table
    assert ("drop", "ORDER_MACHINE[PAID]", "{CREATED, PREPAID, CLOSED}") in table  # failed -> paid refused
    assert ("drop", "REFUND_MACHINE[R_SUCCEEDED]", "{R_NEEDS_ATTENTION}") in table


def test_a_mutant_changes_only_its_own_text():
    data = (ROOT / "service/payments.py").read_bytes()
    found = mutants_of("service/payments.py", data)
    assert list(iter_valid(found, data)) == found  # each one still parses
    for m in found:
        mutated = m.apply(data)
        assert mutated[: m.start] == data[: m.start]
        assert mutated[m.start + len(m.replacement.encode()):] == data[m.end:]


def test_every_mutant_judged_equivalent_still_exists():
    keys = {m.key for m in _all_mutants()}
    assert sorted(set(EQUIVALENT) - keys) == []
    assert all(len(reason) > 20 for reason in EQUIVALENT.values())


def test_every_pinned_mutant_exists_and_its_test_is_defined():
    keys = {m.key for m in _all_mutants()}
    for key, test in PINNED.items():
        assert key in keys, key
        file, _, name = test.partition("::")
        assert f"def {name.split('[')[0]}(" in (ROOT / file).read_text(encoding="utf-8"), test
