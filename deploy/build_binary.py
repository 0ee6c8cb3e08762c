"""Build ``dist/wxpay-server``, the one-file executable, unless the one there is current.

``make binary`` runs this. PyInstaller takes most of a minute, so the result
is keyed on what goes into it: every source and data file the bundle holds,
the requirements files, the spec, and the exact versions of the Python and
of every distribution installed in the build environment. A second run with
the same inputs checks that the executable is the one the last build wrote
(its SHA-256) and returns at once; ``--force`` builds anyway.

Exit status: 0 built or current; 1 PyInstaller failed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "deploy" / "wxpay-server.spec"
DIST = ROOT / "dist"
BINARY = DIST / "wxpay-server"
WORK = ROOT / "build" / "pyinstaller"
STAMP = ROOT / "build" / "binary-inputs.json"

# What the bundle is made of (the packages setup.py lists, their data, the entry).
INPUTS = ("server.py", "wxpay", "store", "service", "handlers", "config", "edge", "web",
          "deploy/entry.py", "deploy/wxpay-server.spec", "deploy/build_binary.py",
          "requirements.txt", "requirements-build.txt")


def _files() -> list[Path]:
    found: list[Path] = []
    for name in INPUTS:
        path = ROOT / name
        if path.is_file():
            found.append(path)
        else:
            found.extend(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(found)


def inputs_digest() -> str:
    """SHA-256 over the bundle's inputs: file names and contents, the interpreter, installed versions."""
    h = hashlib.sha256()
    for path in _files():
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(sys.version.encode() + b"\0")
    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    h.update("\n".join(versions).encode())
    return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def current(digest: str) -> bool:
    """The executable there was built from exactly these inputs and not replaced since."""
    try:
        stamp = json.loads(STAMP.read_text())
        return stamp["inputs"] == digest and BINARY.is_file() and file_digest(BINARY) == stamp["binary"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build() -> int:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", str(DIST), "--workpath", str(WORK), str(SPEC)],
        cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if done.returncode != 0:
        print(f"build_binary: PyInstaller failed (exit {done.returncode})", file=sys.stderr)
        return 1
    size = BINARY.stat().st_size
    print(f"build_binary: {BINARY.relative_to(ROOT)} built in {time.monotonic() - started:.0f} s, "
          f"{size / 1e6:.1f} MB", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even if the executable is current")
    args = parser.parse_args(argv)
    digest = inputs_digest()
    if not args.force and current(digest):
        print(f"build_binary: {BINARY.relative_to(ROOT)} is current (inputs {digest[:12]})", flush=True)
        return 0
    STAMP.unlink(missing_ok=True)
    status = build()
    if status == 0:
        STAMP.parent.mkdir(parents=True, exist_ok=True)
        STAMP.write_text(json.dumps({"inputs": digest, "binary": file_digest(BINARY)}, indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
