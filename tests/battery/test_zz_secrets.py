"""Secrets: runs last in the battery (file order) and searches everything
the battery's servers logged, in-process and in their processes' log
files, plus every error body the battery received, for every secret the
battery configured: API keys, app secrets, cookie secrets, admin
passwords, merchant tokens, OAuth codes."""
from __future__ import annotations

from . import logwatch
from .results import record


def test_no_secret_in_any_log_line_or_error_body():
    lines = logwatch.all_lines()
    assert logwatch.SECRETS, "the battery registered no secrets to look for"
    leaks = [
        (what, line[:200])
        for line in lines
        for value, what in logwatch.SECRETS.items()
        if value in line
    ]
    kinds = sorted(set(logwatch.SECRETS.values()))
    if leaks:
        record("secrets", "no secret in logs or error bodies", f"FAIL: {len(leaks)} leak(s)", leaks=leaks[:10])
    assert not leaks, leaks[:10]
    record("secrets", "no secret in logs or error bodies", "pass", lines_scanned=len(lines),
           process_log_files=len(logwatch.FILES), secrets_checked=len(logwatch.SECRETS), kinds=kinds)
