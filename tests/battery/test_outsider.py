"""A second outside review: what an outsider (or a careless operator) could
still make the server spend after hardening 2, each pinned with its cost.

Real sandbox servers on loopback with their own SQLite files and the
simulated WeChat mounted in-process; calls to WeChat are the server's own
counts (``call_stats``, what /status shows), log lines are the records the
process's loggers emit at INFO and above (what an operator's log receives).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

from service.models import OAUTH_CODES, QUOTAS
from tests.server.browser import WECHAT_UA, Browser, as_json
from tests.server.journey import query_of
from tests.server.raw_http import closed_within, connect

from .harness import Client, start_server
from .results import record

SECTION = "outsider"
BOUND = 15.0  # generous: the machine is shared


def wechat_calls(running, endpoint: str) -> int:
    rows = {r["endpoint"]: r for r in running.services.call_stats.snapshot()}
    return rows.get(endpoint, {}).get("calls_total", 0)


class Lines(logging.Handler):
    """INFO-or-worse records: the lines an operator's log receives."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "Lines":
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger().removeHandler(self)

    def bytes(self) -> int:
        return sum(len(r.getMessage()) + 40 for r in self.records)  # + the time, level and logger name


async def sign_in_started(client: Client, checkout_id: str) -> tuple[Browser, str, str]:
    """A browser inside WeChat that opened the pay link: its signed state cookie and the state."""
    shopper = Browser(client.base, WECHAT_UA)
    r = await shopper.get(f"/pay/{checkout_id}")
    assert r.code == 302, r.body
    state = query_of(r.headers["Location"])["state"]
    return shopper, shopper.cookies["wx_oauth"], state


async def test_one_state_cookie_replayed_with_made_up_codes(tmp_path):
    """Before: each callback with a new made-up code and the same signed state
    cookie made a call to sns/oauth2/access_token and stored a claim (300
    callbacks: 300 calls, 300 claims)."""
    n = 100
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        checkout = await client.checkout(100)
        shopper, cookie, state = await sign_in_started(client, checkout["id"])
        stored_before = await client.store.count(OAUTH_CODES)
        codes: Counter = Counter()
        for i in range(n):
            shopper.cookies["wx_oauth"] = cookie
            page = await shopper.get("/oauth/callback?" + urlencode({"code": f"made-up-{i}", "state": state}))
            codes[page.code] += 1
        calls = wechat_calls(running, "sns/oauth2/access_token")
        stored = await client.store.count(OAUTH_CODES) - stored_before
        record(SECTION, "oauth-state-replayed-with-made-up-codes", "pass" if calls <= 1 and stored <= 2 else "fail",
               callbacks=n, wechat_calls=calls, claims_stored=stored, replies=dict(codes))
        assert calls == 1, calls  # the first code only
        assert stored == 2, stored  # its claim and its state's
        assert codes[403] == n
    finally:
        await running.stop(grace=1)


async def test_fresh_sign_ins_from_one_source_are_bounded(tmp_path):
    """A fresh state costs a page load, so one source could still make a
    WeChat call per two requests; the sign-in quota bounds it (default 60
    per 10 minutes)."""
    n = 90
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        checkout = await client.checkout(100)
        limit = running.services.settings.oauth.sign_ins_per_ip
        codes: Counter = Counter()
        for i in range(n):
            shopper, _, state = await sign_in_started(client, checkout["id"])
            page = await shopper.get("/oauth/callback?" + urlencode({"code": secrets.token_hex(8), "state": state}))
            codes[page.code] += 1
        calls = wechat_calls(running, "sns/oauth2/access_token")
        claims = await client.store.count(OAUTH_CODES)
        quota_docs = await client.store.count(QUOTAS)
        ok = calls == limit and codes[429] == n - limit
        record(SECTION, "oauth-sign-ins-per-source", "pass" if ok else "fail", sign_ins_tried=n,
               sign_ins_per_ip=limit, wechat_calls=calls, claims_stored=claims, quota_documents=quota_docs,
               replies=dict(codes))
        assert calls == limit, calls
        assert codes[429] == n - limit, codes
        assert claims == 2 * limit and quota_docs == 1
    finally:
        await running.stop(grace=1)


