"""Helpers for the simulator's APIv3 side: a merchant that signs requests, a notify receiver.

The merchant signs with the demo (TEST-ONLY) key through ``wxpay.v3.signing``
and checks replies with WeChat's public key or platform certificate through
``cryptography`` directly, so a signing bug in the simulator cannot hide
behind our own verifier. The receiver is a real Tornado server on loopback.
"""
from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import tornado.web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from wxpay.simulator import demo
from wxpay.v3.signing import MerchantSigner

MCH = demo.MCH_ID
OA = demo.OFFICIAL_ACCOUNT_APPID
MP = demo.MINI_PROGRAM_APPID
APP = demo.MOBILE_APP_APPID
PUB_ID = demo.PUBLIC_KEY_ID
PLATFORM = demo.PLATFORM_SERIAL_NO
APIV3_KEY = demo.APIV3_KEY
MERCHANT_KEY_PEM = demo.v3_pem("apiclient_key.pem")
WECHAT_PUBLIC_KEY = load_pem_public_key(demo.v3_pem("wechatpay_pub_key.pem").encode())
PLATFORM_KEY = x509.load_pem_x509_certificate(demo.v3_pem("platform_cert.pem").encode()).public_key()
KEYS = {PUB_ID: WECHAT_PUBLIC_KEY, PLATFORM: PLATFORM_KEY}


def signature_ok(headers: Any, body: bytes) -> bool:
    """WeChat's signature over a reply or notify, checked with ``cryptography`` alone."""
    key = KEYS.get(headers.get("Wechatpay-Serial", ""))
    if key is None or headers.get("Wechatpay-Signature-Type") != "WECHATPAY2-SHA256-RSA2048":
        return False
    message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode() + body + b"\n"
    try:
        key.verify(base64.b64decode(headers["Wechatpay-Signature"], validate=True), message,
                   padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


def decrypt(resource: dict[str, str], key: str = APIV3_KEY) -> dict[str, Any]:
    plain = AESGCM(key.encode()).decrypt(resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                                         resource["associated_data"].encode())
    return json.loads(plain)


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def signed(self) -> bool:
        return signature_ok(self.headers, self.body)


class V3Merchant:
    """Signs and sends V3 requests to a simulator base URL (mounted prefix included)."""

    def __init__(self, base: str, clock: Callable[[], float], *, prefix: str = "", mchid: str = MCH,
                 serial: str = demo.MERCHANT_SERIAL_NO, key_pem: str = MERCHANT_KEY_PEM) -> None:
        self.base = base
        self.prefix = prefix
        self.signer = MerchantSigner.from_pem(mchid, key_pem, serial_no=serial, clock=clock)

    def auth(self, method: str, path: str, body: bytes = b"", **kw: Any) -> str:
        return self.signer.authorization(method, path, body, **kw)

    async def call(self, method: str, path: str, obj: Any = None, *, raw: bytes | None = None,
                   headers: dict[str, str] | None = None, authorization: str | None = None,
                   serial_header: str | None = None) -> Reply:
        """``path`` is the WeChat path with query; the body is ``raw`` or ``obj`` as compact JSON."""
        body = raw if raw is not None else (json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
                                           if obj is not None else b"")
        hdrs = {"Accept": "application/json", "User-Agent": "wxpay-tests"}
        if method != "GET":
            hdrs["Content-Type"] = "application/json"
        hdrs["Authorization"] = authorization if authorization is not None else self.auth(method, path, body)
        if serial_header is not None:
            hdrs["Wechatpay-Serial"] = serial_header
        hdrs.update(headers or {})
        resp: HTTPResponse = await AsyncHTTPClient().fetch(
            self.base + path, method=method, body=body if method != "GET" else None, headers=hdrs,
            raise_error=False, allow_nonstandard_methods=True)
        return Reply(resp.code, resp.headers, resp.body or b"")

    async def order(self, kind: str = "native", out_trade_no: str = "v3order0001", *, total: int = 100,
                    notify_url: str = "http://127.0.0.1:9/notify", **extra: Any) -> Reply:
        body: dict[str, Any] = {"appid": APP if kind == "app" else OA, "mchid": MCH, "description": "Demo shop-tea",
                                "out_trade_no": out_trade_no, "notify_url": notify_url,
                                "amount": {"total": total, "currency": "CNY"}}
        if kind == "h5":
            body["scene_info"] = {"payer_client_ip": "127.0.0.1", "h5_info": {"type": "Wap"}}
        body.update(extra)
        return await self.call("POST", f"/v3/pay/transactions/{kind}", body)


@dataclass
class Receiver:
    """Notify receiver: records (headers, body); ``decide`` (optional, run in a thread) picks the status."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default: int = 204
    decide: Callable[[dict[str, str], bytes], int] | None = None
    decided: list[Any] = field(default_factory=list)


class _ReceiverHandler(tornado.web.RequestHandler):
    def initialize(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def check_xsrf_cookie(self) -> None:
        pass

    async def post(self) -> None:
        r = self.receiver
        headers = dict(self.request.headers.get_all())
        r.received.append((headers, self.request.body))
        if r.decide is not None:
            status = await asyncio.to_thread(r.decide, headers, self.request.body)
        else:
            status = r.statuses.pop(0) if r.statuses else r.default
        self.set_status(status)
        if status >= 300:
            self.write(b'{"code":"FAIL","message":"not accepted"}')
        self.finish()


@pytest.fixture
async def receiver():
    r = Receiver()
    sock, port = bind_unused_port()
    server = HTTPServer(tornado.web.Application([(r"/notify", _ReceiverHandler, {"receiver": r})]))
    server.add_sockets([sock])
    r.url = f"http://127.0.0.1:{port}/notify"
    yield r
    server.stop()
    await server.close_all_connections()
