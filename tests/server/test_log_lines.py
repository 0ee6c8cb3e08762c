"""Outsider-controlled values cannot forge a log line, through a real server.

The process's logging is set up exactly as ``wxpay-server`` sets it up
(edge.log_lines.configure, at DEBUG so every logger speaks), then hostile
values arrive in paths, query strings, headers, a JSON body, a notify body
and admin credentials. Every physical line written must be a record's own
first line or a marked continuation, with no raw control character."""
from __future__ import annotations

import io
import logging

from edge.log_lines import configure

from .conftest import start_server
from .edge_probes import log_problems, send_hostile_values


async def test_no_log_line_can_be_forged_from_outside(tmp_path):
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure(logging.DEBUG, out)
    try:
        running = await start_server(tmp_path, **{"server.trusted_proxies": ["127.0.0.1"]})
        try:
            await send_hostile_values(running.port)
        finally:
            await running.stop(grace=1)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = out.getvalue()
    assert text.count("\n") > 10
    assert log_problems(text) == []
    # The hostile values did reach the log (escaped), so the checks above saw them.
    for marker in ("JSON", "NOTIFY", "ADMIN", "PATH", "APIPATH", "UAESC"):
        assert f"FORGED-{marker}" in text, marker
    # The JSON field name is already escaped where it is quoted back (service/validation.printable).
    assert "\\r\\n2026-01-01 00:00:00,000 INFO wxpay_server: FORGED-JSON" in text
    assert "a\\r\\nFORGED-NOTIFY\\u2028\\u202e\\x85" in text