async def test_token_fetches_back_off_while_wechat_refuses(tmp_path):
    """Before: every request that needed the access_token while WeChat
    refused made its own cgi-bin/token call (200 requests, 200 calls against
    a quota of 2,000 a day)."""
    n = 200
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        await client.fault(endpoint="cgi-bin/token", kind="systemerror", count=None)
        codes: Counter = Counter()
        for _ in range(n):
            r = await client.merchant.get(f"/api/wx-config?{urlencode({'url': client.base + '/shop'})}",
                                          headers=client.auth)
            codes[(r.code, as_json(r)["code"])] += 1
        calls = wechat_calls(running, "cgi-bin/token")
        record(SECTION, "token-fetch-backoff-while-wechat-refuses", "pass" if calls == 1 else "fail",
               requests=n, wechat_token_calls=calls, replies={f"{s} {c}": k for (s, c), k in codes.items()})
        assert calls == 1, calls
        assert codes == {(502, "wechat_busy"): n}
    finally:
        await running.stop(grace=1)


async def test_client_error_lines_per_source_are_bounded(tmp_path):
    """Before: every refused request wrote a line, a refusal by a lockout two
    (the handler's and the access log's); malformed request lines and
    oversized bodies one each. 2,000 mixed refusals from one source."""
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        port = running.port
        sent = 0
        with Lines() as lines:
            for i in range(500):
                await client.merchant.get("/api/checkouts", headers={"Authorization": "Bearer wrong"})
                await client.merchant.get(f"/no/such/page/{i}")
                sent += 2
            for i in range(500):
                for raw in (b"GARBAGE\r\n\r\n",
                            b"POST /notify/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n"
                            b"Expect: 100-continue\r\n\r\n"):
                    reader, writer = await connect(port)
                    writer.write(raw)
                    await reader.read(65536)
                    writer.close()
                    sent += 1
            running.app.settings["log_budget"].flush()
        written = len(lines.records)
        summaries = [r for r in lines.records if "not written" in r.getMessage()]
        per_request = round(lines.bytes() / sent, 2)
        ok = written <= 40 and len(summaries) == 1
        record(SECTION, "client-error-lines-per-source", "pass" if ok else "fail", refused_requests=sent,
               lines_written=written, log_bytes_per_refused_request=per_request,
               summary=summaries[0].getMessage() if summaries else None)
        assert len(summaries) == 1, [r.getMessage() for r in lines.records][-5:]
        assert written <= 40, Counter(r.name for r in lines.records)  # 30 a minute per source, the summary
    finally:
        await running.stop(grace=1)


async def test_lockouts_count_an_ipv6_host_not_each_of_its_addresses(tmp_path):
    """Behind a trusted proxy, wrong tokens from 200 addresses of one IPv6
    /64 (one host's block): before, each address had its own 20 free tries
    (200 evaluated, no 429)."""
    running = await start_server(tmp_path, **{"server.trusted_proxies": ["127.0.0.1/32"]})
    try:
        client = Client(running)
        codes: Counter = Counter()
        for i in range(1, 201):
            r = await client.merchant.get("/api/checkouts", headers={
                "Authorization": "Bearer wrong", "X-Forwarded-For": f"2001:db8:7:7::{i:x}"})
            codes[r.code] += 1
        # The same host in other spellings is the same source.
        for spelling in ("2001:DB8:7:7::1", "[2001:db8:7:7:0::2]:4711", "2001:db8:7:7::3%eth0"):
            r = await client.merchant.get("/api/checkouts", headers={
                "Authorization": f"Bearer {client.token}", "X-Forwarded-For": spelling})
            codes[f"right token as {spelling}: {r.code}"] += 1
        other = await client.merchant.get("/api/checkouts", headers={
            "Authorization": f"Bearer {client.token}", "X-Forwarded-For": "2001:db8:7:8::1"})
        ok = codes[401] == 20 and codes[429] == 180 and other.code == 200
        record(SECTION, "lockout-ipv6-rotation-in-one-64", "pass" if ok else "fail", wrong_tokens=200,
               evaluated=codes[401], refused_429=codes[429], another_64_served=other.code == 200,
               replies={str(k): v for k, v in codes.items()})
        assert codes[401] == 20 and codes[429] == 180, codes
        assert all(f": 429" in k for k in codes if isinstance(k, str)), codes
        assert other.code == 200
    finally:
        await running.stop(grace=1)


