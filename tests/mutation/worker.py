"""One mutation worker: a copy of the tree, and a fork per mutant.

``python -m tests.mutation.worker SHADOW`` imports pytest and its plugins
and the heavy third-party libraries once, then reads one job per line on
stdin (JSON: the file to replace, the mutated text, the tests, a timeout),
writes the mutant into its own copy of the tree (``SHADOW``), forks a
child that runs pytest there (fresh imports of every project module, so
the mutant is what runs, in-process and in any process a test starts), and
answers one JSON line per job. Nothing of the project is imported here:
only the child imports it, after the mutant is on disk.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

PRELOAD = (
    "asyncio", "sqlite3", "ssl", "json", "hashlib", "hmac", "secrets", "decimal", "email",
    "pytest", "_pytest.python", "tornado.web", "tornado.httpclient", "tornado.httpserver", "tornado.testing",
    "tornado.curl_httpclient", "cryptography.hazmat.primitives.asymmetric.rsa", "cryptography.x509",
    "cryptography.hazmat.primitives.ciphers.aead", "Crypto.Cipher.AES", "xmltodict", "pymongo",
    "prometheus_client", "segno", "mongomock", "hypothesis", "hypothesis.strategies",
)

FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # an optional library missing only costs time in each child
            pass
    for entry in importlib.metadata.entry_points(group="pytest11"):
        try:
            entry.load()
        except Exception:
            pass


def run_child(shadow: Path, tests: list[str], log_path: Path) -> None:
    """In the forked child: run pytest on the mutated tree; never returns."""
    try:
        os.setpgid(0, 0)  # the runner can end the child and every process it started
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(shadow)
        sys.path.insert(0, str(shadow))
        import pytest

        # The plugins were imported before pytest could rewrite their asserts: say so once, not as an error.
        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                            "--rootdir", str(shadow), *tests])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(99)


def _forget_bytecode(target: Path) -> None:
    """A mutant and the next one may have the same size and second: never let a .pyc stand for either."""
    cache = target.parent / "__pycache__"
    if cache.exists():
        for stale in cache.glob(target.stem + ".*.pyc"):
            stale.unlink(missing_ok=True)


def _run(shadow: Path, tests: list[str], log_path: Path, deadline: float) -> tuple[int | None, str]:
    """Fork a child running ``tests``; (its exit code, "timeout" or "")."""
    pid = os.fork()
    if pid == 0:
        run_child(shadow, tests, log_path)
    rc, status = None, ""
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(wait_status)
            break
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            status = "timeout"
            break
        time.sleep(0.02)
    try:  # a test may have started processes of its own: none outlives its mutant
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return rc, status


def run_job(shadow: Path, job: dict) -> dict:
    target = shadow / job["path"]
    original = target.read_bytes()
    _forget_bytecode(target)
    target.write_bytes(job["source"].encode("utf-8"))
    log_path = shadow / "build" / "mutant.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        deadline = started + job["timeout"]
        rc, status = _run(shadow, job["tests"], log_path, deadline)
        if rc == 4 and "not found" in log_path.read_text(encoding="utf-8", errors="replace"):
            # The mutant renamed parametrized tests (their ids come from the mutated constants):
            # run their files whole.
            files = list(dict.fromkeys(t.split("::")[0] for t in job["tests"]))
            rc, status = _run(shadow, files, log_path, deadline)
    finally:
        target.write_bytes(original)
        _forget_bytecode(target)
    log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    if status != "timeout":
        # 1: a test failed; 2: a test module could not even be collected (the mutant broke an import);
        # 4 with a conftest or a test module that could not be imported (pytest then finds "no collectors"
        # for the tests asked by id): the mutant broke importing the project, or a test's module-level setup.
        # Anything else (pytest's internal or usage errors, a crash of this runner) judges nothing.
        status = {0: "survived", 1: "killed", 2: "killed"}.get(rc, "error")
        if rc == 4 and ("ImportError while loading conftest" in log or "ERROR collecting" in log):
            status = "killed"
    failed = FAILED.findall(log)
    return {
        "id": job["id"], "status": status, "rc": rc, "seconds": round(time.monotonic() - started, 2),
        "killer": failed[0] if failed else None,
        "tail": log[-1500:] if status in ("killed", "error") and not failed else "",
    }


def main() -> int:
    shadow = Path(sys.argv[1]).resolve()
    preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        print(json.dumps(run_job(shadow, job)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
