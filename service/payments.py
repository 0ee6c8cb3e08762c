"""Confirming a payment: one use case, whoever asks (the notify, the reconciler, a cancel).

Nothing is believed until WeChat's own records say so: :meth:`Payments.confirm`
queries the order through the gateway, compares the amount (and the
transaction a notify named) with ours, then moves the order to paid in one
compare-and-set and settles what follows from it. A repeat, from whatever
side, finds the order paid and changes nothing.

Settling (:meth:`Payments.settle`) is what a payment implies beyond its
order: the checkout moves open → paid; or, when another order paid it
first or the merchant was told it is closed, it is flagged ``double_paid``
and the payment is refunded (the close stays true); every sibling that
could still be paid (created or prepaid) is handed to the reconciler to be
closed; the merchant's webhook is written. The move to paid sets
``settle_due_at`` in the same write and settling clears it last, so a crash
or a store failure in between is finished by the next notify or the
reconciler's sweep.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Protocol

from wxpay.errors import WxTimeoutError
from wxpay.gateway import PayGateway, PaymentFacts

from .audit import Audit
from .clock import utcnow
from .lifecycle import CHECKOUT, ORDER, Lifecycle
from .models import CLOSED, CREATED, PAID, PAID_STATUSES, PREPAID, Checkout, Order
from .orders import OrderBook
from .outbox import Outbox
from .pauses import pause

log = logging.getLogger("wxpay_server.orders")

NOTIFY = "notify"
RECONCILER = "reconciler"

# What a confirmation found.
CONFIRMED = "paid"           # newly paid, by this call
ALREADY_PAID = "duplicate"   # paid before (settled now if it had been cut short)
NOT_PAID = "not_paid"        # WeChat says it is not paid (facts.state says how)
MISMATCH = "mismatch"        # WeChat's payment is not this order's (code says what differs)
CONFLICT = "order_state"     # the order moved somewhere paid cannot follow


class DoublePayments(Protocol):
    """Told of a payment its checkout cannot keep (paid already, or closed): give it back."""

    async def double_paid(self, order: Order, checkout: Checkout) -> object: ...


@dataclass(frozen=True)
class Confirmation:
    outcome: str
    order: Order
    facts: PaymentFacts
    reason: str | None = None  # MISMATCH: amount_mismatch / transaction_mismatch; CONFLICT: order_state

    @property
    def paid(self) -> bool:
        return self.outcome in (CONFIRMED, ALREADY_PAID)


class Payments:
    def __init__(
        self,
        gateway: PayGateway,
        orders: OrderBook,
        lifecycle: Lifecycle,
        outbox: Outbox,
        audit: Audit,
        *,
        double_payments: DoublePayments,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.gateway = gateway
        self.orders = orders
        self.lifecycle = lifecycle
        self.outbox = outbox
        self.audit = audit
        self.double_payments = double_payments
        self.now = now
        # Payments this process moved to paid, by who asked (NOTIFY, RECONCILER); for
        # /status and /metrics: confirmations only by the reconciler mean notifies are lost.
        self.confirmed: dict[str, int] = {NOTIFY: 0, RECONCILER: 0}

    async def confirm(
        self, order: Order, *, via: str, transaction_id: str | None = None, query_timeout: float | None = None,
    ) -> Confirmation:
        """Ask WeChat about ``order`` and record a payment it confirms.

        ``transaction_id``: the one a notify named, which WeChat's record
        must carry too. ``query_timeout``: how long WeChat's answer may take
        (its retries included; a notify must be answered within WeChat's 5 s).
        Raises the gateway's errors (``OrderNotExistError`` when WeChat has
        no such order; transport errors, ``WxTimeoutError`` past the
        timeout: nothing changed)."""
        # A notify's own audit record stands for its query (the hot path writes no more).
        ask = self._ask if via == NOTIFY else self._query
        facts = await ask(order.out_trade_no, query_timeout)
        if not facts.paid:
            return Confirmation(NOT_PAID, order, facts)
        if facts.amount_fen != order.total_fee:
            log.error("WeChat reports %s fen for %s (ours %s)", facts.amount_fen, order.out_trade_no, order.total_fee)
            return Confirmation(MISMATCH, order, facts, reason="amount_mismatch")
        if transaction_id is not None and (facts.transaction_id or transaction_id) != transaction_id:
            log.error("orderquery names another transaction than the notify for %s", order.out_trade_no)
            return Confirmation(MISMATCH, order, facts, reason="transaction_mismatch")
        if via == NOTIFY:
            await pause("notify.before_mark_paid")
        now = self.now()
        moved = await self.lifecycle.move_order(
            order, PAID,
            transaction_id=facts.transaction_id or transaction_id,
            time_end=facts.paid_at,
            bank_type=facts.bank_type,
            cash_fee=facts.payer_fen,
            paid_at=now,
            paid_via=via,
            next_check_at=None,
            settle_due_at=now,
        )
        if moved is None:
            current = await self.orders.require(order.out_trade_no)
            if current.state != PAID:
                return Confirmation(CONFLICT, current, facts, reason="order_state")
            if current.settle_due_at is not None:
                await self.settle(current)
            return Confirmation(ALREADY_PAID, current, facts)
        self.confirmed[via] = self.confirmed.get(via, 0) + 1
        await self.settle(moved)
        return Confirmation(CONFIRMED, moved, facts)

    async def _query(self, out_trade_no: str, timeout: float | None) -> PaymentFacts:
        """The query, recorded in the audit trail (a checkout's timeline shows it)."""
        async with self.audit.wechat_call(
            "query_order", out_trade_no=out_trade_no, api_version=self.gateway.api_version
        ) as call:
            facts = await self._ask(out_trade_no, timeout)
            call.result = facts.state
        return facts

    async def _ask(self, out_trade_no: str, timeout: float | None) -> PaymentFacts:
        # ``asyncio.timeout`` bounds the await in this task: unlike ``wait_for``
        # it starts no second task per query (the notify's hot path).
        deadline = asyncio.timeout(timeout)  # None: unbounded
        try:
            async with deadline:
                return await self.gateway.query_order(out_trade_no)
        except TimeoutError:
            if not deadline.expired():  # the gateway's own, not our budget's: as it is
                raise
            raise WxTimeoutError(
                f"WeChat's order query for {out_trade_no} did not finish within {timeout:g} s") from None

    async def settle(self, order: Order) -> tuple[Checkout | None, bool]:
        """What a payment implies beyond the order's own move; then clear
        ``settle_due_at``. Idempotent, so it is simply run again after a
        crash or a store failure part-way. Returns the checkout and whether
        this payment is one the checkout cannot keep."""
        await pause("orders.before_settle")
        checkout, double = await self._settle_checkout(order, order.paid_at or self.now())
        await self._close_siblings(order, checkout)
        if checkout is not None:
            if double:
                try:
                    await self.double_payments.double_paid(order, checkout)
                except Exception:  # never undo a recorded payment; the refund is retried by the reconciler
                    log.exception("double payment of %s not refunded yet", order.out_trade_no)
            else:
                await self.outbox.announce(checkout.id, checkout)
        await self.lifecycle.update(ORDER, order.out_trade_no, where={"state": PAID}, settle_due_at=None)
        return checkout, double

    async def _settle_checkout(self, order: Order, now: datetime) -> tuple[Checkout | None, bool]:
        """The checkout's side: open → paid; or, when another order paid it
        already or the merchant was told it is closed, the ``double_paid``
        flag (the payment is refunded by the caller)."""
        paid = await self.lifecycle.move_checkout(
            order.checkout_id, PAID, paid_out_trade_no=order.out_trade_no, paid_at=now
        )
        if paid is not None:
            return paid, False
        reason = "second_payment"
        doc = await self.lifecycle.update(
            CHECKOUT, order.checkout_id,
            where={"status": {"$in": list(PAID_STATUSES)}, "paid_out_trade_no": {"$ne": order.out_trade_no}},
            double_paid=True, updated_at=now,
        )
        if doc is None:
            # Closed, and final: the money goes back, the close stays true.
            reason = "paid_after_close"
            doc = await self.lifecycle.update(
                CHECKOUT, order.checkout_id, where={"status": CLOSED}, double_paid=True, updated_at=now
            )
        if doc is None:  # ours already (a repeat), or no such checkout
            return None, False
        checkout = Checkout.from_doc(doc)
        log.error(
            "DOUBLE PAYMENT (%s): checkout %s (%s) paid by %s; refunding it",
            reason, order.checkout_id, checkout.status, order.out_trade_no,
        )
        await self.audit.record(
            "double_payment", verdict="flagged", reason=reason, checkout_id=order.checkout_id,
            out_trade_no=order.out_trade_no, first_out_trade_no=checkout.paid_out_trade_no,
        )
        return checkout, True

    async def _close_siblings(self, paid: Order, checkout: Checkout | None = None) -> None:
        """Unpaid siblings must never be paid too: hand them to the reconciler now.

        ``checkout``, as just written: when it counts exactly one WeChat order
        ever reserved, that one is ``paid`` (every order is reserved before it
        is stored) and there is nothing to look up. A checkout from before the
        count (no ``orders_made``) is looked up as always."""
        if checkout is not None and checkout.id == paid.checkout_id and checkout.orders_made == 1:
            return
        if not await self.orders.count_unpaid(paid.checkout_id):  # most checkouts have one order
            return
        for sibling in await self.orders.for_checkout(paid.checkout_id):
            if sibling.out_trade_no != paid.out_trade_no and sibling.state in (CREATED, PREPAID):
                await self.lifecycle.touch_order(sibling, close_requested=True, next_check_at=self.now())
