"""Our own APIv3 client (``wxpay.v3.WxPayV3Client``) pointed at the simulator, and a notify inbox.

The client is built from the demo merchant's (TEST-ONLY) credentials exactly
as a merchant would build it from ``python -m wxpay.simulator credentials``;
only its base URL (``Endpoints.single``) and its clock (the simulator's fake
clock, as a machine whose clock agrees with WeChat's) differ from production.

``Inbox`` is the merchant's notify endpoint: a real Tornado server on
loopback whose handler reads every notify with the client's own
``read_notify`` (verify the raw body, then decrypt, then type) and answers
with ``notify_reply`` (204, or 500 so WeChat retries), recording what it
accepted and what it refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from wxpay.endpoints import Endpoints
from wxpay.errors import WxPayError
from wxpay.retry import RetryPolicy
from wxpay.simulator import demo
from wxpay.transport import CallRecord, HttpRequest, HttpResponse, TornadoTransport
from wxpay.v3 import (
    ApiV3Cipher,
    MerchantSigner,
    NotifyEvent,
    PlatformCertificateKeeper,
    PublicKeyVerifier,
    WxPayV3Client,
    load_public_key,
    notify_reply,
)

MCH = demo.MCH_ID
OA = demo.OFFICIAL_ACCOUNT_APPID
MP = demo.MINI_PROGRAM_APPID
APP = demo.MOBILE_APP_APPID
PUB_ID = demo.PUBLIC_KEY_ID
PLATFORM = demo.PLATFORM_SERIAL_NO
# How the merchant trusts WeChat (the client's side of the key mode).
TRUSTS = ("public_key", "platform_cert", "gray")
# Fast retries: the policy is the default one but for the pauses.
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=False)


def public_key_verifier() -> PublicKeyVerifier:
    return PublicKeyVerifier(PUB_ID, load_public_key(demo.v3_pem("wechatpay_pub_key.pem")))


@dataclass
class Calls:
    """What the client tells its observer: one record per attempt."""

    records: list[CallRecord] = field(default_factory=list)

    def __call__(self, record: CallRecord) -> None:
        self.records.append(record)

    def attempts(self, endpoint: str) -> list[CallRecord]:
        return [r for r in self.records if r.endpoint == endpoint]


@dataclass
class Wire:
    """A transport that sends through ``TornadoTransport`` and keeps every exchange (for the serials)."""

    exchanges: list[tuple[HttpRequest, HttpResponse]] = field(default_factory=list)
    transport: TornadoTransport = field(default_factory=TornadoTransport)

    async def send(self, request: HttpRequest) -> HttpResponse:
        response = await self.transport.send(request)
        self.exchanges.append((request, response))
        return response

    def to(self, fragment: str) -> list[tuple[HttpRequest, HttpResponse]]:
        return [(q, r) for q, r in self.exchanges if fragment in q.url]


def our_client(base: str, clock: Callable[[], float], trust: str = "public_key", *,
               calls: Calls | None = None, keeper: PlatformCertificateKeeper | None = None,
               **kw: Any) -> WxPayV3Client:
    """The demo merchant's client: ``trust`` is ``public_key``, ``platform_cert`` (a keeper that downloads
    ``/v3/certificates``) or ``gray`` (both)."""
    if trust not in TRUSTS:
        raise ValueError(trust)
    signer = MerchantSigner.from_pem(MCH, demo.v3_pem("apiclient_key.pem"), serial_no=demo.MERCHANT_SERIAL_NO,
                                     clock=clock)
    trusted: dict[str, Any] = {}
    if trust in ("public_key", "gray"):
        trusted["public_key"] = public_key_verifier()
    if trust in ("platform_cert", "gray"):
        trusted["certificates"] = keeper if keeper is not None else PlatformCertificateKeeper(clock=clock)
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("transport", Wire())
    return WxPayV3Client(signer, ApiV3Cipher(demo.APIV3_KEY), appid=OA, endpoints=Endpoints.single(base),
                         clock=clock, observer=calls, **trusted, **kw)


def sim_clock(srv: Any) -> Callable[[], float]:
    return lambda: srv.clock.now().timestamp()


@dataclass
class Inbox:
    """The merchant's V3 notify endpoint, reading with ``client.read_notify``."""

    url: str = ""
    client: WxPayV3Client | None = None
    events: list[NotifyEvent] = field(default_factory=list)
    refused: list[WxPayError] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    @property
    def refused_codes(self) -> list[str]:
        return [exc.code for exc in self.refused]


class _InboxHandler(tornado.web.RequestHandler):
    def initialize(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def check_xsrf_cookie(self) -> None:
        pass

    async def post(self) -> None:
        inbox = self.inbox
        assert inbox.client is not None, "set inbox.client before notifies arrive"
        inbox.bodies.append(self.request.body)
        inbox.headers.append(dict(self.request.headers.get_all()))
        try:
            event = await inbox.client.read_notify(self.request.headers, self.request.body)
        except WxPayError as exc:
            inbox.refused.append(exc)
            status, body = notify_reply(False, exc.code)
        else:
            inbox.events.append(event)
            status, body = notify_reply(True)
        inbox.statuses.append(status)
        self.set_status(status)
        if body:
            self.set_header("Content-Type", "application/json")
            self.write(body)
        self.finish()


@pytest.fixture
async def inbox():
    box = Inbox()
    sock, port = bind_unused_port()
    server = HTTPServer(tornado.web.Application([(r"/wxpay/v3/notify", _InboxHandler, {"inbox": box})]))
    server.add_sockets([sock])
    box.url = f"http://127.0.0.1:{port}/wxpay/v3/notify"
    yield box
    server.stop()
    await server.close_all_connections()
