"""The gateway on APIv2: XML, the merchant's API key, MD5 or HMAC-SHA256.

Everything on the wire is done by the modules that already speak APIv2
(:mod:`wxpay.client`, :mod:`wxpay.payloads`, :mod:`wxpay.notify`); this
class only translates between them and the version-neutral contract of
:mod:`wxpay.gateway`. The API key stays in the :class:`~wxpay.merchant.Merchant`
of the client it is given.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Iterable, Mapping

from . import notify as wxnotify
from . import payloads
from .bill import Bill
from .client import WxPayClient
from .errors import ConfigError, InvalidArgumentError, RefundNotExistError, SignatureError
from .gateway import (
    BillLine,
    DayBill,
    JsapiPayloads,
    NotifyVerdict,
    OrderIdentity,
    OrderRequest,
    Outcome,
    PayGateway,
    PaymentFacts,
    PaymentNotice,
    PlacedOrder,
    ProvenPayment,
    RefundAccepted,
    RefundFacts,
    RefundNotice,
    RefundRequest,
    Refusal,
    WireReply,
)
from .payloads import AppPayload, MiniProgramPayload
from .signing import SIGN_TYPES

__all__ = ["V2Gateway", "bill_lines", "refund_status", "wire_reply"]

_OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,32}")  # WeChat's charset for out_trade_no
WAP_NAME_MAX = 32  # characters of the H5 site's name WeChat takes

# APIv2's refund words -> the contract's (APIv3's).
_REFUND_STATUS = {"SUCCESS": "SUCCESS", "REFUNDCLOSE": "CLOSED", "PROCESSING": "PROCESSING", "CHANGE": "ABNORMAL"}


def refund_status(wire: str) -> str:
    """An APIv2 refund_status in the contract's words; an unknown word stays as WeChat wrote it."""
    return _REFUND_STATUS.get(wire, wire)


def bill_lines(bill: Bill) -> tuple[BillLine, ...]:
    """A trade bill's rows as the contract's lines.

    The file is APIv2's statement in both versions (APIv3's bill download
    serves the same text), so both gateways read it here.
    """
    return tuple(
        BillLine(
            out_trade_no=row.out_trade_no,
            transaction_id=row.transaction_id,
            trade_state=row.trade_state,
            amount_fen=row.total_fee if row.total_fee is not None else row.settlement_total_fee,
            out_refund_no=row.out_refund_no,
            refund_id=row.refund_id,
            refund_fen=row.refund_fee,
            refund_status=refund_status(row.refund_status) if row.refund_status else None,
        )
        for row in bill.rows
    )


