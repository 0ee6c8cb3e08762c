"""Imports point down the layers of DESIGN.md; this reads every module's imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"wxpay", "store", "service", "handlers", "config", "server", "web", "edge", "wiring"}

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
    "wiring": {"wiring", "config", "edge", "handlers", "service", "store", "wxpay"},
}
# Everything but the tests, the benchmarks and the simulator itself.
CORE = ("server.py", "config", "edge", "handlers", "service", "store", "wiring", "wxpay")


def modules_imported(path: Path) -> set[str]:
    """Every module name ``path`` imports, relative ones resolved (``from a.b import c`` gives a.b and a.b.c)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            if module:
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    """The first-party packages ``path`` imports from outside its own package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & FIRST_PARTY


def core_files() -> list[Path]:
    files: list[Path] = []
    for name in CORE:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [p for p in files if (ROOT / "wxpay" / "simulator") not in p.parents]


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


def test_the_service_layer_knows_no_http_library():
    """Services return verdicts and domain errors; HTTP is the handlers' (and edge/'s)."""
    users = {}
    for path in sorted((ROOT / "service").rglob("*.py")):
        web = sorted(m for m in modules_imported(path) if m.split(".")[0] in ("tornado", "http", "urllib3", "requests",
                                                                             "httpx", "aiohttp"))
        if web:
            users[str(path.relative_to(ROOT))] = web
    assert users == {}


def test_only_the_sandbox_wiring_knows_the_simulator():
    """Services and handlers know only that a simulated WeChat is mounted; one module mounts it."""
    users = sorted(
        str(p.relative_to(ROOT)) for p in core_files()
        if any(m == "wxpay.simulator" or m.startswith("wxpay.simulator.") for m in modules_imported(p))
    )
    assert users == ["wiring/sandbox.py"]
