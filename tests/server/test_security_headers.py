"""Every response carries nosniff and no Server header; live mode adds HSTS.

A crawl of every rule in the route table make_app builds (each with GET,
POST and HEAD), static files, and the errors Tornado writes itself, on a
real server in sandbox mode and in live mode. The answers the HTTP/1 layer
writes before any application runs are checked for what they can leak."""
from __future__ import annotations

import asyncio

import pytest

from .conftest import start_server
from .edge_probes import LEAKS, codes, crawl, header_problems
from .live import start_live
from .raw_http import connect


async def test_sandbox_every_route_static_file_and_error_has_the_headers(tmp_path):
    running = await start_server(tmp_path)
    try:
        responses = await crawl(running)
    finally:
        await running.stop(grace=1)
    assert len(responses) >= 3 * len(running.app.wildcard_router.rules)
    assert any(what.startswith("GET /_wechat/") for what, _ in responses)  # the mounted simulator
    assert {200, 302, 304, 401, 403, 404, 405, 413} <= codes(responses), sorted(codes(responses))
    assert header_problems(responses, hsts=False) == []


async def test_live_mode_adds_hsts_to_every_response(tmp_path):
    running = await start_live(tmp_path)
    try:
        responses = await crawl(running)
    finally:
        await running.stop(grace=1)
    assert {200, 302, 304, 401, 403, 404, 405, 413} <= codes(responses), sorted(codes(responses))
    assert header_problems(responses, hsts=True) == []


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