class V2Gateway(PayGateway):
    """:class:`~wxpay.gateway.PayGateway` over a :class:`~wxpay.client.WxPayClient`.

    ``appids``: every appid bound to the merchant (the Official Account, a
    Mini Program, the mobile app); a refund notify naming another is refused.
    """

    api_version = "v2"

    def __init__(
        self,
        client: WxPayClient,
        *,
        appids: Iterable[str | None] = (),
        max_notify_bytes: int = wxnotify.MAX_NOTIFY_BYTES,
    ) -> None:
        if not isinstance(client, WxPayClient):
            raise ConfigError("V2Gateway needs a wxpay.client.WxPayClient")
        merchant = client.merchant
        super().__init__(mch_id=merchant.mch_id, sign_type=merchant.sign_type, max_notify_bytes=max_notify_bytes)
        self._client = client
        self._merchant = merchant
        self.appids = frozenset(a for a in (merchant.appid, *appids) if a)

    def __repr__(self) -> str:
        return f"V2Gateway(mch_id={self.mch_id!r}, sign_type={self.sign_type!r}, appids={sorted(self.appids)!r})"

    # -- orders ------------------------------------------------------------------------------

    async def _place_order(self, request: OrderRequest) -> PlacedOrder:
        scene_info = None
        if request.trade_type == "MWEB":
            site = request.h5_site
            assert site is not None  # checked by place_order
            scene_info = {"h5_info": {"type": "Wap", "wap_url": site.url, "wap_name": site.name[:WAP_NAME_MAX]}}
        result = await self._client.unified_order(
            trade_type=request.trade_type,
            out_trade_no=request.out_trade_no,
            total_fee=request.amount_fen,
            body=request.description,
            notify_url=request.notify_url,
            spbill_create_ip=request.client_ip,
            openid=request.openid if request.trade_type == "JSAPI" else None,
            product_id=request.product_id if request.trade_type == "NATIVE" else None,
            scene_info=scene_info,
            attach=request.attach,
            time_expire=request.expires_at,
            appid=request.appid,
        )
        return PlacedOrder(
            out_trade_no=request.out_trade_no,
            trade_type=request.trade_type,
            sign_type=self._merchant.sign_type,
            prepay_id=result.prepay_id,
            code_url=result.code_url,
            h5_url=result.mweb_url,
        )

    def signs(self, sign_type: str) -> bool:
        return sign_type in SIGN_TYPES

    def _sign_type(self, sign_type: str) -> str:
        if not self.signs(sign_type):
            raise InvalidArgumentError(f"An APIv2 gateway cannot sign for an order of sign type {sign_type!r}")
        return sign_type

    def jsapi_payloads(self, *, appid: str, prepay_id: str, sign_type: str) -> JsapiPayloads:
        bridge, choose = payloads.jsapi_payloads(appid, prepay_id, self._merchant.api_key, self._sign_type(sign_type))
        return JsapiPayloads(bridge, choose)

    def mini_program_payload(self, *, appid: str, prepay_id: str, sign_type: str) -> MiniProgramPayload:
        return payloads.mini_program_payload(appid, prepay_id, self._merchant.api_key, self._sign_type(sign_type))

    def app_payload(self, *, appid: str, prepay_id: str, sign_type: str) -> AppPayload:
        return payloads.app_payload(
            appid, self._merchant.mch_id, prepay_id, self._merchant.api_key, self._sign_type(sign_type)
        )

    async def query_order(self, out_trade_no: str) -> PaymentFacts:
        q = await self._client.order_query(out_trade_no=out_trade_no)
        return PaymentFacts(
            out_trade_no=q.out_trade_no or out_trade_no,
            state=q.trade_state,
            amount_fen=q.total_fee,
            transaction_id=q.transaction_id,
            paid_at=q.time_end,
            payer_openid=q.openid,
            payer_fen=q.cash_fee,
            bank_type=q.bank_type,
            trade_type=q.trade_type,
            state_desc=q.trade_state_desc,
        )

    async def close_order(self, out_trade_no: str, *, appid: str | None = None) -> None:
        await self._client.close_order(out_trade_no, appid=appid)

    # -- refunds ------------------------------------------------------------------------------

    async def _refund(self, request: RefundRequest) -> RefundAccepted:
        result = await self._client.refund(
            out_refund_no=request.out_refund_no,
            total_fee=request.total_fen,
            refund_fee=request.refund_fen,
            out_trade_no=request.out_trade_no,
            notify_url=request.notify_url,
            refund_desc=request.reason,
            appid=request.appid,
            retry=True,  # safe: WeChat refunds one out_refund_no once
        )
        return RefundAccepted(out_refund_no=result.out_refund_no, refund_id=result.refund_id,
                              refund_fen=result.refund_fee)

    async def query_refund(self, out_refund_no: str, *, appid: str | None = None) -> RefundFacts:
        result = await self._client.refund_query(out_refund_no=out_refund_no, appid=appid)
        item = next((r for r in result.refunds if r.out_refund_no == out_refund_no), None)
        if item is None:
            raise RefundNotExistError(f"WeChat's refundquery does not list {out_refund_no}")
        return RefundFacts(
            out_refund_no=item.out_refund_no,
            status=refund_status(item.refund_status),
            refund_fen=item.refund_fee,
            refund_id=item.refund_id,
            out_trade_no=result.out_trade_no,
            succeeded_at=item.success_time,
        )

    # -- the day's bill -----------------------------------------------------------------------

    async def day_bill(self, day: date) -> DayBill:
        return DayBill(day, bill_lines(await self._client.download_bill(day, "ALL")))

    # -- notifies -------------------------------------------------------------------------------

    async def _read_payment_notify(self, headers: Mapping[str, str], body: bytes) -> ProvenPayment | Refusal:
        fields = wxnotify.read_notify(body, max_bytes=self.max_notify_bytes)
        out_trade_no = fields.get("out_trade_no")
        if not out_trade_no or len(out_trade_no) > 32:
            return Refusal(NotifyVerdict("missing_out_trade_no", Outcome.INVALID, "missing out_trade_no"))
        claimed = out_trade_no if _OUT_TRADE_NO.fullmatch(out_trade_no) else None  # else no key is kept
        try:
            # Only our key passes, with the sign type the notify shows (or its
            # signature's length implies): the order's own comes next.
            signed_with = wxnotify.verify_notify_origin(fields, key=self._merchant.api_key)
        except SignatureError:
            return Refusal(NotifyVerdict("bad_signature", Outcome.INVALID, "signature error"), key=claimed)
        return ProvenPayment(out_trade_no, signed_with, evidence=fields)

    def _judge_payment_notify(self, proven: ProvenPayment, order: OrderIdentity) -> PaymentNotice | Refusal:
        try:
            notify = wxnotify.verify_payment_notify(
                proven.evidence, key=self._merchant.api_key, sign_type=order.sign_type,
                appid=order.appid, mch_id=order.mch_id, origin_sign_type=proven.signed_with,
            )
        except SignatureError:  # signed, but not with the sign type this order was created with
            return Refusal(NotifyVerdict("bad_signature", Outcome.INVALID, "signature error"), key=proven.out_trade_no)
        return PaymentNotice(
            out_trade_no=notify.out_trade_no,
            transaction_id=notify.transaction_id,
            amount_fen=notify.total_fee,
            mch_id=notify.mch_id,
            appid=notify.appid,
            paid_at=notify.time_end,
            payer_openid=notify.openid,
        )

    async def _read_refund_notify(self, headers: Mapping[str, str], body: bytes) -> RefundNotice | Refusal:
        outer = wxnotify.read_notify(body, max_bytes=self.max_notify_bytes)
        appid = outer.get("appid") or ""
        if appid not in self.appids:  # unencrypted, so unproven: refused before any decryption
            return Refusal(NotifyVerdict("identity_mismatch", Outcome.INVALID, "appid or mch_id mismatch"))
        notify = wxnotify.decrypt_refund_notify(
            body, key=self._merchant.api_key, appid=appid, mch_id=self.mch_id, max_bytes=self.max_notify_bytes
        )
        return RefundNotice(
            out_refund_no=notify.out_refund_no,
            out_trade_no=notify.out_trade_no,
            refund_id=notify.refund_id,
            refund_fen=notify.refund_fee,
            status=refund_status(notify.refund_status),
            mch_id=notify.mch_id,
            appid=notify.appid,
            succeeded_at=notify.success_time,
        )

    def _wire_reply(self, verdict: NotifyVerdict, status: int) -> WireReply:
        return wire_reply(verdict, status)


def wire_reply(verdict: NotifyVerdict, status: int) -> WireReply:
    """APIv2's answer to a notify: XML SUCCESS/FAIL (what WeChat reads), with the outcome's status."""
    return WireReply(status, "text/xml; charset=utf-8", wxnotify.notify_reply(verdict.ok, verdict.message or None))
