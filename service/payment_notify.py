"""WeChat's payment notify: trust nothing until WeChat itself confirms.

Order of checks: size and safe parse; the signature with the sign type the
notify shows (no store lookup for a forgery); the order named by
out_trade_no; the signature again with *that order's* sign type (a notify
may omit ``sign_type``); appid, mch_id and amount against
the order; then ``pay/orderquery`` must say SUCCESS for the same amount and
transaction before one state-guarded move to paid. A repeat is answered
SUCCESS and changes nothing; anything we could not finish is answered FAIL
so WeChat retries.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Callable

from wxpay import notify as wxnotify
from wxpay.errors import (
    IdentityMismatchError,
    ProtocolError,
    SignatureError,
    WxPayError,
)

from .audit import Audit
from .clock import utcnow
from .errors import Conflict
from .keyed_locks import KeyedLocks
from .notify_endpoint import NotifyEndpoint, NotifyOutcome, Seen
from .notify_limiter import NotifyLimiter
from .models import PAID, Order
from .orders import OrderBook, Payment
from .pauses import pause

log = logging.getLogger("wxpay_server.notify")

_OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,32}")  # WeChat's charset for out_trade_no


class PaymentNotifyService(NotifyEndpoint):
    kind = "notify"
    id_field = "out_trade_no"

    def __init__(
        self,
        orders: OrderBook,
        pay: Any,
        audit: Audit,
        *,
        api_key: str,
        max_bytes: int = 64 * 1024,
        limiter: NotifyLimiter | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(audit, max_bytes=max_bytes, limiter=limiter)
        self.orders = orders
        self.pay = pay
        self._key = api_key
        self.now = now
        self._locks = KeyedLocks()

    async def _handle(self, body: bytes, seen: Seen) -> NotifyOutcome:
        fields = self.read(body)
        if isinstance(fields, NotifyOutcome):
            return fields
        out_trade_no = fields.get("out_trade_no")
        if not out_trade_no or len(out_trade_no) > 32:
            return NotifyOutcome.make(False, 400, "missing_out_trade_no", "missing out_trade_no")
        if _OUT_TRADE_NO.fullmatch(out_trade_no):  # else an unverified record keeps no key
            seen.key = out_trade_no
        try:
            # The proof of origin before anything that costs: a forgery never
            # reaches the store.
            wxnotify.verify_notify_origin(fields, key=self._key)
        except SignatureError:
            return NotifyOutcome.make(False, 400, "bad_signature", "signature error")
        seen.key = out_trade_no  # signed with our key: trusted as a name from here on
        order = await self.orders.get(out_trade_no)
        if order is None:
            seen.verified = True  # signed with our key: WeChat sent it, for an order we do not have
            return NotifyOutcome.make(False, 404, "unknown_order", "unknown order")
        try:
            notify = wxnotify.verify_payment_notify(
                fields, key=self._key, sign_type=order.sign_type, appid=order.appid, mch_id=order.mch_id
            )
        except SignatureError:  # signed, but not with the sign type this order was created with
            return NotifyOutcome.make(False, 400, "bad_signature", "signature error")
        except WxPayError as exc:
            seen.verified = True  # every other error comes after the signature verified
            if isinstance(exc, IdentityMismatchError):
                return NotifyOutcome.make(False, 400, "identity_mismatch", "appid or mch_id mismatch")
            if isinstance(exc, ProtocolError):
                return NotifyOutcome.make(False, 400, exc.code, "malformed notify field")
            # Signed, but not a successful payment: nothing to apply, nothing to retry.
            return NotifyOutcome.make(True, 200, f"ignored_{exc.code}", "OK")
        seen.verified = True
        if notify.total_fee != order.total_fee:
            return NotifyOutcome.make(False, 400, "amount_mismatch", "amount mismatch")
        if order.state == PAID:
            return await self._repeat(order, notify.transaction_id)
        async with self._locks.hold(out_trade_no) as waited:
            # Uncontended, the order just read is still the one to confirm: a
            # change by another process meanwhile loses at mark_paid's
            # compare-and-set. After waiting, a duplicate may have paid it.
            known = None if waited else order
            return await self._confirm(out_trade_no, notify.transaction_id, known)

    async def _repeat(self, order, transaction_id: str) -> NotifyOutcome:
        if order.transaction_id and order.transaction_id != transaction_id:
            return NotifyOutcome.make(False, 409, "transaction_mismatch", "transaction mismatch")
        if order.settle_due_at is not None:
            # The first delivery moved the order but did not finish (crash,
            # store failure): finish now, before telling WeChat to stop.
            await self.orders.settle_paid(order)
        return NotifyOutcome.make(True, 200, "duplicate", "OK")

    async def _confirm(self, out_trade_no: str, transaction_id: str, known: Order | None = None) -> NotifyOutcome:
        order = known or await self.orders.require(out_trade_no)
        if order.state == PAID:  # a concurrent duplicate got here first
            return await self._repeat(order, transaction_id)
        try:
            query = await self.pay.order_query(out_trade_no=out_trade_no)
        except WxPayError as exc:
            return NotifyOutcome.make(False, 503, f"query_failed_{exc.code}", "could not confirm with WeChat")
        if query.trade_state != "SUCCESS":
            return NotifyOutcome.make(False, 409, f"query_says_{query.trade_state}", "not paid per orderquery")
        if query.total_fee != order.total_fee or (query.transaction_id or transaction_id) != transaction_id:
            log.error("orderquery disagrees with notify for %s", out_trade_no)
            return NotifyOutcome.make(False, 409, "query_mismatch", "orderquery disagrees with notify")
        await pause("notify.before_mark_paid")
        try:
            outcome = await self.orders.mark_paid(order, payment_from_query(query), via="notify")
        except Conflict as exc:
            return NotifyOutcome.make(False, 409, exc.code, "order state conflict")
        return NotifyOutcome.make(True, 200, "paid" if outcome.newly_paid else "duplicate", "OK")


def payment_from_query(query: Any) -> Payment:
    return Payment(
        transaction_id=query.transaction_id,
        total_fee=query.total_fee,
        time_end=query.time_end,
        bank_type=query.bank_type,
        cash_fee=query.cash_fee,
        openid=query.openid,
    )
