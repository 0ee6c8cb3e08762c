"""Every response carries nosniff and no Server header; live mode adds HSTS.

A crawl of every rule in the route table make_app builds (each with GET,
POST and HEAD), static files, and the errors Tornado writes itself, on a
real server in sandbox mode and in live mode. The answers the HTTP/1 layer
writes before any application runs are checked for what they can leak."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tornado
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

import server
from edge.headers import HSTS

from .browser import WECHAT_UA
from .conftest import start_server
from .live import start_live
from .raw_http import connect

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


def assert_safe_headers(responses: list[tuple[str, HTTPResponse]], *, hsts: bool) -> None:
    for what, r in responses:
        assert r.code != 599, (what, r.error)
        h = r.headers
        assert h.get("X-Content-Type-Options") == "nosniff", (what, r.code, dict(h))
        assert "Server" not in h, (what, r.code)
        assert not any(leak in value.lower() for value in h.values() for leak in LEAKS), (what, dict(h))
        assert (h.get("Strict-Transport-Security") == HSTS) if hsts else "Strict-Transport-Security" not in h, what
        if r.code >= 400 and r.body:
            body = r.body.decode("utf-8", "replace").lower()
            assert not any(leak in body for leak in LEAKS), (what, body[:300])


def codes(responses: list[tuple[str, HTTPResponse]]) -> set[int]:
    return {r.code for _, r in responses}


async def test_sandbox_every_route_static_file_and_error_has_the_headers(tmp_path):
    running = await start_server(tmp_path)
    try:
        responses = await crawl(running)
    finally:
        await running.stop(grace=1)
    assert len(responses) >= 3 * len(running.app.wildcard_router.rules)
    assert any(what.startswith("GET /_wechat/") for what, _ in responses)  # the mounted simulator
    assert {200, 302, 304, 401, 403, 404, 405, 413} <= codes(responses), sorted(codes(responses))
    assert_safe_headers(responses, hsts=False)


async def test_live_mode_adds_hsts_to_every_response(tmp_path):
    running = await start_live(tmp_path)
    try:
        responses = await crawl(running)
    finally:
        await running.stop(grace=1)
    assert {200, 302, 304, 401, 403, 404, 405, 413} <= codes(responses), sorted(codes(responses))
    assert_safe_headers(responses, hsts=True)


@pytest.mark.parametrize("raw", [
    b"GET /pay/\x1b HTTP/1.1\r\nHost: x\r\n\r\n",                   # malformed request line
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x01b\r\n\r\n",  # a control in a header
    b"POST /notify/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n",  # over the body cap
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",                    # unknown version
])
async def test_the_http1_layers_own_answers_name_no_server(tmp_path, raw):
    running = await start_live(tmp_path)
    try:
        reader, writer = await connect(running.port)
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        await running.stop(grace=1)
    assert answer.startswith(b"HTTP/1.1 4"), answer
    text = answer.decode("latin-1").lower()
    assert "server:" not in text and not any(leak in text for leak in LEAKS), answer
