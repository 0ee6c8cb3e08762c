"""WeChat's payment notify: trust nothing until WeChat itself confirms.

Order of checks: the notify goes to the gateway of its API version (by its
shape: after a move between versions both kinds arrive, each proven with
its own version's key; ``wxpay.gateways``), which proves its origin with no
store lookup (a forgery costs nothing but CPU); the order it names is looked up;
the gateway judges the notify against that order (APIv2: its signature
again with *the order's* sign type, since a notify may omit
``sign_type``; appid and mch_id); the amount against the order; then the
payment confirmation (service/payments.py) asks WeChat's own records for
the same amount and transaction before one state-guarded move to paid
(that query bounded by ``confirm_timeout``: WeChat waits 5 s for our
answer). A repeat is accepted and changes nothing; anything we could not
finish is refused so WeChat retries.
"""
from __future__ import annotations

import logging
from typing import Mapping

from wxpay.errors import WxPayError
from wxpay.gateway import NotifyVerdict, OrderIdentity, Outcome, PayGateway, ProvenPayment, Refusal
from wxpay.gateways import Gateways

from .audit import Audit
from .keyed_locks import KeyedLocks
from .models import PAID, Order
from .notify_endpoint import DUPLICATE, NotifyEndpoint, Seen, accepted, refused, version_not_configured
from .notify_limiter import NotifyLimiter
from .notify_stats import NotifyStats
from .orders import OrderBook
from .payments import MISMATCH, NOT_PAID, NOTIFY, Payments

log = logging.getLogger("wxpay_server.notify")

CONFIRM_TIMEOUT_S = 3.0  # notify.confirm_timeout_s: WeChat waits 5 s for the answer


class PaymentNotifyService(NotifyEndpoint):
    kind = "notify"
    id_field = "out_trade_no"

    def __init__(
        self,
        orders: OrderBook,
        payments: Payments,
        gateways: Gateways | PayGateway,
        audit: Audit,
        *,
        max_bytes: int = 64 * 1024,
        limiter: NotifyLimiter | None = None,
        stats: NotifyStats | None = None,
        confirm_timeout: float | None = CONFIRM_TIMEOUT_S,
    ) -> None:
        super().__init__(audit, max_bytes=max_bytes, limiter=limiter, stats=stats)
        self.orders = orders
        self.payments = payments
        # One gateway is a set of one: only its version's notifies are read.
        self.gateways = gateways if isinstance(gateways, Gateways) else Gateways(gateways)
        self.confirm_timeout = confirm_timeout
        self._locks = KeyedLocks()

    async def _handle(self, headers: Mapping[str, str], body: bytes, seen: Seen) -> NotifyVerdict:
        seen.api_version, gateway = self.gateways.for_notify(headers, body)
        if gateway is None:
            return version_not_configured(seen.api_version)
        proven = await gateway.read_payment_notify(headers, body)
        if isinstance(proven, Refusal):
            seen.key, seen.verified = proven.key, proven.proven
            return proven.verdict
        out_trade_no = seen.key = proven.out_trade_no  # signed by WeChat: trusted as a name from here on
        seen.record = proven.record
        # Proven before any lookup: a store failure from here on is WeChat's notify unfinished,
        # never an outsider's for the limiter to count (or refuse).
        seen.verified = True
        order = await self.orders.get(out_trade_no)
        if order is None:
            return refused("unknown_order", Outcome.UNKNOWN, "unknown order")
        return await self._judged(gateway, proven, order, seen)

    async def _judged(self, gateway: PayGateway, proven: ProvenPayment, order: Order, seen: Seen) -> NotifyVerdict:
        out_trade_no = order.out_trade_no
        notice = gateway.judge_payment_notify(proven, OrderIdentity(order.appid, order.mch_id, order.sign_type))
        if isinstance(notice, Refusal):
            seen.verified = notice.proven
            return notice.verdict
        seen.verified = True
        if notice.amount_fen != order.total_fee:
            return refused("amount_mismatch", Outcome.INVALID, "amount mismatch")
        if order.state == PAID:
            return await self._repeat(order, notice.transaction_id)
        async with self._locks.hold(out_trade_no) as waited:
            # Uncontended, the order just read is still the one to confirm: a
            # change by another process meanwhile loses at the move's
            # compare-and-set. After waiting, a duplicate may have paid it.
            known = None if waited else order
            return await self._confirm(out_trade_no, notice.transaction_id, known)

    async def _repeat(self, order: Order, transaction_id: str) -> NotifyVerdict:
        if order.transaction_id and order.transaction_id != transaction_id:
            return refused("transaction_mismatch", Outcome.CONFLICT, "transaction mismatch")
        if order.settle_due_at is not None:
            # The first delivery moved the order but did not finish (crash,
            # store failure): finish now, before telling WeChat to stop.
            await self.payments.settle(order)
        return accepted(DUPLICATE)

    async def _confirm(self, out_trade_no: str, transaction_id: str, known: Order | None = None) -> NotifyVerdict:
        order = known or await self.orders.require(out_trade_no)
        if order.state == PAID:  # a concurrent duplicate got here first
            return await self._repeat(order, transaction_id)
        try:
            # WeChat waits 5 s for our answer: the query is bounded, and unfinished means a retry.
            confirmation = await self.payments.confirm(
                order, via=NOTIFY, transaction_id=transaction_id, query_timeout=self.confirm_timeout)
        except WxPayError as exc:
            return refused(f"query_failed_{exc.code}", Outcome.UNAVAILABLE, "could not confirm with WeChat")
        if confirmation.outcome == NOT_PAID:
            return refused(f"query_says_{confirmation.facts.state}", Outcome.CONFLICT, "not paid per orderquery")
        if confirmation.outcome == MISMATCH:
            return refused("query_mismatch", Outcome.CONFLICT, "orderquery disagrees with notify")
        if not confirmation.paid:
            return refused(confirmation.reason or confirmation.outcome, Outcome.CONFLICT, "order state conflict")
        return accepted(confirmation.outcome)
