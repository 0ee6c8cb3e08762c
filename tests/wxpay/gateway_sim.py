"""Both gateways against the simulated WeChat over loopback HTTP.

The simulator (``tests.simulator.pay_server``) runs under a prefix with a
fake clock; the gateways read that clock, since APIv3 signatures carry
timestamps both sides check. The inbox is a real Tornado server on
loopback that keeps each notify's headers and raw body (APIv3's proof is in
the headers) and answers 200, which both versions take as delivered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from wxpay import signing
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.gateway import OrderRequest
from wxpay.merchant import Merchant
from wxpay.simulator import demo
from wxpay.v2_gateway import V2Gateway
from wxpay.v3_gateway import V3Gateway
from wxpay.v3_settings import V3Settings
from tests.simulator.pay_server import APP, KEY, MCH, MP, OA, START, SUCCESS_XML

HMAC = signing.HMAC_SHA256
PUB_ID = demo.PUBLIC_KEY_ID
PLATFORM = demo.PLATFORM_SERIAL_NO
APIV3_KEY = demo.APIV3_KEY
MERCHANT_KEY_PEM = demo.v3_pem("apiclient_key.pem")
WECHAT_PUBLIC_KEY_PEM = demo.v3_pem("wechatpay_pub_key.pem")


async def no_sleep(_seconds: float) -> None:
    return None


def sim_clock(simsrv):
    return lambda: simsrv.clock.now().timestamp()


def v2_gateway_for(simsrv, cert_pair, sign_type: str = HMAC, *, key: str = KEY) -> V2Gateway:
    m = Merchant(MCH, key, OA, sign_type=sign_type, cert_path=cert_pair[0], key_path=cert_pair[1])
    client = WxPayClient(m, endpoints=Endpoints.single(simsrv.base), sleep=no_sleep)
    return V2Gateway(client, appids=(MP, APP))


def v3_settings(pay_base: str = Endpoints.pay_base, mode: str = "public_key", **changes: Any) -> V3Settings:
    """The demo merchant's (TEST-ONLY) APIv3 settings; ``mode`` picks how WeChat is verified."""
    fields: dict[str, Any] = dict(
        mchid=MCH, appids=(OA, MP, APP), merchant_private_key_pem=MERCHANT_KEY_PEM,
        merchant_serial_no=demo.MERCHANT_SERIAL_NO, apiv3_key=APIV3_KEY, pay_base=pay_base,
    )
    if mode in ("public_key", "gray"):
        fields.update(public_key_id=PUB_ID, public_key_pem=WECHAT_PUBLIC_KEY_PEM)
    if mode in ("platform_cert", "gray"):
        fields.update(platform_certificates=True)
    fields.update(changes)
    return V3Settings(**fields)


def v3_gateway_for(simsrv, mode: str = "public_key", *, observer=None, clock=None, **changes: Any) -> V3Gateway:
    return V3Gateway(v3_settings(simsrv.base, mode, **changes), clock=clock or sim_clock(simsrv),
                     sleep=no_sleep, observer=observer)


def order(no: str, trade_type: str = "NATIVE", **kw: Any) -> OrderRequest:
    fields: dict[str, Any] = dict(
        out_trade_no=no, trade_type=trade_type, appid=OA, amount_fen=990, description="Demo-tea",
        notify_url="http://127.0.0.1:9/notify", client_ip="127.0.0.1", expires_at=START + timedelta(hours=1),
        product_id="co_1" if trade_type == "NATIVE" else None)
    fields.update(kw)
    return OrderRequest(**fields)


@dataclass
class Inbox:
    """Notifies as received: (headers, raw body), in order."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def last(self) -> tuple[dict[str, str], bytes]:
        return self.received[-1]


class _InboxHandler(tornado.web.RequestHandler):
    def initialize(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def check_xsrf_cookie(self) -> None:
        pass

    def post(self) -> None:
        self.inbox.received.append((dict(self.request.headers.get_all()), self.request.body))
        self.finish(SUCCESS_XML)  # APIv2 reads the XML, APIv3 the 200


@pytest.fixture
async def inbox():
    box = Inbox()
    sock, port = bind_unused_port()
    server = HTTPServer(tornado.web.Application([(r"/notify", _InboxHandler, {"inbox": box})]))
    server.add_sockets([sock])
    box.url = f"http://127.0.0.1:{port}/notify"
    yield box
    server.stop()
    await server.close_all_connections()


async def delivered(simsrv, inbox: Inbox, kind: str, key: str) -> tuple[dict[str, str], bytes]:
    """Wait for the (latest) notify of ``kind`` (pay, refund) about ``key`` and return what arrived."""
    deliveries = simsrv.sim.notifier.list(kind, key)
    assert deliveries, f"no {kind} notify for {key}"
    await simsrv.sim.notifier.wait(deliveries[-1]["id"])
    return inbox.last
