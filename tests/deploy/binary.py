"""The one-file executable: build it once per source state, run it with no Python around it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "dist" / "wxpay-server"


def build() -> Path:
    """``make binary``: a no-op when dist/wxpay-server was built from these very sources
    (deploy/build_binary.py keys it on their hash), a PyInstaller run otherwise."""
    # Not the options of a `make test ARGS=…` this may run under: make hands them down.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL")}
    done = subprocess.run(["make", "binary", "ARGS="], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert BINARY.is_file() and os.access(BINARY, os.X_OK)
    return BINARY


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no Python in reach: an empty PATH directory, no PYTHON*
    variables, a private TMPDIR (where the executable unpacks itself)."""
    empty = home / "empty-path"
    tmp = home / "tmp"
    empty.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    return {"PATH": str(empty), "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8", **extra}


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def mapped_files(pid: int) -> set[str]:
    """Every file the process has mapped (shared libraries, extension modules)."""
    files = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            files.add(parts[5].removesuffix(" (deleted)"))
    return files


def outside_python(path: str) -> bool:
    """Not a file of any Python on this machine: the build's venv and interpreter,
    this repository, Debian's (/usr/lib/python3*), nor any libpython."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(ROOT)}
    if any(path.startswith(f.rstrip("/") + "/") for f in folders):
        return False
    if path.startswith(("/usr/lib/python3", "/usr/local/lib/python3")):
        return False
    return not Path(path).name.startswith("libpython")
