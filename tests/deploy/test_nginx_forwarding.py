"""What deploy/nginx-site.conf hands the server, byte for byte.

Here the upstream is a recording Tornado server on loopback instead of
wxpay-server, so every header, the URI, the body and each upstream
connection can be seen exactly as the server would get them. The notify is
WeChat's own: the simulator places an APIv3 order and posts its signed,
encrypted notify to nginx's https URL (checking nginx's certificate), and the
signature is verified on what arrived upstream.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.simulator.pay_server import PREFIX, make_config
from tests.simulator.v3_server import MCH, V3Merchant, decrypt, signature_ok
from wxpay.simulator.app import make_app
from wxpay.simulator.core import Simulator

from .clients import Via
from .nginx import MISSING, Nginx, nginx_available

pytestmark = [pytest.mark.deploy, pytest.mark.skipif(not nginx_available(), reason=MISSING)]


@dataclass
class Seen:
    method: str
    uri: str
    headers: dict[str, str]
    body: bytes
    connection: int


@dataclass
class Recorder:
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    hold: asyncio.Event = field(default_factory=asyncio.Event)  # /hold/ requests wait for it


class _Record(tornado.web.RequestHandler):
    def initialize(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def check_xsrf_cookie(self) -> None:
        return None

    async def _record(self) -> None:
        r = self.request
        stream_id = id(r.connection.stream)  # type: ignore[attr-defined]
        self.recorder.seen.append(Seen(r.method or "", r.uri or "", dict(r.headers.get_all()), r.body, stream_id))
        if r.path.startswith("/hold/"):
            await self.recorder.hold.wait()
        self.set_status(204 if r.path.startswith("/notify/") else 200)  # V3: 204 is WeChat's "delivered"
        self.finish()

    get = post = _record


class _CountingServer(HTTPServer):
    def handle_stream(self, stream: Any, address: tuple) -> None:
        self.recorder.connections += 1  # type: ignore[attr-defined]
        super().handle_stream(stream, address)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Recorder, Nginx]]:
    recorder = Recorder()
    sock, port = bind_unused_port()
    server = _CountingServer(tornado.web.Application([(r"/.*", _Record, {"recorder": recorder})]))
    server.recorder = recorder  # type: ignore[attr-defined]
    server.add_sockets([sock])
    nginx = Nginx(port).start()
    try:
        yield recorder, nginx
    finally:
        nginx.stop()
        server.stop()
        await server.close_all_connections()


async def test_wechats_v3_notify_reaches_the_server_intact(upstream):
    recorder, nginx = upstream
    http = AsyncHTTPClient(force_instance=True, defaults={"ca_certs": str(nginx.cert)})
    sim = Simulator(make_config(), http_client=http)  # WeChat, trusting nginx's certificate
    sock, port = bind_unused_port()
    wechat = HTTPServer(make_app(sim, PREFIX))
    wechat.add_sockets([sock])
    await sim.start()
    try:
        merchant = V3Merchant(f"http://127.0.0.1:{port}{PREFIX}", lambda: sim.clock.now().timestamp(), prefix=PREFIX)
        placed = await merchant.order("native", "nginx-v3-0001", notify_url=f"{nginx.base}/notify/pay")
        assert placed.status == 200, placed.body
        order = sim.pay.order(MCH, "nginx-v3-0001")
        assert sim.pay.pay(order, "ok")
        delivery = await sim.notifier.wait(sim.paid(order).id)
    finally:
        await sim.stop()
        wechat.stop()
        http.close()
    assert delivery.state == "delivered" and delivery.attempts[0].status == 204  # the upstream's answer, passed back

    [got] = recorder.seen
    assert (got.method, got.uri) == ("POST", "/notify/pay")
    signed = {k: v for k, v in got.headers.items() if k.lower().startswith("wechatpay-")}
    assert set(signed) == {"Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial", "Wechatpay-Signature",
                           "Wechatpay-Signature-Type"}
    assert signature_ok(got.headers, got.body)  # over the body and headers as they arrived
    transaction = decrypt(json.loads(got.body)["resource"])
    assert transaction["out_trade_no"] == "nginx-v3-0001" and transaction["trade_state"] == "SUCCESS"
    assert got.headers["X-Forwarded-For"] == "127.0.0.1" and got.headers["X-Forwarded-Proto"] == "https"


async def test_the_forwarding_headers_are_nginxs_own(upstream):
    recorder, nginx = upstream
    client = Via(nginx.base, ca=nginx.cert, source="127.0.0.9")
    claims = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9", "X-Forwarded-Proto": "http"}
    assert (await client.get("/pay/co_1/status?x=1", headers=claims)).code == 200
    [got] = recorder.seen
    assert got.uri == "/pay/co_1/status?x=1"
    assert got.headers["X-Forwarded-For"] == "127.0.0.9"  # replaced, not appended to
    assert got.headers["X-Real-Ip"] == "127.0.0.9"
    assert got.headers["X-Forwarded-Proto"] == "https"
    assert got.headers["Host"] == "127.0.0.1"
    assert "Connection" not in got.headers  # HTTP/1.1 kept alive, not "close"


async def test_connections_to_the_server_are_kept_alive(upstream):
    recorder, nginx = upstream
    for n in range(5):  # five shoppers, five connections to nginx
        client = Via(nginx.base, ca=nginx.cert, source=f"127.0.0.{40 + n}")
        assert (await client.post("/api/checkouts", json_body={"n": n})).code == 200
    assert len(recorder.seen) == 5
    assert recorder.connections == 1 and len({s.connection for s in recorder.seen}) == 1


async def test_one_address_may_hold_a_hundred_requests_at_nginx(upstream):
    """limit_conn: the server exempts its trusted proxy from the per-source cap, so the
    per-client limit is nginx's, answered in the server's JSON shape."""
    recorder, nginx = upstream
    http = AsyncHTTPClient(force_instance=True, max_clients=120)
    fetch = dict(ca_certs=str(nginx.cert), network_interface="127.0.0.11", raise_error=False, request_timeout=30)
    try:
        held = [asyncio.ensure_future(http.fetch(f"{nginx.base}/hold/{n}", **fetch)) for n in range(100)]
        for _ in range(600):  # bounded: until the upstream holds all of them
            if len(recorder.seen) == 100:
                break
            await asyncio.sleep(0.02)
        assert len(recorder.seen) == 100
        over = await http.fetch(f"{nginx.base}/hold/101", **fetch)
        assert over.code == 429 and json.loads(over.body)["code"] == "too_many_connections"
        assert over.headers["Retry-After"] == "1" and over.headers["X-Content-Type-Options"] == "nosniff"
        other = await http.fetch(f"{nginx.base}/pay/co_1/status", **{**fetch, "network_interface": "127.0.0.12"})
        assert other.code == 200  # another shopper is not affected
        recorder.hold.set()
        assert {r.code for r in await asyncio.gather(*held)} == {200}
    finally:
        recorder.hold.set()
        http.close()
