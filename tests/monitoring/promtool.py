"""Debian's promtool (package ``prometheus``), or WXPAY_PROMTOOL.

`make test` installs it as root (.ci/ensure-promtool). Where it cannot be
had, a test that needs it skips with the reason, except in CI (``CI`` set),
where it fails: CI runs as root and must run these checks.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PROMTOOL = os.environ.get("WXPAY_PROMTOOL", "/usr/bin/promtool")
MISSING = (
    f"promtool is not at {PROMTOOL}. As root, `make test` installs Debian's prometheus package for it "
    "(.ci/ensure-promtool); by hand: apt-get install --no-install-recommends prometheus. "
    "Or point WXPAY_PROMTOOL at a promtool binary."
)


def promtool() -> str:
    """The promtool path; skips the calling test without it (fails in CI)."""
    if os.access(PROMTOOL, os.X_OK):
        return PROMTOOL
    if os.environ.get("CI"):
        pytest.fail(MISSING)
    pytest.skip(MISSING)


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60)
