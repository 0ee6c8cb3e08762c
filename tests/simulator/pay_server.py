"""Fixtures for the pay side: the whole simulator on a loopback port, and a merchant.

The simulator is mounted under a prefix (as the server mounts it) with a fake
clock; the "merchant" is a second real Tornado server that receives notifies
and answers them as a test tells it to.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from wxpay import signing
from wxpay.simulator import demo
from wxpay.simulator.app import make_app
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.config import SimConfig
from wxpay.simulator.core import Simulator
from wxpay.xmlcodec import build_xml, parse_xml

PREFIX = "/_wechat"
# 2026-01-05 02:00 UTC is 10:00 in China.
START = datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)
OA = demo.OFFICIAL_ACCOUNT_APPID
MP = demo.MINI_PROGRAM_APPID
APP = demo.MOBILE_APP_APPID
MCH = demo.MCH_ID
KEY = demo.API_KEY
SUCCESS_XML = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"


def signed_body(params: dict[str, Any], *, key: str = KEY, sign_type: str = signing.MD5) -> bytes:
    params = {"appid": OA, "mch_id": MCH, "nonce_str": signing.make_nonce(), **params}
    if sign_type != signing.MD5:
        params["sign_type"] = sign_type
    params = {k: v for k, v in params.items() if v is not None}
    params["sign"] = signing.sign(params, key, sign_type)
    return build_xml(params)


@dataclass
class SimServer:
    sim: Simulator
    base: str
    server: HTTPServer

    @property
    def clock(self) -> FakeClock:
        return self.sim.clock

    async def raw(self, path: str, body: bytes | None = None, method: str = "POST", **kw: Any) -> HTTPResponse:
        kw.setdefault("follow_redirects", False)
        return await AsyncHTTPClient().fetch(self.base + path, method=method, body=body, raise_error=False, **kw)

    async def call(self, path: str, params: dict[str, Any], *, sign_type: str = signing.MD5, key: str = KEY,
                   verify: bool = True) -> dict[str, str]:
        """POST signed XML; parse the reply and (for signed replies) verify it."""
        resp = await self.raw(path, signed_body(params, key=key, sign_type=sign_type))
        assert resp.code == 200, resp.code
        reply = parse_xml(resp.body)
        if verify and reply.get("return_code") == "SUCCESS":
            signing.verify(reply, KEY, sign_type)
        return reply

    async def unified(self, out_trade_no: str, **kw: Any) -> dict[str, str]:
        params = {
            "body": "Demo shop-coffee", "out_trade_no": out_trade_no, "total_fee": 100,
            "spbill_create_ip": "127.0.0.1", "notify_url": kw.pop("notify_url", "http://127.0.0.1:9/notify"),
            "trade_type": "NATIVE", "product_id": "p1",
        }
        sign_type = kw.pop("sign_type", signing.MD5)
        params.update(kw)
        return await self.call("/pay/unifiedorder", params, sign_type=sign_type)

    async def get_json(self, path: str) -> Any:
        resp = await self.raw(path, method="GET")
        return resp.code, json.loads(resp.body)

    async def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        resp = await self.raw(path, json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        return resp.code, json.loads(resp.body)

    def openid(self, user: str = "alice", appid: str = OA) -> str:
        return self.sim.openid_for(appid, user)


@dataclass
class Merchant:
    """A notify receiver: ``replies`` is consumed one per request, then ``default``."""

    url: str
    received: list[bytes] = field(default_factory=list)
    replies: list[tuple[int, bytes]] = field(default_factory=list)
    default: tuple[int, bytes] = (200, SUCCESS_XML)
    on_receive: Callable[[bytes], None] | None = None


class _NotifyHandler(tornado.web.RequestHandler):
    def initialize(self, merchant: Merchant) -> None:
        self.merchant = merchant

    def check_xsrf_cookie(self) -> None:
        pass

    def post(self) -> None:
        m = self.merchant
        m.received.append(self.request.body)
        if m.on_receive:
            m.on_receive(self.request.body)
        status, body = m.replies.pop(0) if m.replies else m.default
        self.set_status(status)
        self.finish(body)


def make_config(**kw: Any) -> SimConfig:
    kw.setdefault("notify_time_scale", 100000.0)
    return SimConfig.demo(**kw)


@contextlib.asynccontextmanager
async def running_sim(clock: FakeClock | None = None, *, sim_config: SimConfig | None = None,
                      **config: Any) -> AsyncIterator[SimServer]:
    """The simulator on a loopback port under PREFIX, started and stopped around the block."""
    sim = Simulator(sim_config or make_config(**config), clock=clock or FakeClock(START))
    sock, port = bind_unused_port()
    server = HTTPServer(make_app(sim, PREFIX))
    server.add_sockets([sock])
    await sim.start()
    try:
        yield SimServer(sim, f"http://127.0.0.1:{port}{PREFIX}", server)
    finally:
        await sim.stop()
        server.stop()
        await server.close_all_connections()


@pytest.fixture
async def simsrv():
    async with running_sim() as srv:
        yield srv


@pytest.fixture
async def merchant():
    m = Merchant(url="")
    sock, port = bind_unused_port()
    server = HTTPServer(tornado.web.Application([(r"/notify", _NotifyHandler, {"merchant": m})]))
    server.add_sockets([sock])
    m.url = f"http://127.0.0.1:{port}/notify"
    yield m
    server.stop()
    await server.close_all_connections()


@pytest.fixture(scope="session")
def cert_pair(tmp_path_factory) -> tuple[str, str]:
    """A throwaway self-signed merchant API certificate and key (PEM files)."""
    d = tmp_path_factory.mktemp("cert")
    cert, key = d / "apiclient_cert.pem", d / "apiclient_key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=wxpay-simulator-test"],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)
