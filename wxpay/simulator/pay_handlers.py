"""The Pay V2 endpoints over HTTP: XML in, signed XML out, WeChat's two failure shapes.

Layer 1 (``return_code=FAIL``, unsigned) for what stops WeChat before the
business logic: unparseable XML, wrong method, unknown merchant, bad
signature. Layer 2 (``result_code=FAIL`` with ``err_code``), signed with the
merchant's key and the request's sign type, for everything else (§1).
"""
from __future__ import annotations

import gzip
from typing import Any, Mapping

import tornado.web

from .. import signing
from ..errors import WxPayError
from ..xmlcodec import build_xml, parse_xml
from . import bill
from .apihandler import SimHandler
from .config import SimMerchant
from .pay_state import PayFail, ReturnFail

XML_TYPE = "text/xml; charset=UTF-8"


class PayHandler(SimHandler):
    """POST XML → one PayState call → the reply; subclasses implement :meth:`handle`."""

    PATH = ""
    sign_fail_msg = "签名错误"

    @property
    def base_url(self) -> str:
        """Scheme, host and mount prefix of this simulator as the caller reached it."""
        path, suffix = self.request.path, "/" + self.PATH
        prefix = path[: -len(suffix)] if path.endswith(suffix) else ""
        return f"{self.request.protocol}://{self.request.host}{prefix}"

    def get(self) -> None:
        self._fail("请使用post方法")  # REQUIRE_POST_METHOD

    async def post(self) -> None:
        body = self.request.body or b""
        if not body.strip():
            return self._fail("post数据为空")  # POST_DATA_EMPTY
        try:
            params = parse_xml(body)
        except WxPayError:
            return self._fail("XML格式错误")  # XML_FORMAT_ERROR
        try:
            merchant, sign_type = self.sim.pay.authenticate(params, sign_fail_msg=self.sign_fail_msg)
        except ReturnFail as exc:
            return self._fail(exc.return_msg)
        try:
            if "systemerror" in self.sim.faults.marks(self):
                raise PayFail("SYSTEMERROR", "系统繁忙，请稍后再试")
            fields = await self.handle(params, merchant, sign_type)
        except ReturnFail as exc:
            return self._fail(exc.return_msg)
        except PayFail as exc:
            return self._signed(params, merchant, sign_type, {"result_code": "FAIL", "err_code": exc.err_code,
                                                               "err_code_des": exc.err_code_des})
        if fields is not None:
            self._signed(params, merchant, sign_type, {"result_code": "SUCCESS", **fields})

    async def handle(self, params: Mapping[str, str], merchant: SimMerchant, sign_type: str) -> dict[str, Any] | None:
        raise NotImplementedError

    # --- writing ------------------------------------------------------------

    def _fail(self, return_msg: str) -> None:
        self._write({"return_code": "FAIL", "return_msg": return_msg})

    def _signed(self, params: Mapping[str, str], merchant: SimMerchant, sign_type: str, fields: dict[str, Any]) -> None:
        reply: dict[str, Any] = {
            "return_code": "SUCCESS", "return_msg": "OK",
            "appid": params.get("appid") or None, "mch_id": merchant.mch_id,
            "nonce_str": signing.make_nonce(),
        }
        reply.update(fields)
        reply = {k: v for k, v in reply.items() if v is not None}
        reply["sign"] = signing.sign(reply, merchant.api_key, sign_type)
        if "bad_sign" in self.sim.faults.marks(self):
            reply["sign"] = reply["sign"][::-1] if reply["sign"] != reply["sign"][::-1] else "0" * len(reply["sign"])
        self._write(reply)

    def _write(self, reply: dict[str, Any]) -> None:
        body = build_xml(reply)
        if "malformed" in self.sim.faults.marks(self):
            body = body[: max(1, len(body) // 2)]
        self.set_header("Content-Type", XML_TYPE)
        self.finish(body)


class UnifiedOrderHandler(PayHandler):
    ENDPOINT = PATH = "pay/unifiedorder"

    async def handle(self, params, merchant, sign_type):
        fields = self.sim.pay.unified_order(params, merchant, sign_type)
        order = self.sim.pay.order(merchant.mch_id, params["out_trade_no"])
        if order.trade_type == "MWEB":
            fields["mweb_url"] = (f"{self.base_url}/_sim/mweb?prepay_id={order.prepay_id}"
                                  f"&package={order.mweb_package}")
        if self.sim.faults.take(self.ENDPOINT, "early") is not None:
            # The shopper pays at once and the notify lands before this reply.
            if self.sim.pay.pay(order, "ok"):
                await self.sim.notifier.deliver_first_now(self.sim.paid(order, start=False))
        return fields


class OrderQueryHandler(PayHandler):
    ENDPOINT = PATH = "pay/orderquery"

    async def handle(self, params, merchant, sign_type):
        return self.sim.pay.order_query(params, merchant)


class CloseOrderHandler(PayHandler):
    ENDPOINT = PATH = "pay/closeorder"

    async def handle(self, params, merchant, sign_type):
        return self.sim.pay.close_order(params, merchant)


class RefundHandler(PayHandler):
    """secapi/pay/refund. WeChat demands the merchant's TLS client certificate
    here; the simulator serves plain HTTP, so it accepts refunds only on the
    secapi path and records how the certificate was (not) presented."""

    ENDPOINT = PATH = "secapi/pay/refund"

    async def handle(self, params, merchant, sign_type):
        cert = "emulated (secapi path, no TLS)"
        if self.request.protocol == "https":
            try:
                cert = "tls-client-cert" if self.request.get_ssl_certificate() else "tls without client cert"
            except (AttributeError, ValueError):
                pass
        if "not_enough" in self.sim.faults.marks(self):
            raise PayFail("NOTENOUGH", "基本账户余额不足，请充值后重新发起")  # the merchant's balance (fault)
        refund, new = self.sim.pay.refund(params, merchant, client_cert=cert)
        if new and refund.refund_status != "PROCESSING":
            self.sim.refund_settled(refund)
        return self.sim.pay.refund_reply(refund)


class RefundQueryHandler(PayHandler):
    ENDPOINT = PATH = "pay/refundquery"

    async def handle(self, params, merchant, sign_type):
        return self.sim.pay.refund_query(params, merchant)


class DownloadBillHandler(PayHandler):
    """Success is a text (or gzip) body, not XML; every failure is layer 1 (§9)."""

    ENDPOINT = PATH = "pay/downloadbill"
    sign_fail_msg = "SIGN ERROR"

    async def handle(self, params, merchant, sign_type):
        pay = self.sim.pay
        try:
            pay.check_app(params, merchant)
        except PayFail as exc:
            raise ReturnFail(exc.err_code_des) from None
        bill_date = params.get("bill_date") or ""
        bill_type = params.get("bill_type") or "ALL"
        if not bill_date:
            raise ReturnFail("missing parameter")
        if bill_type not in bill.BILL_TYPES:
            raise ReturnFail("invalid bill_type")
        if not (len(bill_date) == 8 and bill_date.isdigit()):
            raise ReturnFail("data format error")
        if params.get("tar_type") not in (None, "", "GZIP"):
            raise ReturnFail("invalid tar_type")
        try:
            bill.check_ready(bill_date, self.sim.clock.now(), on_the_day=self.sim.config.bills_on_the_day)
            orders = [o for o in pay.orders.values() if o.mch_id == merchant.mch_id]
            text = bill.render(
                bill_date, bill_type, merchant.mch_id, orders, pay.refunds.values(),
                {o.out_trade_no: o for o in orders},
            )
        except bill.BillUnavailable as exc:
            raise ReturnFail(exc.return_msg) from None
        data = text.encode("utf-8")
        if params.get("tar_type") == "GZIP":
            self.set_header("Content-Type", "application/x-gzip")
            self.finish(gzip.compress(data))
        else:
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish(data)
        return None


def routes(sim: Any) -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    kw = {"sim": sim}
    return [
        (r"/pay/unifiedorder", UnifiedOrderHandler, kw),
        (r"/pay/orderquery", OrderQueryHandler, kw),
        (r"/pay/closeorder", CloseOrderHandler, kw),
        (r"/secapi/pay/refund", RefundHandler, kw),
        (r"/pay/refundquery", RefundQueryHandler, kw),
        (r"/pay/downloadbill", DownloadBillHandler, kw),
    ]
