"""Probes of the HTTP edge shared by tests/server and the battery: a crawl of
every route for the security headers, and hostile values sent where they
can reach a log line. Each check returns problems (empty: all good)."""
from __future__ import annotations

import base64
import re
from typing import Any

import tornado
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

import server
from edge.headers import HSTS
from edge.log_lines import CONTINUATION
from wxpay.signing import sign
from wxpay.simulator import demo

from .browser import WECHAT_UA
from .conftest import API_TOKEN
from .raw_http import connect, request

# --- headers ------------------------------------------------------------------

SAMPLES = ("robots.txt", "favicon.ico", "pay.js", "bridge.js", "co_" + "0" * 24, "x")
LEAKS = ("tornado", tornado.version, f"/{server.VERSION}")


def sample_paths(app: Any) -> list[str]:
    """One path per route, with arguments its pattern accepts."""
    paths = []
    for rule in app.wildcard_router.rules:
        matcher = rule.matcher
        groups = matcher.regex.groups
        for value in SAMPLES:
            path = matcher.reverse(*([value] * groups))
            if matcher.regex.match(path.partition("?")[0] if groups else path) or not groups:
                break
        paths.append(path)
    return paths


async def crawl(running: server.Running) -> list[tuple[str, HTTPResponse]]:
    base = f"http://127.0.0.1:{running.port}"
    client = AsyncHTTPClient(force_instance=True)
    checkout, _ = await running.services.checkouts.create({"amount_fen": 100, "description": "headers"})
    requests: list[tuple[str, str, dict, bytes | None]] = []
    for path in sample_paths(running.app):
        requests += [("GET", path, {}, None), ("POST", path, {}, b"{}"), ("HEAD", path, {}, None)]
    requests += [
        ("GET", "/static/pay.js", {}, None),
        ("GET", "/static/style.css", {}, None),
        ("GET", "/static/no-such-file.js", {}, None),
        ("GET", "/no/such/page", {}, None),                      # the default handler's 404
        ("PUT", "/healthz", {}, b"x"),                            # Tornado's 405
        ("DELETE", "/api/checkouts", {}, None),
        ("POST", f"/pay/{checkout.id}/prepay", {}, b"{}"),        # XSRF 403
        ("GET", f"/pay/{checkout.id}", {"User-Agent": WECHAT_UA}, None),  # redirect to OAuth
        ("GET", f"/pay/{checkout.id}/status", {}, None),
        ("POST", "/notify/pay", {"Content-Type": "text/xml"}, b"<xml>" + b"a" * 100_000 + b"</xml>"),  # 413
        ("GET", "/status", {"Authorization": "Basic bm90OnJpZ2h0"}, None),  # 401
    ]
    out = []
    for method, path, headers, body in requests:
        r = await client.fetch(base + path, method=method, headers=headers, body=body, raise_error=False,
                               follow_redirects=False, allow_nonstandard_methods=True, request_timeout=30)
        out.append((f"{method} {path}", r))
    etag = next(r for what, r in out if what == "GET /static/pay.js").headers["Etag"]
    r = await client.fetch(base + "/static/pay.js", headers={"If-None-Match": etag}, raise_error=False)
    out.append(("GET /static/pay.js (If-None-Match)", r))
    client.close()
    return out


def header_problems(responses: list[tuple[str, HTTPResponse]], *, hsts: bool) -> list[str]:
    """What is wrong with the crawl's responses: a missing nosniff, a Server header, a version, HSTS."""
    problems = []
    for what, r in responses:
        h = r.headers
        if r.code == 599:
            problems.append(f"{what}: no answer ({r.error})")
            continue
        if h.get("X-Content-Type-Options") != "nosniff":
            problems.append(f"{what} ({r.code}): no nosniff")
        if "Server" in h:
            problems.append(f"{what} ({r.code}): Server: {h['Server']}")
        if any(leak in value.lower() for value in h.values() for leak in LEAKS):
            problems.append(f"{what} ({r.code}): a version in {dict(h)}")
        if hsts and h.get("Strict-Transport-Security") != HSTS:
            problems.append(f"{what} ({r.code}): no HSTS")
        if not hsts and "Strict-Transport-Security" in h:
            problems.append(f"{what} ({r.code}): HSTS outside live mode")
        if r.code >= 400 and r.body and any(leak in r.body.decode("utf-8", "replace").lower() for leak in LEAKS):
            problems.append(f"{what} ({r.code}): a version in the error page")
    return problems


def codes(responses: list[tuple[str, HTTPResponse]]) -> set[int]:
    return {r.code for _, r in responses}


# --- log lines ----------------------------------------------------------------

EVIL = "\r\n2026-01-01 00:00:00,000 INFO wxpay_server: FORGED-{}\u2028\u202e\x1b[31m\x85"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


async def send_hostile_values(port: int, token: str = API_TOKEN, api_key: str = demo.API_KEY) -> None:
    """CR/LF, ESC, U+2028, bidi overrides and C1 controls in every place a request
    carries text; the markers ``FORGED-<where>`` show which reached a log."""
    base = f"http://127.0.0.1:{port}"
    client = AsyncHTTPClient(force_instance=True)
    fetch = lambda path, **kw: client.fetch(base + path, raise_error=False, **kw)  # noqa: E731
    quoted = EVIL.replace("\r", "%0d").replace("\n", "%0a").replace("\x1b", "%1b").replace(" ", "%20")
    quoted = quoted.replace("\u2028", "%e2%80%a8").replace("\u202e", "%e2%80%ae").replace("\x85", "%c2%85")
    await fetch("/pay/co_" + quoted.format("PATH"))
    await fetch("/api/checkouts/" + quoted.format("APIPATH"), headers={"Authorization": f"Bearer {token}"})
    await fetch("/healthz?" + quoted.format("QNAME") + "=1&q=" + quoted.format("QVALUE"))
    await fetch("/api/checkouts", method="POST", headers={"Authorization": f"Bearer {token}"},
                body=('{"amount_fen": 100, "description": "tea", "%s": 1}'
                      % EVIL.format("JSON").replace("\r", "\\r").replace("\n", "\\n").replace("\x1b", "\\u001b")
                      ).encode())
    # XML allows CR/LF as references. Signed with the server's key, so the notify
    # proves its origin and its unknown out_trade_no is logged (a forged one is only counted).
    notify_no = "a&#13;&#10;FORGED-NOTIFY&#x2028;&#x202e;&#x85;z"
    signed = sign({"return_code": "SUCCESS", "out_trade_no": "a\r\nFORGED-NOTIFY\u2028\u202e\x85z"}, api_key)
    await fetch("/notify/pay", method="POST", headers={"Content-Type": "text/xml"},
                body=(f"<xml><return_code>SUCCESS</return_code><out_trade_no>{notify_no}</out_trade_no>"
                      f"<sign>{signed}</sign></xml>").encode())
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


def log_problems(text: str) -> list[str]:
    """Physical lines that are neither a record's first line nor a marked continuation,
    and lines with a raw control, separator or bidi character."""
    problems = []
    for line in text.rstrip("\n").split("\n"):
        if not (RECORD_START.match(line) or line.startswith(CONTINUATION)):
            problems.append(f"not a record: {line!r}")
        elif RAW_CONTROL.search(line):
            problems.append(f"raw control: {line!r}")
    return problems
