"""A small WeChat Pay APIv3 on 127.0.0.1 for the V3 client's I/O tests (not the simulator).

It plays WeChat with the shared vectors' keys (tests/wxpay/vectors/v3/keys.json):
every request's ``Authorization`` is checked over the raw method, path with
query and body bytes received; every 2xx reply is signed with the key the
request's ``Wechatpay-Serial`` names (the newest platform certificate when
absent, or the public key for a public-key merchant), as WeChat does.

Its state is just enough for the client's paths: orders by out_trade_no,
refunds by out_refund_no, bill files by token, the platform certificates it
serves. ``fault()`` scripts what a test needs once (or n times) on a path:
an error status, a tampered body, a SIGNTEST probe, a wrong serial, a stale
timestamp, another signing key, a stall. Everything received is kept in
``requests``.

Usage::

    async with WeChatV3(mode="public_key") as wechat:
        client = wechat.client()          # a WxPayV3Client pointed at it
        ...
"""
from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

from wxpay.errors import VerificationError
from wxpay.timeutil import rfc3339_time
from wxpay.v3 import (
    ApiV3Cipher,
    MerchantSigner,
    PlatformCertificateKeeper,
    PublicKeyVerifier,
    WxPayV3Client,
    load_certificate,
    load_public_key,
    parse_authorization,
    request_message,
    wechatpay_headers,
)
from wxpay.v3.keys import Certificate, RSAPrivateKey
from wxpay.v3.signing import rsa_verify
from wxpay.retry import RetryPolicy

from .vectors import (
    APIV3_KEY, KEYS, MCHID, MERCHANT_SERIAL, PLATFORM_SERIAL, PUB_KEY_ID, load, merchant_key, platform_certificate,
    platform_key, wechat_key,
)

APPID = "wx0000000000test1"
NOTIFY_URL = "https://merchant.example.com/wxpay/v3/notify"
MERCHANT_PUBLIC = merchant_key().public_key()
BILLS = load("certificates-and-bills.json")["tradebill"]
TRADE_BILL = BILLS["file_plain_utf8"].encode()
FUND_FLOW_BILL = (
    "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号\n"
    "`2025-12-31 11:59:30,`4200000000202512311234567890,`50300000000001,`交易,`交易,`收入,`1.00,`101.00,`system,`,`T20251231000001\n"
    "`2025-12-31 11:59:31,`4200000000202512311234567890,`50300000000002,`扣除交易手续费,`扣除交易手续费,`支出,`0.01,`100.99,`system,`,`T20251231000001\n"
    "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\n`2,`1,`1.00,`1,`0.01\n"
).encode()


# --- platform certificates made on the spot (rotation tests) ----------------------------------


@dataclass(frozen=True)
class PlatformKey:
    certificate: Certificate
    private_key: RSAPrivateKey = field(repr=False)

    @property
    def serial(self) -> str:
        return self.certificate.serial_no


@cache
def _rsa_key(n: int) -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_platform_key(serial: int, not_before: datetime, not_after: datetime, *, key_no: int = 0) -> PlatformKey:
    """A self-signed platform certificate with the given serial and validity (keys cached per ``key_no``)."""
    key = _rsa_key(key_no)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Test platform {serial:X}"[:64])])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    return PlatformKey(load_certificate(cert.public_bytes(serialization.Encoding.PEM)), key)


def vector_platform_key() -> PlatformKey:
    return PlatformKey(platform_certificate(), platform_key())


# --- faults -------------------------------------------------------------------------------------


@dataclass
class Fault:
    """What to do instead of (or to) the normal answer for requests whose path matches ``path``.

    kind: ``error`` (``status``, ``code``, ``message``; no code = empty body),
    ``tamper`` (sign, then change the body, or the nonce of a 204), ``signtest`` (a probe signature),
    ``serial`` (sign normally, name ``serial`` in the header), ``stale``
    (signed ``age`` seconds ago), ``sign_with`` (sign with ``key`` under
    ``serial``), ``stall`` (wait ``seconds`` first), ``unsigned`` (no headers).
    """

    path: str
    kind: str
    times: int = 1
    status: int = 500
    code: str | None = None
    message: str = ""
    serial: str | None = None
    key: Any = None
    age: int = 301
    seconds: float = 0.0


class _Handler(RequestHandler):
    async def prepare(self) -> None:
        wechat: WeChatV3 = self.settings["wechat"]
        await wechat.handle(self)  # writes and finishes the reply: no method handler runs


@dataclass
class Received:
    method: str
    uri: str
    headers: dict
    body: bytes


