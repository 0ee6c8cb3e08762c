"""Outsider-controlled values cannot forge a log line, through a real server.

The process's logging is set up exactly as ``wxpay-server`` sets it up
(edge.log_lines.configure, at DEBUG so every logger speaks), then hostile
values arrive in paths, query strings, headers, a JSON body, a notify body
and admin credentials. Every physical line written must be a record's own
first line or a marked continuation, with no raw control character."""
from __future__ import annotations

import base64
import io
import logging
import re

from tornado.httpclient import AsyncHTTPClient

from edge.log_lines import CONTINUATION, configure

from .conftest import API_TOKEN, start_server
from .raw_http import connect, request

EVIL = "\r\n2026-01-01 00:00:00,000 INFO wxpay_server: FORGED-{}\u2028\u202e\x1b[31m\x85"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


async def send_hostile_values(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    client = AsyncHTTPClient(force_instance=True)
    fetch = lambda path, **kw: client.fetch(base + path, raise_error=False, **kw)  # noqa: E731
    quoted = EVIL.replace("\r", "%0d").replace("\n", "%0a").replace("\x1b", "%1b").replace(" ", "%20")
    quoted = quoted.replace("\u2028", "%e2%80%a8").replace("\u202e", "%e2%80%ae").replace("\x85", "%c2%85")
    await fetch("/pay/co_" + quoted.format("PATH"))
    await fetch("/api/checkouts/" + quoted.format("APIPATH"), headers={"Authorization": f"Bearer {API_TOKEN}"})
    await fetch("/healthz?" + quoted.format("QNAME") + "=1&q=" + quoted.format("QVALUE"))
    await fetch("/api/checkouts", method="POST", headers={"Authorization": f"Bearer {API_TOKEN}"},
                body=('{"amount_fen": 100, "description": "tea", "%s": 1}'
                      % EVIL.format("JSON").replace("\r", "\\r").replace("\n", "\\n").replace("\x1b", "\\u001b")
                      ).encode())
    notify_no = "a&#13;&#10;FORGED-NOTIFY&#x2028;&#x202e;&#x85;"  # XML allows CR/LF as references
    await fetch("/notify/pay", method="POST", headers={"Content-Type": "text/xml"},
                body=f"<xml><return_code>SUCCESS</return_code><out_trade_no>{notify_no}</out_trade_no></xml>".encode())
    user = "\r\nFORGED-ADMIN\u2028\x1b[0m".encode("utf-8")  # no ':' (it ends a Basic username)
    await fetch("/status", headers={"Authorization": "Basic " + base64.b64encode(user + b":pw").decode()})
    client.close()

    # Bytes no HTTP client library would send: straight onto a socket.
    raw = [
        b"GET /pay/\x1b[31mFORGED-RAWPATH HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: a\xe2\x80\xa8FORGED-UA\xc2\x85\xe2\x80\xae\r\n"
        b"X-Forwarded-For: 1.2.3.4\xe2\x80\xa8FORGED-XFF\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x1b[2JFORGED-UAESC\r\n\r\n",
    ]
    for message in raw:
        reader, writer = await connect(port)
        try:
            await request(reader, writer, message)
        finally:
            writer.close()


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
    lines = text.rstrip("\n").split("\n")
    assert len(lines) > 10
    for line in lines:
        assert RECORD_START.match(line) or line.startswith(CONTINUATION), line
    assert not RAW_CONTROL.search(text), [ln for ln in lines if RAW_CONTROL.search(ln)]
    # The hostile values did reach the log (escaped), so the checks above saw them.
    for marker in ("JSON", "NOTIFY", "ADMIN", "PATH", "APIPATH", "UAESC"):
        assert f"FORGED-{marker}" in text, marker
    assert "\\r\\n2026-01-01 00:00:00,000 INFO wxpay_server: FORGED-JSON\\u2028\\u202e\\x1b[31m\\x85" in text
    assert "a\\r\\nFORGED-NOTIFY\\u2028\\u202e\\x85" in text
