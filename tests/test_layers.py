"""Imports point down the layers of DESIGN.md; this reads every module's imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"wxpay", "store", "service", "handlers", "config", "server", "web", "edge"}

# package -> first-party packages it may import
ALLOWED = {
    "config": set(),
    "edge": set(),
    "wxpay": {"wxpay", "edge"},  # the simulator's standalone entry point only: see below
    "store": {"store"},
    # edge/ is the bottom layer (Tornado and the standard library only): the
    # source rule every per-source limit shares lives there (edge/sources.py).
    "service": {"service", "store", "wxpay", "edge"},
    "handlers": {"handlers", "service", "store", "wxpay", "edge"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & FIRST_PARTY


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package):
    offenders = {}
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules in {package}/"
    for path in files:
        bad = imports_of(path) - ALLOWED[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_only_the_standalone_simulator_uses_the_edge():
    """``wxpay`` stays a library; the simulator's own entry point is a server process like ours."""
    users = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "wxpay").rglob("*.py") if "edge" in imports_of(p))
    assert users == ["wxpay/simulator/__main__.py"]


def _wxpay_module(path: Path, node: ast.ImportFrom) -> str | None:
    """The ``wxpay``-relative dotted name an import in the simulator points at, if any."""
    if node.level == 0:
        parts = node.module.split(".") if node.module else []
        return ".".join(parts[1:]) if parts[:1] == ["wxpay"] else None
    # wxpay/simulator/x.py is two levels below wxpay; wxpay/simulator/v3/x.py three.
    depth = len(path.relative_to(ROOT / "wxpay").parts) - 1
    if node.level <= depth:
        return None  # inside the simulator itself
    return node.module or ""


def test_simulator_does_not_use_our_client():
    """The simulator may share the codec, signing, keys and AES-GCM, never the client's own checks."""
    forbidden = {"client", "notify", "refund_crypto", "results", "transport", "oauth", "official",
                 "v3.notify", "v3.verification", "v3.models", "v3.err_codes", "v3.payloads"}
    for path in sorted((ROOT / "wxpay" / "simulator").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                name = _wxpay_module(path, node)
                if name is None:
                    continue
                names = {name} | {f"{name}.{alias.name}" if name else alias.name for alias in node.names}
                bad = names & forbidden
                assert not bad, f"{path.relative_to(ROOT)} imports wxpay.{sorted(bad)[0]}"
