"""The V3 endpoints over HTTP, at WeChat's paths on the same base URL as V2.

Every request goes through the same steps (digest §9): the faults decided
before the handler (latency, http500), ``Authorization`` (:mod:`.auth`),
the request's ``Wechatpay-Serial`` (which key signs the reply), the
reply-shaping faults, then the endpoint. Every reply whose merchant is known
is signed (:meth:`.side.V3Side.sign`), errors included; the bill file of step
two is not. Errors are always ``{code, message, detail?}``.

Paths are checked as the client signed them: the WeChat path (the request's
path and query as received, less the mount prefix), or the full path for a
client that signs its whole URL's path.
"""
from __future__ import annotations

from typing import Any

import tornado.web

from ..apihandler import SimHandler
from . import bills, rules
from .auth import Caller, authenticate
from .keyring import SigningKey
from .side import REPLY_KINDS, Bent, request_id
from .wire import JSON_TYPE, V3Error, dumps, parse_body

# The reply-shaping fault kinds every V3 endpoint honours; refunds and certificates add theirs.
V3_MARKS = ("systemerror", "malformed", "frequency_limited", *REPLY_KINDS)
MSG_MCHID_BODY = "http header中的mchid与post payload中的mchid不匹配"
MSG_MCHID_QUERY = "http header中的mchid与query中的mchid不匹配"


