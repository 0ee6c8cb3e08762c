"""The documented body limit (``server.max_body_bytes``) is the real one, and
a body over it is refused in JSON before the handler runs. Raw sockets on
loopback, so what Tornado would do on its own cannot hide behind a client."""
from __future__ import annotations

import asyncio
import json

import pytest

from .conftest import API_TOKEN, start_server

GOOD = json.dumps({"amount_fen": 100, "description": "Tea"}).encode()


def padded(size: int) -> bytes:
    return GOOD + b" " * (size - len(GOOD))


async def exchange(port: int, head: str, body: bytes = b"", *, chunks: list[bytes] | None = None) -> tuple[int, dict, bytes]:
    """Send one request; read the whole response until the server closes or Content-Length is met."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode("utf-8") + b"\r\n")
        if chunks is not None:
            for chunk in chunks:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        headers = {}
        while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        payload = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 10)
        return int(status_line.split()[1]), headers, payload
    finally:
        writer.close()


def post_head(path: str, length: int | str | None, *extra: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {API_TOKEN}",
             "Content-Type: application/json", *extra]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n"


async def count_checkouts(running) -> int:
    return len(await running.services.store.find("checkouts", {}, limit=0))


@pytest.mark.parametrize("limit", [2048, 65536])
async def test_limit_bytes_pass_and_one_more_is_413_in_json(tmp_path, limit):
    running = await start_server(tmp_path, **{"server.max_body_bytes": limit})
    try:
        status, _, body = await exchange(running.port, post_head("/api/checkouts", limit), padded(limit))
        assert status == 201, body
        status, headers, body = await exchange(running.port, post_head("/api/checkouts", limit + 1), padded(limit + 1))
        assert status == 413
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["code"] == "body_too_large" and str(limit) in json.loads(body)["message"]
        assert headers.get("connection") == "close"
        assert await count_checkouts(running) == 1
    finally:
        await running.stop(grace=1)


async def test_chunked_body_over_the_limit_is_413_in_json(tmp_path):
    running = await start_server(tmp_path, **{"server.max_body_bytes": 2048})
    try:
        status, _, body = await exchange(running.port, post_head("/api/checkouts", None, "Transfer-Encoding: chunked"),
                                         chunks=[GOOD, b" " * 100])
        assert status == 201, body
        status, _, body = await exchange(running.port, post_head("/api/checkouts", None, "Transfer-Encoding: chunked"),
                                         chunks=[GOOD] + [b" " * 1000] * 3)
        assert status == 413 and json.loads(body)["code"] == "body_too_large"
        assert await count_checkouts(running) == 1
    finally:
        await running.stop(grace=1)


async def test_expect_continue_is_refused_before_the_body_is_sent(tmp_path):
    running = await start_server(tmp_path)
    try:
        head = post_head("/api/checkouts", 10**9, "Expect: 100-continue")
        status, _, body = await exchange(running.port, head)  # no body: the answer must come anyway
        assert status == 413 and json.loads(body)["code"] == "body_too_large"
    finally:
        await running.stop(grace=1)


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "١٢", "99999999999999999999"])
async def test_malformed_content_length_is_400_in_json(tmp_path, length):
    running = await start_server(tmp_path)
    try:
        status, headers, body = await exchange(running.port, post_head("/api/checkouts", length), GOOD)
        assert status == 400, body
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["code"] == "malformed_request"
    finally:
        await running.stop(grace=1)


async def test_notify_over_the_limit_is_refused_before_parsing(tmp_path):
    running = await start_server(tmp_path)
    try:
        limit = running.settings.server.max_body_bytes
        head = "POST /notify/pay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n" \
               f"Content-Length: {limit + 1}\r\n"
        status, _, body = await exchange(running.port, head, b"<xml>" + b"A" * (limit - 11) + b"</xml>")
        assert status == 413 and json.loads(body)["code"] == "body_too_large"
    finally:
        await running.stop(grace=1)


async def test_the_server_still_serves_after_refusals(tmp_path):
    running = await start_server(tmp_path, **{"server.max_body_bytes": 2048})
    try:
        for _ in range(5):
            status, _, _ = await exchange(running.port, post_head("/api/checkouts", 1 << 20), b" " * (1 << 20))
            assert status == 413
        status, _, _ = await exchange(running.port, post_head("/api/checkouts", len(GOOD)), GOOD)
        assert status == 201
    finally:
        await running.stop(grace=1)