PIPELINED = b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 100  # 7 MB of answers, uncompressed


def pipeline(port: int, requests: bytes) -> socket.socket:
    """A client with a small receive window that sends ``requests`` at once."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", port))
    s.sendall(requests)
    s.setblocking(False)
    return s


async def test_a_client_that_never_reads_its_answers_is_dropped(tmp_path):
    """Before: a client pipelining requests with a tiny receive window and
    never reading kept its connection (and one answer in memory) open for
    ever, past every timeout, once the answers outgrew the kernel's socket
    buffers (here 100 x the 73 KB API document): a few hundred such sockets
    filled the connection cap."""
    n = 10
    timeout = 1.0
    running = await start_server(tmp_path, **{"server.write_timeout_s": timeout, "server.idle_timeout_s": 3600.0,
                                              "server.header_timeout_s": 3600.0})
    try:
        client = Client(running)
        checkout = await client.checkout(100)
        edge = running.server
        baseline = edge.cap.open  # the merchant client's kept-alive connection
        socks = []
        since = time.monotonic()
        for _ in range(n):
            socks.append(pipeline(running.port, PIPELINED))
        deadline = time.monotonic() + BOUND
        while edge.dropped_stalled_writes < n and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        waited = round(time.monotonic() - since, 1)
        await asyncio.sleep(0.5)
        held = edge.cap.open - baseline  # connection slots (and descriptors) the stalled clients still hold
        record(SECTION, "slow-reader-pipelining-never-reads", "pass" if edge.dropped_stalled_writes >= n else "fail",
               connections=n, write_timeout_s=timeout, dropped=edge.dropped_stalled_writes,
               still_open=held, seconds_to_drop_all=waited)
        for s in socks:
            s.close()
        assert edge.dropped_stalled_writes >= n and held == 0, (edge.dropped_stalled_writes, held)
        assert waited >= timeout
        # A reader that reads is served as usual meanwhile and afterwards.
        r = await client.merchant.get(f"/pay/{checkout['id']}")
        assert r.code == 200
    finally:
        await running.stop(grace=1)


async def test_a_slow_but_reading_client_is_not_dropped(tmp_path):
    """The write timeout is about progress: a client that reads slowly keeps its connection."""
    running = await start_server(tmp_path, **{"server.write_timeout_s": 2.0})
    try:
        s = pipeline(running.port, PIPELINED)
        got = 0
        for _ in range(80):  # 4 s (two write timeouts) reading what its 1 KiB window lets through, every 50 ms
            await asyncio.sleep(0.05)
            try:
                got += len(s.recv(32768))
            except BlockingIOError:
                pass
        assert running.server.dropped_stalled_writes == 0
        assert got > 20_000  # about 10 KB/s: slow, but moving
        s.close()
    finally:
        await running.stop(grace=1)


async def test_the_sandbox_simulator_speaks_v3_and_bounds_its_faults(tmp_path):
    """Before: every /_wechat/v3/ call in sandbox was 401 (no APIv3 key) though
    the README offers the V3 keys; 20,000 posted faults took 14 MB and were
    looked through on every simulated call."""
    from tests.simulator.v3_server import V3Merchant
    from wxpay.simulator.faults import MAX_FAULTS

    running = await start_server(tmp_path)
    try:
        client = Client(running)
        reply = await V3Merchant(client.sim_base, time.time).order("native", "batteryv3order1")
        codes: Counter = Counter()
        for _ in range(5):
            r = await client.sim("POST", "faults", [{"endpoint": "pay/orderquery", "kind": "latency"}] * 50)
            codes[r.code] += 1
        kept = len(as_json(await client.sim("GET", "faults"))["faults"])
        await client.clear_faults()
        ok = reply.status == 200 and kept == MAX_FAULTS
        record(SECTION, "sandbox-simulator-v3-and-bounded-faults", "pass" if ok else "fail",
               v3_order_status=reply.status, fault_posts=dict(codes), faults_kept=kept, max_faults=MAX_FAULTS)
        assert reply.status == 200, reply.body
        assert kept == MAX_FAULTS and codes == {200: 2, 400: 3}
    finally:
        await running.stop(grace=1)


def test_settings_of_the_limits_at_their_edges():
    """What a careless operator may set: each limit's 0, 1 and beyond its
    maximum. Before, ``server.max_body_bytes`` had no maximum (one 100 MB
    body took the process from 60 MB to 485 MB)."""
    from config import SettingsError, load_settings

    cases = {
        "server.max_body_bytes": (1023, 1024, 1 << 20, (1 << 20) + 1),
        "server.write_timeout_s": (0, 0.1, 3600, 3601),
        "server.header_timeout_s": (0, 0.1, 3600, 3601),
        "server.max_connections": (0, 1, 100_000),
        "oauth.sign_ins_per_ip": (-1, 0, 1, 10**6),
        "oauth.sign_ins_per_ip_window_s": (0, 1, 86400, 86401),
        "checkout.max_orders": (0, 1, 100, 101),
        "checkout.orders_per_ip": (-1, 0, 1),
        "notify.refused_per_minute": (0, 1, 1_000_000, 1_000_001),
        "audit.retention_days": (0, 1, 3650, 3651),
    }
    outcome: dict[str, dict[str, str]] = {}
    for name, values in cases.items():
        outcome[name] = {}
        for value in values:
            overrides = {name: value}
            if name == "server.max_connections":
                overrides["server.max_connections_per_ip"] = max(1, min(value, 200))
            try:
                load_settings(None, env={}, overrides=overrides)
                outcome[name][str(value)] = "accepted"
            except SettingsError:
                outcome[name][str(value)] = "refused"
    expected_refused = {("server.max_body_bytes", "1023"), ("server.max_body_bytes", str((1 << 20) + 1)),
                        ("server.write_timeout_s", "0"), ("server.write_timeout_s", "3601"),
                        ("server.header_timeout_s", "0"), ("server.header_timeout_s", "3601"),
                        ("server.max_connections", "0"), ("oauth.sign_ins_per_ip", "-1"),
                        ("oauth.sign_ins_per_ip_window_s", "0"), ("oauth.sign_ins_per_ip_window_s", "86401"),
                        ("checkout.max_orders", "0"), ("checkout.max_orders", "101"), ("checkout.orders_per_ip", "-1"),
                        ("notify.refused_per_minute", "0"), ("notify.refused_per_minute", "1000001"),
                        ("audit.retention_days", "0"), ("audit.retention_days", "3651")}
    refused = {(n, v) for n, got in outcome.items() for v, o in got.items() if o == "refused"}
    record(SECTION, "settings-of-the-limits-at-their-edges", "pass" if refused == expected_refused else "fail",
           **{n: ", ".join(f"{v}: {o}" for v, o in got.items()) for n, got in outcome.items()})
    assert refused == expected_refused, refused ^ expected_refused
