"""Which test runs which line of the mutated modules, and how long each test takes.

Run by the mutation runner as ``python -m tests.mutation.cover OUT.json FILE… -- PYTEST-ARGS…``:
pytest with coverage switched to each test's node id in turn. Lines run at
import time (module-level tables) belong to no test; the runner gives
their mutants every test that ran any line of the module.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import coverage
import pytest


class CoverPlugin:
    def __init__(self, files: list[str]) -> None:
        self.files = [str(Path(f).resolve()) for f in files]
        self.cov = coverage.Coverage(include=self.files, data_file=None, branch=False)
        self.durations: dict[str, float] = {}
        self.failed: set[str] = set()
        self.cov.start()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.cov.switch_context(item.nodeid)
        started = time.perf_counter()
        yield
        self.durations[item.nodeid] = round(time.perf_counter() - started, 3)
        self.cov.switch_context("")

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.failed.add(report.nodeid)

    def result(self, root: Path) -> dict:
        self.cov.stop()
        data = self.cov.get_data()
        lines: dict[str, dict[str, list[str]]] = {}
        for measured in data.measured_files():
            rel = str(Path(measured).resolve().relative_to(root))
            by_line = data.contexts_by_lineno(measured)
            lines[rel] = {str(n): sorted(c for c in ctxs if c) for n, ctxs in by_line.items()}
        return {"durations": self.durations, "failed": sorted(self.failed), "lines": lines}


def main(argv: list[str]) -> int:
    out, rest = argv[0], argv[1:]
    split = rest.index("--")
    files, pytest_args = rest[:split], rest[split + 1:]
    root = Path.cwd().resolve()
    plugin = CoverPlugin(files)
    code = pytest.main(pytest_args, plugins=[plugin])
    Path(out).write_text(json.dumps(plugin.result(root)), encoding="utf-8")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
