"""Slow and greedy clients against a real server on loopback: each kind of
stalled connection is dropped after its own timeout while normal requests
are served, and the connection caps refuse what is over them.

Timeouts are small here; assertions are "closed within a generous bound",
and "not before its timeout" (a server cannot close early out of slowness)."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from config import load_settings
from config.settings import ServerSettings
from edge.http_server import Limits

from .conftest import start_server
from .live import start_live
from .raw_http import closed_within, connect, get, request

BOUND = 10.0  # generous: the machine is shared and noisy
SHORT = 0.5


def test_settings_and_the_edge_share_their_defaults():
    server = ServerSettings()
    for f in dataclasses.fields(Limits):
        assert getattr(server, f.name) == f.default, f.name
    assert load_settings(None, env={}).server.header_timeout_s == Limits().header_timeout_s


async def test_stalled_requests_are_dropped_after_the_header_and_body_timeouts(tmp_path):
    # The idle timeout is long: only the header and body timeouts can close these.
    running = await start_server(tmp_path, **{"server.header_timeout_s": SHORT, "server.idle_timeout_s": 60.0,
                                              "server.body_timeout_s": SHORT})
    port = running.port
    try:
        clock = asyncio.get_running_loop().time
        stalled = []
        for first_bytes in (b"", b"GET /healthz HT", b"POST /notify/pay HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            b"Content-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<xml><return_code>"):
            reader, writer = await connect(port)
            since = clock()
            writer.write(first_bytes)
            stalled.append((writer, asyncio.create_task(closed_within(reader, BOUND, since))))
        # A normal client is served while the three hang.
        normal = await connect(port)
        status, _, body = await request(*normal, get("/healthz"))
        assert status == 200 and b'"ok": true' in body

        waits = await asyncio.gather(*(watch for _, watch in stalled))
        assert all(w > SHORT / 2 for w in waits), waits  # closed by a timeout, not at once
        # Still serving afterwards, on the kept-alive connection too.
        status, _, _ = await request(*normal, get("/healthz"))
        assert status == 200
        for w in (*(w for w, _ in stalled), normal[1]):
            w.close()
    finally:
        await running.stop(grace=1)


async def test_an_idle_kept_alive_connection_is_dropped_after_the_idle_timeout(tmp_path):
    # The header timeout is long: only the idle timeout can close it.
    running = await start_server(tmp_path, **{"server.header_timeout_s": 60.0, "server.idle_timeout_s": SHORT})
    try:
        reader, writer = await connect(running.port)
        for _ in range(2):  # keep-alive works: two requests on one connection
            status, headers, _ = await request(reader, writer, get("/healthz"))
            assert status == 200 and headers.get("connection", "").lower() != "close"
        waited = await closed_within(reader, BOUND)
        assert waited > SHORT / 2, waited
        writer.close()
    finally:
        await running.stop(grace=1)


async def test_a_fresh_connection_waits_for_the_header_timeout_not_the_idle_one(tmp_path):
    running = await start_server(tmp_path, **{"server.header_timeout_s": SHORT, "server.idle_timeout_s": 3600.0})
    try:
        reader, writer = await connect(running.port)
        await closed_within(reader, BOUND)
        writer.close()
    finally:
        await running.stop(grace=1)


async def test_the_connection_cap_refuses_the_one_over_it_and_spares_the_open_ones(tmp_path):
    running = await start_server(tmp_path, **{"server.max_connections": 3, "server.max_connections_per_ip": 3,
                                              "server.header_timeout_s": 60.0})
    port = running.port
    try:
        held = [await connect(port) for _ in range(3)]
        extra_reader, extra_writer = await connect(port)
        refusal = await asyncio.wait_for(extra_reader.read(), BOUND)  # answered and closed at once
        assert refusal.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), refusal
        assert b"Connection: close" in refusal and b"Retry-After: 1" in refusal
        assert running.server.cap.refused_total == 1
        extra_writer.close()

        status, _, _ = await request(*held[0], get("/healthz"))  # the open ones are untouched
        assert status == 200

        held[1][1].close()  # a slot frees when one closes
        for _ in range(200):
            if running.server.cap.open < 3:
                break
            await asyncio.sleep(0.05)
        fresh = await connect(port)
        status, _, _ = await request(*fresh, get("/healthz"))
        assert status == 200
        for _, w in (held[0], held[2], fresh):
            w.close()
    finally:
        await running.stop(grace=1)


async def _third_from_same_source_is_served(running, source: str = "127.0.0.1") -> bool:
    held = [await connect(running.port, source) for _ in range(2)]
    reader, writer = await connect(running.port, source)
    try:
        status, _, _ = await request(reader, writer, get("/healthz"))
        return status == 200
    except asyncio.IncompleteReadError as exc:
        assert exc.partial.startswith(b"HTTP/1.1 503 ") or exc.partial == b"", exc.partial
        return False
    finally:
        for _, w in (*held, (reader, writer)):
            w.close()


async def test_one_source_cannot_take_every_slot_in_live_mode(tmp_path):
    running = await start_live(tmp_path, **{"server.max_connections": 10, "server.max_connections_per_ip": 2})
    try:
        held = [await connect(running.port) for _ in range(2)]
        reader, writer = await connect(running.port)
        refusal = await asyncio.wait_for(reader.read(), BOUND)
        assert refusal.startswith(b"HTTP/1.1 503 "), refusal
        assert running.server.cap.refused_per_source == 1
        # Another source still gets in while 127.0.0.1 is at its share.
        other = await connect(running.port, "127.0.0.2")
        status, _, _ = await request(*other, get("/healthz"))
        assert status == 200
        for _, w in (*held, (reader, writer), other):
            w.close()
    finally:
        await running.stop(grace=1)


async def test_a_trusted_proxy_is_not_held_to_one_sources_share(tmp_path):
    running = await start_live(tmp_path, **{"server.max_connections": 10, "server.max_connections_per_ip": 2,
                                            "server.trusted_proxies": ["127.0.0.1"]})
    try:
        assert await _third_from_same_source_is_served(running)
    finally:
        await running.stop(grace=1)


async def test_sandbox_mode_exempts_loopback_from_the_per_source_share(tmp_path):
    running = await start_server(tmp_path, **{"server.max_connections": 10, "server.max_connections_per_ip": 2})
    try:
        assert await _third_from_same_source_is_served(running)
    finally:
        await running.stop(grace=1)


@pytest.mark.parametrize("key,value", [
    ("server.header_timeout_s", 0), ("server.idle_timeout_s", -1.0), ("server.body_timeout_s", 3601),
    ("server.max_connections", 0), ("server.max_connections_per_ip", 0), ("server.max_connections_per_ip", 1001),
])
def test_out_of_range_limits_are_refused_with_the_key_named(key, value):
    from config import SettingsError

    with pytest.raises(SettingsError) as info:
        load_settings(None, env={}, overrides={key: value})
    assert any(key in p for p in info.value.problems), info.value.problems