class WeChatV3:
    """``mode``: ``public_key`` (no platform certificates: /v3/certificates is 404),
    ``platform`` (certificates only) or ``gray`` (both)."""

    def __init__(self, *, mode: str = "public_key", prefix: str = "", clock: Callable[[], float] = time.time) -> None:
        assert mode in ("public_key", "platform", "gray")
        self.mode = mode
        self.prefix = prefix
        self.clock = clock
        now = clock()
        self.platform_keys: list[PlatformKey] = (
            [make_platform_key(int(PLATFORM_SERIAL, 16), in_days(-30, now), in_days(365, now))]
            if mode != "public_key" else [])
        self.orders: dict[str, dict] = {}
        self.order_bodies: dict[str, bytes] = {}
        self.refunds: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[Received] = []
        self.faults: list[Fault] = []
        self.tamper_files = False
        self.base = ""
        self._server: HTTPServer | None = None
        self.cipher = ApiV3Cipher(APIV3_KEY)

    # --- life ----------------------------------------------------------------------------

    async def __aenter__(self) -> "WeChatV3":
        sock, port = bind_unused_port()
        self._server = HTTPServer(Application([(r"/.*", _Handler)], wechat=self))
        self._server.add_sockets([sock])
        self.base = f"http://127.0.0.1:{port}{self.prefix}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.stop()
        await self._server.close_all_connections()

    def client(self, *, public_key: bool | None = None, certificates: bool | None = None,
               keeper: PlatformCertificateKeeper | None = None, **kw: Any) -> WxPayV3Client:
        """A client for the test merchant; by default trusting what this mode's merchant would configure."""
        public_key = self.mode in ("public_key", "gray") if public_key is None else public_key
        certificates = self.mode in ("platform", "gray") if certificates is None else certificates
        if certificates and keeper is None:
            keeper = PlatformCertificateKeeper(clock=kw.get("clock", self.clock))
        kw.setdefault("clock", self.clock)
        kw.setdefault("retry", RetryPolicy(base_delay=0.0, max_delay=0.0, jitter=False))
        return WxPayV3Client(
            MerchantSigner(MCHID, MERCHANT_SERIAL, merchant_key(), clock=kw["clock"]),
            ApiV3Cipher(APIV3_KEY),
            public_key=PublicKeyVerifier(PUB_KEY_ID, load_public_key(KEYS["wechatpay_public_key"]["public_key_pem"]))
            if public_key else None,
            certificates=keeper if certificates else None,
            appid=APPID,
            endpoints=None if not self.base else _endpoints(self.base),
            **kw,
        )

    def fault(self, path: str, kind: str, **kw: Any) -> Fault:
        fault = Fault(path, kind, **kw)
        self.faults.append(fault)
        return fault

    def calls(self, path_part: str) -> list[Received]:
        return [r for r in self.requests if path_part in r.uri]

    # --- one request ---------------------------------------------------------------------------

    async def handle(self, h: RequestHandler) -> None:
        req = h.request
        self.requests.append(Received(req.method, req.uri, dict(req.headers), req.body))
        uri = req.uri
        if self.prefix:
            if not uri.startswith(self.prefix + "/"):
                return self._error(h, 404, "NOT_FOUND", "no such path")
            uri = uri[len(self.prefix):]
        refusal = self._check_signature(req.method, req.uri, req.headers, req.body)
        if refusal is not None:
            return self._error(h, 401, "SIGN_ERROR", refusal)
        serial = req.headers.get("Wechatpay-Serial")
        if serial is not None and not self._knows(serial):
            return self._error(h, 400, "INVALID_REQUEST", "Wechatpay-Serial 不正确")
        fault = self._take_fault(uri)
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "error":
            return self._error(h, fault.status, fault.code, fault.message)
        status, body, signed = self._route(req.method, uri, req.body)
        if status >= 400:
            return self._send(h, status, body, {})
        headers = self._sign(body, serial, fault) if signed else {}
        if fault is not None and fault.kind == "tamper":
            if body:
                body = body.replace(b'"', b' "', 1)
            else:  # a 204 has no body to change: change what else was signed
                headers["Wechatpay-Nonce"] = headers["Wechatpay-Nonce"][::-1]
        self._send(h, status, body, headers)

    def _send(self, h: RequestHandler, status: int, body: bytes, headers: dict) -> None:
        h.set_status(status)
        h.clear_header("Content-Type")
        if body and status != 204:
            h.set_header("Content-Type", "application/json" if body[:1] == b"{" else "application/octet-stream")
        for name, value in headers.items():
            h.set_header(name, value)
        h.set_header("Request-ID", "TEST-" + secrets.token_hex(4))
        if status != 204:
            h.write(body)
        h.finish()

    def _error(self, h: RequestHandler, status: int, code: str | None, message: str) -> None:
        body = json.dumps({"code": code, "message": message}, ensure_ascii=False).encode() if code else b""
        self._send(h, status, body, {})

    def _take_fault(self, uri: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and re.search(fault.path, uri):
                fault.times -= 1
                return fault
        return None

    def _check_signature(self, method: str, uri: str, headers: Any, body: bytes) -> str | None:
        try:
            auth = parse_authorization(headers.get("Authorization"))
        except VerificationError as exc:
            return f"Http头Authorization值格式错误 ({exc.code})"
        if auth.mchid != MCHID or auth.serial_no != MERCHANT_SERIAL:
            return "商户证书序列号有误"
        if abs(int(self.clock()) - int(auth.timestamp)) > 300:
            return "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟"
        message = request_message(method, uri, auth.timestamp, auth.nonce_str, body)
        if not rsa_verify(MERCHANT_PUBLIC, message, base64.b64decode(auth.signature)):
            return "错误的签名，验签失败"
        return None

    def _knows(self, serial: str) -> bool:
        if serial == PUB_KEY_ID:
            return self.mode in ("public_key", "gray")
        return any(k.serial == serial for k in self.platform_keys)

    def _sign(self, body: bytes, asked: str | None, fault: Fault | None) -> dict:
        now = int(self.clock())
        if fault is not None and fault.kind == "sign_with":
            key, serial = fault.key, fault.serial
        elif asked == PUB_KEY_ID or (asked is None and self.mode == "public_key"):
            key, serial = wechat_key(), PUB_KEY_ID
        else:
            chosen = next((k for k in self.platform_keys if k.serial == asked), None) or self.newest()
            key, serial = chosen.private_key, chosen.serial
        timestamp = now - fault.age if fault is not None and fault.kind == "stale" else now
        headers = wechatpay_headers(key, serial, body, timestamp=timestamp, nonce=secrets.token_hex(16).upper())
        if fault is not None and fault.kind == "serial":
            headers["Wechatpay-Serial"] = fault.serial
        if fault is not None and fault.kind == "signtest":
            headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + base64.b64encode(b"probe").decode()
        if fault is not None and fault.kind == "unsigned":
            return {}
        return headers

    def newest(self) -> PlatformKey:
        return max(self.platform_keys, key=lambda k: k.certificate.not_after)

    # --- WeChat's side of each path ------------------------------------------------------------------

    def _route(self, method: str, uri: str, body: bytes) -> tuple[int, bytes, bool]:
        parts = urlsplit(uri)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        m = re.fullmatch(r"/v3/pay/transactions/(jsapi|app|native|h5)", path)
        if m and method == "POST":
            return self._order(m.group(1), body)
        m = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)", path)
        if m and method == "GET":
            order = self.orders.get(m.group(1))
            return (200, _json(order), True) if order else _err(404, "ORDER_NOT_EXIST", "订单不存在")
        m = re.fullmatch(r"/v3/pay/transactions/id/([^/]+)", path)
        if m and method == "GET":
            order = next((o for o in self.orders.values() if o.get("transaction_id") == m.group(1)), None)
            return (200, _json(order), True) if order else _err(404, "ORDER_NOT_EXIST", "订单不存在")
        m = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)/close", path)
        if m and method == "POST":
            order = self.orders.get(m.group(1))
            if order is None:
                return _err(404, "ORDER_NOT_EXIST", "订单不存在")
            if order["trade_state"] == "NOTPAY":
                order["trade_state"] = "CLOSED"
            return 204, b"", True
        if path == "/v3/refund/domestic/refunds" and method == "POST":
            return self._refund(body)
        m = re.fullmatch(r"/v3/refund/domestic/refunds/([^/]+)", path)
        if m and method == "GET":
            from urllib.parse import unquote

            refund = self.refunds.get(unquote(m.group(1)))
            return (200, _json(refund), True) if refund else _err(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        if path in ("/v3/bill/tradebill", "/v3/bill/fundflowbill") and method == "GET":
            plain = TRADE_BILL if path.endswith("tradebill") else FUND_FLOW_BILL
            token = secrets.token_hex(8)
            served = plain.replace(b"`1.00", b"`1.01", 1) if self.tamper_files else plain
            self.files[token] = gzip.compress(served, mtime=0) if query.get("tar_type") == "GZIP" else served
            return 200, _json({"hash_type": "SHA1", "hash_value": hashlib.sha1(plain).hexdigest(),
                               "download_url": f"{self.base}/v3/billdownload/file?token={token}"}), True
        if path == "/v3/billdownload/file" and method == "GET":
            data = self.files.get(query.get("token", ""))
            return (200, data, False) if data is not None else _err(400, "INVALID_REQUEST", "token 已过期")
        if path == "/v3/certificates" and method == "GET":
            if not self.platform_keys:
                return _err(404, "RESOURCE_NOT_EXISTS", "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥")
            data = [{
                "serial_no": k.serial,
                "effective_time": rfc3339_time(k.certificate.not_before),
                "expire_time": rfc3339_time(k.certificate.not_after),
                "encrypt_certificate": self.cipher.encrypt_resource(k.certificate.pem.encode(),
                                                                    associated_data="certificate"),
            } for k in self.platform_keys]
            return 200, _json({"data": data}), True
        return _err(404, "NOT_FOUND", "no such path")

    def _order(self, kind: str, body: bytes) -> tuple[int, bytes, bool]:
        obj = json.loads(body)
        if obj.get("mchid") != MCHID:
            return _err(400, "PARAM_ERROR", "http header中的mchid与post payload中的mchid不匹配")
        no = obj["out_trade_no"]
        if no in self.order_bodies and self.order_bodies[no] != body:
            return _err(403, "OUT_TRADE_NO_USED", "商户订单号重复")
        if no not in self.orders:
            self.order_bodies[no] = body
            self.orders[no] = {"appid": obj["appid"], "mchid": MCHID, "out_trade_no": no, "trade_state": "NOTPAY",
                               "trade_state_desc": "未支付", "amount": {"total": obj["amount"]["total"], "currency": "CNY"},
                               "prepay_id": "wx" + secrets.token_hex(15), "trade_type": kind.upper()}
        order = self.orders[no]
        reply = {"jsapi": {"prepay_id": order["prepay_id"]}, "app": {"prepay_id": order["prepay_id"]},
                 "native": {"code_url": "weixin://wxpay/bizpayurl?pr=" + order["prepay_id"][-8:]},
                 "h5": {"h5_url": "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=" + order["prepay_id"]}}
        return 200, _json(reply[kind]), True

    def pay(self, out_trade_no: str, *, openid: str = "oTEST0000000000000000000001") -> dict:
        """The shopper pays: the order becomes SUCCESS with its payment fields."""
        order = self.orders[out_trade_no]
        order.pop("prepay_id", None)
        order.update(trade_state="SUCCESS", trade_state_desc="支付成功", bank_type="OTHERS",
                     transaction_id="42000000002026" + secrets.token_hex(7).upper()[:14],
                     success_time=rfc3339_time(datetime.fromtimestamp(self.clock(), timezone.utc)),
                     payer={"openid": openid})
        order["amount"].update(payer_total=order["amount"]["total"], payer_currency="CNY")
        return order

    def _refund(self, body: bytes) -> tuple[int, bytes, bool]:
        obj = json.loads(body)
        order = self.orders.get(obj.get("out_trade_no", "")) or next(
            (o for o in self.orders.values() if o.get("transaction_id") == obj.get("transaction_id")), None)
        if order is None or order["trade_state"] not in ("SUCCESS", "REFUND"):
            return _err(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        no = obj["out_refund_no"]
        if no not in self.refunds:
            self.refunds[no] = {
                "refund_id": "50300000002026" + secrets.token_hex(7).upper()[:14], "out_refund_no": no,
                "transaction_id": order["transaction_id"], "out_trade_no": order["out_trade_no"], "channel": "ORIGINAL",
                "user_received_account": "支付用户零钱", "status": "PROCESSING",
                "create_time": rfc3339_time(datetime.fromtimestamp(self.clock(), timezone.utc)),
                "amount": {"total": obj["amount"]["total"], "refund": obj["amount"]["refund"],
                           "payer_total": obj["amount"]["total"], "payer_refund": obj["amount"]["refund"],
                           "currency": "CNY"},
            }
            order["trade_state"] = "REFUND"
        return 200, _json(self.refunds[no]), True


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _err(status: int, code: str, message: str) -> tuple[int, bytes, bool]:
    return status, json.dumps({"code": code, "message": message}, ensure_ascii=False).encode(), False


def _endpoints(base: str):
    from wxpay.v3 import V3Endpoints

    return V3Endpoints(base)


def in_days(days: float, now: float | None = None) -> datetime:
    return datetime.fromtimestamp((time.time() if now is None else now) + days * 86400, timezone.utc)


__all__ = ["APPID", "NOTIFY_URL", "WeChatV3", "Fault", "PlatformKey", "make_platform_key", "vector_platform_key",
           "in_days", "TRADE_BILL", "FUND_FLOW_BILL", "timedelta"]