class V3Handler(SimHandler):
    """Subclasses implement ``async handle(caller, *path_args) -> (status, body | None)``."""

    FAULT_MARKS = V3_MARKS
    TEMPLATE = ""  # the endpoint's path template, e.g. "v3/pay/transactions/id/{transaction_id}"

    def initialize(self, sim: Any, prefix: str = "") -> None:
        super().initialize(sim)
        self.prefix = prefix

    @property
    def ENDPOINT(self) -> str:  # noqa: N802 - read by SimHandler.prepare like the V2 class constant
        return self.TEMPLATE

    @property
    def base_url(self) -> str:
        return f"{self.request.protocol}://{self.request.host}{self.prefix}"

    def signed_paths(self) -> list[str]:
        uri = self.request.uri or "/"
        if self.prefix and uri.startswith(self.prefix + "/"):
            return [uri[len(self.prefix):], uri]
        return [uri]

    # --- the pipeline ----------------------------------------------------------------

    async def _serve(self, *args: str) -> None:
        side = self.sim.v3
        now = self.sim.clock.now()
        caller: Caller | None = None
        key: SigningKey | None = None
        try:
            caller = authenticate(
                self.sim.config, side.keyrings, method=self.request.method, paths=self.signed_paths(),
                header=self.request.headers.get("Authorization"), body=self.request.body or b"", now=now,
            )
            requested = self.request.headers.get("Wechatpay-Serial")
            key = caller.keyring.reply_key(requested.strip() if requested is not None else None, now)
            marks = self.sim.faults.marks(self)
            if "systemerror" in marks:
                raise V3Error(500, "SYSTEM_ERROR", "系统错误，请使用相同参数稍后重新调用")
            if "frequency_limited" in marks:
                raise V3Error(429, "FREQUENCY_LIMITED", "请求频率超过限制，请降低频率后重试")
            status, body = await self.handle(caller, *args)
        except V3Error as exc:
            if caller is not None and key is None:
                key = caller.keyring.default_key(now)
            return self.send(exc.status, exc.body(), caller, key)
        if status is not None:
            self.send(status, body, caller, key)

    async def handle(self, caller: Caller, *args: str) -> tuple[int | None, Any]:
        raise NotImplementedError

    def send(self, status: int, obj: Any, caller: Caller | None, key: SigningKey | None) -> None:
        """``obj`` is a JSON-able object, bytes already serialised, or None (204)."""
        body = obj if isinstance(obj, bytes) else dumps(obj) if obj is not None else b""
        if "malformed" in self.sim.faults.marks(self):
            # WeChat sending a broken body signs the bytes it sends: the client's JSON parser is
            # what this fault tests (a signature over other bytes is ``bad_sign``).
            body = body[: max(1, len(body) // 2)]
        self.set_status(status)
        if caller is not None and key is not None:
            bent = Bent({k: (f.seconds if f else 0) for k in REPLY_KINDS if (f := self.sim.faults.mark(self, k))})
            for name, value in self.sim.v3.sign(caller.keyring, key, body, bent).items():
                self.set_header(name, value)
        else:
            self.set_header("Request-ID", request_id())
        if status == 204:
            self.clear_header("Content-Type")
            return self.finish()
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's own refusals (wrong method, crash) in WeChat's shape, never a traceback."""
        code = {405: "INVALID_REQUEST", 404: "RESOURCE_NOT_EXISTS"}.get(status_code, "SYSTEM_ERROR")
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(dumps({"code": code, "message": self._reason or "error"}))

    # --- helpers for the endpoints -------------------------------------------------------

    def body_with_mchid(self, caller: Caller) -> dict[str, Any]:
        body = parse_body(self.request.body or b"")
        mchid = body.get("mchid")
        if mchid is None:
            raise V3Error(400, "PARAM_ERROR", "缺少参数mchid", {"field": "/mchid", "location": "body"})
        if mchid != caller.merchant.mch_id:
            raise V3Error(400, "PARAM_ERROR", MSG_MCHID_BODY, {"field": "/mchid", "location": "body"})
        return body

    def query_mchid(self, caller: Caller) -> None:
        values = self.request.query_arguments.get("mchid", [])
        if len(values) != 1:
            raise V3Error(400, "PARAM_ERROR", "query参数mchid必填且只能出现一次", {"field": "mchid", "location": "query"})
        if values[0].decode("utf-8", "replace") != caller.merchant.mch_id:
            raise V3Error(400, "PARAM_ERROR", MSG_MCHID_QUERY, {"field": "mchid", "location": "query"})

    def query_arg(self, name: str, default: str = "") -> str:
        values = self.request.query_arguments.get(name, [])
        if len(values) > 1:
            raise V3Error(400, "PARAM_ERROR", f"query参数{name}只能出现一次", {"field": name, "location": "query"})
        return values[0].decode("utf-8", "replace") if values else default


# --- orders ----------------------------------------------------------------------------


class PlaceOrderHandler(V3Handler):
    MUTATES = True

    @property
    def TEMPLATE(self) -> str:  # noqa: N802
        return f"v3/pay/transactions/{self.path_args[0]}" if self.path_args else "v3/pay/transactions"

    async def post(self, kind: str) -> None:
        await self._serve(kind)

    async def handle(self, caller: Caller, kind: str) -> tuple[int | None, Any]:
        body = self.body_with_mchid(caller)
        sim = self.sim
        order = rules.place_order(sim.pay, sim.config, caller.merchant, kind, body, sim.clock.now())
        if sim.faults.take(self.ENDPOINT, "early") is not None and sim.pay.pay(order, "ok"):
            await sim.notifier.deliver_first_now(sim.paid(order, start=False))
        if kind == "native":
            return 200, {"code_url": order.code_url}
        if kind == "h5":
            return 200, {"h5_url": f"{self.base_url}/_sim/mweb?prepay_id={order.prepay_id}&package={order.mweb_package}"}
        return 200, {"prepay_id": order.prepay_id}


class QueryByOutTradeNoHandler(V3Handler):
    TEMPLATE = "v3/pay/transactions/out-trade-no/{out_trade_no}"

    async def get(self, out_trade_no: str) -> None:
        await self._serve(out_trade_no)

    async def handle(self, caller: Caller, out_trade_no: str) -> tuple[int | None, Any]:
        self.query_mchid(caller)
        order = rules.find_order(self.sim.pay, caller.merchant.mch_id, out_trade_no=out_trade_no)
        return 200, rules.transaction_json(order)


class QueryByIdHandler(V3Handler):
    TEMPLATE = "v3/pay/transactions/id/{transaction_id}"

    async def get(self, transaction_id: str) -> None:
        await self._serve(transaction_id)

    async def handle(self, caller: Caller, transaction_id: str) -> tuple[int | None, Any]:
        self.query_mchid(caller)
        order = rules.find_order(self.sim.pay, caller.merchant.mch_id, transaction_id=transaction_id)
        return 200, rules.transaction_json(order)


class CloseHandler(V3Handler):
    TEMPLATE = "v3/pay/transactions/out-trade-no/{out_trade_no}/close"
    MUTATES = True

    async def post(self, out_trade_no: str) -> None:
        await self._serve(out_trade_no)

    async def handle(self, caller: Caller, out_trade_no: str) -> tuple[int | None, Any]:
        body = self.body_with_mchid(caller)
        rules.close_order(self.sim.pay, caller.merchant, out_trade_no, body)
        return 204, None


# --- refunds ---------------------------------------------------------------------------


class RefundHandler(V3Handler):
    TEMPLATE = "v3/refund/domestic/refunds"
    MUTATES = True
    FAULT_MARKS = (*V3_MARKS, "not_enough")

    async def post(self) -> None:
        await self._serve()

    async def handle(self, caller: Caller) -> tuple[int | None, Any]:
        body = parse_body(self.request.body or b"")
        if "not_enough" in self.sim.faults.marks(self):
            raise V3Error(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起")  # the merchant's balance
        sim = self.sim
        refund, new = rules.refund(sim.pay, sim.config, caller.merchant, body, sim.clock.now())
        if new and refund.refund_status != "PROCESSING":
            sim.refund_settled(refund)
        return 200, rules.refund_json(refund)


class RefundQueryHandler(V3Handler):
    TEMPLATE = "v3/refund/domestic/refunds/{out_refund_no}"

    async def get(self, out_refund_no: str) -> None:
        await self._serve(out_refund_no)

    async def handle(self, caller: Caller, out_refund_no: str) -> tuple[int | None, Any]:
        return 200, rules.refund_json(rules.find_refund(self.sim.pay, caller.merchant.mch_id, out_refund_no))


# --- bills (two steps) ------------------------------------------------------------------


class BillHandler(V3Handler):
    """Step 1 of both bills: render, keep under a token, answer the SHA1 and the URL."""

    async def get(self) -> None:
        await self._serve()

    def render(self, caller: Caller, day: str) -> bytes:
        raise NotImplementedError

    async def handle(self, caller: Caller) -> tuple[int | None, Any]:
        day = bills.bill_date(self.query_arg("bill_date"))
        tar_type = self.query_arg("tar_type")
        if tar_type not in ("", "GZIP"):
            raise V3Error(400, "PARAM_ERROR", "tar_type仅支持GZIP", {"field": "tar_type", "location": "query"})
        plain = self.render(caller, day)
        token, sha1 = self.sim.v3.bills.put(caller.merchant.mch_id, plain, tar_type, self.sim.clock.now())
        return 200, {"hash_type": "SHA1", "hash_value": sha1,
                     "download_url": f"{self.base_url}/v3/billdownload/file?token={token}"}

    def book(self, caller: Caller) -> tuple[list, list]:
        pay, mch_id = self.sim.pay, caller.merchant.mch_id
        return ([o for o in pay.orders.values() if o.mch_id == mch_id],
                [r for r in pay.refunds.values() if r.mch_id == mch_id])


class TradeBillHandler(BillHandler):
    TEMPLATE = "v3/bill/tradebill"

    def render(self, caller: Caller, day: str) -> bytes:
        orders, refunds = self.book(caller)
        return bills.trade_bill(day, self.query_arg("bill_type", "ALL"), caller.merchant.mch_id, orders, refunds,
                                self.sim.clock.now(), on_the_day=self.sim.config.bills_on_the_day)


class FundflowBillHandler(BillHandler):
    TEMPLATE = "v3/bill/fundflowbill"

    def render(self, caller: Caller, day: str) -> bytes:
        orders, refunds = self.book(caller)
        return bills.fundflow_bill(day, self.query_arg("account_type", "BASIC"), caller.merchant.mch_id, orders,
                                   refunds, self.sim.clock.now(), on_the_day=self.sim.config.bills_on_the_day)


class BillDownloadHandler(V3Handler):
    """Step 2: the file itself, Authorization-checked, never signed (digest §5.8)."""

    TEMPLATE = "v3/billdownload/file"

    async def get(self) -> None:
        await self._serve()

    async def handle(self, caller: Caller) -> tuple[int | None, Any]:
        data = self.sim.v3.bills.get(self.query_arg("token"), caller.merchant.mch_id, self.sim.clock.now())
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)
        return None, None


# --- certificates -----------------------------------------------------------------------


class CertificatesHandler(V3Handler):
    TEMPLATE = "v3/certificates"
    FAULT_MARKS = (*V3_MARKS, "tampered_ciphertext")

    async def get(self) -> None:
        await self._serve()

    async def handle(self, caller: Caller) -> tuple[int | None, Any]:
        keyring, now = caller.keyring, self.sim.clock.now()
        if keyring.key_mode == "public_key":
            raise V3Error(404, "RESOURCE_NOT_EXISTS", "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥")
        bent = Bent({"tampered_ciphertext": 0} if "tampered_ciphertext" in self.sim.faults.marks(self) else {})
        body = self.sim.v3.certificates_body(keyring, now, bent)
        return 200, body


class UnknownV3Handler(V3Handler):
    TEMPLATE = "v3/unknown"

    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(dumps({"code": "RESOURCE_NOT_EXISTS", "message": "请求的接口不存在，请检查URL路径"}))


def routes(sim: Any, prefix: str = "") -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    kw = {"sim": sim, "prefix": prefix}
    return [
        (r"/v3/pay/transactions/(jsapi|native|app|h5)", PlaceOrderHandler, kw),
        (r"/v3/pay/transactions/out-trade-no/([^/]+)/close", CloseHandler, kw),
        (r"/v3/pay/transactions/out-trade-no/([^/]+)", QueryByOutTradeNoHandler, kw),
        (r"/v3/pay/transactions/id/([^/]+)", QueryByIdHandler, kw),
        (r"/v3/refund/domestic/refunds", RefundHandler, kw),
        (r"/v3/refund/domestic/refunds/([^/]+)", RefundQueryHandler, kw),
        (r"/v3/bill/tradebill", TradeBillHandler, kw),
        (r"/v3/bill/fundflowbill", FundflowBillHandler, kw),
        (r"/v3/billdownload/file", BillDownloadHandler, kw),
        (r"/v3/certificates", CertificatesHandler, kw),
        (r"/v3/.*", UnknownV3Handler, kw),
    ]
