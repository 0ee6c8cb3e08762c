"""The order state machine, in one place.

Every move is a compare-and-set on the current state (``ORDER_MOVES``), so a
duplicate notify, a racing reconciler or a second process can only ever
lose the race, never apply a move twice.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from store.base import Store, find_every

from .audit import Audit
from .clock import utcnow
from .errors import Conflict, NotFound
from .guard import store_guard
from .pauses import pause
from .models import (
    CHECKOUT_MOVES,
    CHECKOUTS,
    CLOSE_MARK,
    CLOSED,
    CREATED,
    ORDER_MOVES,
    OUTBOX_DUE,
    PAID_STATUSES,
    OPEN,
    ORDERS,
    PAID,
    PREPAID,
    Checkout,
    Order,
)

log = logging.getLogger("wxpay_server.orders")

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_out_trade_no(now: datetime) -> str:
    """``W`` + UTC date + 16 random characters: unique, sortable by day, 25 chars."""
    return "W" + now.strftime("%Y%m%d") + "".join(_ALPHABET[b & 31] for b in secrets.token_bytes(16))


@dataclass(frozen=True)
class Payment:
    """What WeChat's own orderquery confirmed about a paid order."""

    transaction_id: str
    total_fee: int
    time_end: datetime | None = None
    bank_type: str | None = None
    cash_fee: int | None = None
    openid: str | None = None


@dataclass(frozen=True)
class PaidOutcome:
    order: Order
    newly_paid: bool
    double_payment: bool = False


PaidListener = Callable[[Order, Checkout | None, bool], Awaitable[None]]
# Told the id of a checkout whose status moved, and its document when the
# caller has just written it (so the listener need not read it again).
CheckoutListener = Callable[[str, "dict[str, Any] | None"], Awaitable[None]]


class OrderBook:
    def __init__(self, store: Store, audit: Audit, *, now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.audit = audit
        self.now = now
        self.paid_listeners: list[PaidListener] = []
        # Told the id of a checkout whose status moved (with OUTBOX_DUE set).
        self.checkout_listeners: list[CheckoutListener] = []
        # Whether status moves carry the outbox marker (webhooks on).
        self.outbox_wanted = False

    async def get(self, out_trade_no: str) -> Order | None:
        with store_guard():
            doc = await self.store.get(ORDERS, out_trade_no)
        return Order.from_doc(doc) if doc else None

    async def require(self, out_trade_no: str) -> Order:
        order = await self.get(out_trade_no)
        if order is None:
            raise NotFound("order_not_found", f"No order {out_trade_no}")
        return order

    async def for_checkout(self, checkout_id: str) -> list[Order]:
        """Every order of the checkout, oldest first: read a page at a time,
        never cut at a limit (closing siblings must see all of them)."""
        with store_guard():
            docs = await find_every(self.store, ORDERS, {"checkout_id": checkout_id}, sort=[("created_at", 1)])
        return [Order.from_doc(d) for d in docs]

    # -- a checkout's openness: new orders and closing ------------------------------

    async def reserve_order(self, checkout_id: str, *, cap: int, payable_after: datetime) -> Checkout | None:
        """Count one more WeChat order against the checkout, in the same
        compare-and-set that finds it open, not being closed, not about to
        expire (``expires_at`` after ``payable_after``) and under ``cap``.
        ``None`` when any of that fails (the caller reads the checkout to
        say which). A close marks the checkout first, so an order reserved
        after that point cannot exist; one reserved before is listed by it."""
        payable = {"status": OPEN, CLOSE_MARK: {"$exists": False}, "expires_at": {"$gt": payable_after}}
        for _ in range(5):
            with store_guard():
                doc = await self.store.update_if(
                    CHECKOUTS, checkout_id, {**payable, "orders_made": {"$lt": cap}}, {}, inc={"orders_made": 1}
                )
                if doc is not None:
                    return Checkout.from_doc(doc)
                # Checkouts stored before the count existed: start it from their orders.
                current = await self.store.get(CHECKOUTS, checkout_id)
                if current is None or "orders_made" in current:
                    return None
                made = await self.store.count(ORDERS, {"checkout_id": checkout_id})
                if made >= cap:
                    return None
                doc = await self.store.update_if(
                    CHECKOUTS, checkout_id, {**payable, "orders_made": {"$exists": False}}, {"orders_made": made + 1}
                )
            if doc is not None:
                return Checkout.from_doc(doc)
        return None

    async def begin_close(self, checkout_id: str) -> bool:
        """Mark an open checkout as being closed: no new order can be
        reserved from now on. ``False`` if it is no longer open (paid or
        closed); a mark left by an earlier, interrupted close is kept."""
        now = self.now()
        with store_guard():
            marked = await self.store.update_if(
                CHECKOUTS, checkout_id, {"status": OPEN, CLOSE_MARK: {"$exists": False}}, {CLOSE_MARK: now, "updated_at": now}
            )
            if marked is not None:
                return True
            doc = await self.store.get(CHECKOUTS, checkout_id)
        return doc is not None and doc.get("status") == OPEN

    async def finish_close(self, checkout_id: str) -> Checkout | None:
        """open → closed, once :meth:`begin_close` marked it and its orders
        were dealt with; from here the close is final (a payment that still
        lands is refunded: see ``_settle_checkout``). ``None`` if a payment
        won meanwhile (or another closer did it first)."""
        now = self.now()
        with store_guard():
            doc = await self.store.update_if(
                CHECKOUTS, checkout_id, {"status": {"$in": list(CHECKOUT_MOVES[CLOSED])}, CLOSE_MARK: {"$exists": True}},
                {"status": CLOSED, "closed_at": now, "updated_at": now, **self.outbox_intent(now)},
            )
        if doc is None:
            return None
        await self.announce(checkout_id, doc)
        return Checkout.from_doc(doc)

    async def insert(self, order: Order) -> None:
        with store_guard():
            await self.store.insert(ORDERS, order.to_doc())

    async def move(self, order: Order, to_state: str, **changes: Any) -> Order | None:
        """Compare-and-set ``order`` into ``to_state``; ``None`` if it had moved on."""
        allowed = ORDER_MOVES[to_state]
        now = self.now()
        with store_guard():
            doc = await self.store.update_if(
                ORDERS,
                order.out_trade_no,
                {"state": {"$in": list(allowed)}},
                {"state": to_state, "updated_at": now, **changes},
            )
        return Order.from_doc(doc) if doc else None

    async def touch(self, order: Order, **changes: Any) -> Order | None:
        """Update bookkeeping fields without a state move (still guarded by state)."""
        with store_guard():
            doc = await self.store.update_if(
                ORDERS, order.out_trade_no, {"state": order.state}, {"updated_at": self.now(), **changes}
            )
        return Order.from_doc(doc) if doc else None

    async def mark_paid(self, order: Order, payment: Payment, *, via: str) -> PaidOutcome:
        """Record a payment WeChat confirmed; idempotent, race-safe.

        The caller must have checked the payment against WeChat (orderquery)
        and the amount against the order.
        """
        if payment.total_fee != order.total_fee:
            raise Conflict("amount_mismatch", "WeChat reports another amount than the order's")
        now = self.now()
        moved = await self.move(
            order,
            PAID,
            transaction_id=payment.transaction_id,
            time_end=payment.time_end,
            bank_type=payment.bank_type,
            cash_fee=payment.cash_fee,
            paid_at=now,
            paid_via=via,
            next_check_at=None,
            settle_due_at=now,
        )
        if moved is None:
            current = await self.require(order.out_trade_no)
            if current.state == PAID:
                if current.settle_due_at is not None:
                    await self.settle_paid(current)
                return PaidOutcome(current, newly_paid=False)
            raise Conflict("order_state", f"Order {order.out_trade_no} is {current.state}")
        _checkout, double = await self.settle_paid(moved)
        return PaidOutcome(moved, newly_paid=True, double_payment=double)

    async def settle_paid(self, order: Order) -> tuple[Checkout | None, bool]:
        """What a payment implies beyond the order's own move: the checkout,
        the siblings, the webhook intent, the listeners; then clear
        ``settle_due_at``. Idempotent, so it is simply run again after a
        crash or a store failure part-way (by a repeated notify, or the
        reconciler's sweep of orders whose marker stayed set)."""
        await pause("orders.before_settle")
        checkout, double, checkout_doc = await self._settle_checkout(order, order.paid_at or self.now())
        await self._close_siblings(order)
        if checkout is not None and not double:
            await self.announce(checkout.id, checkout_doc)
        for listener in self.paid_listeners:
            try:
                await listener(order, checkout, double)
            except Exception:  # a listener must not undo a recorded payment
                log.exception("paid listener failed for %s", order.out_trade_no)
        with store_guard():
            await self.store.update_if(ORDERS, order.out_trade_no, {"state": PAID}, {"settle_due_at": None})
        return checkout, double

    async def unsettled(self, before: datetime, limit: int = 100) -> list[Order]:
        """Paid orders whose settlement was interrupted (marker older than ``before``)."""
        with store_guard():
            docs = await self.store.find(
                ORDERS, {"state": PAID, "settle_due_at": {"$lte": before}}, sort=[("settle_due_at", 1)], limit=limit
            )
        return [Order.from_doc(d) for d in docs]

    def outbox_intent(self, now: datetime) -> dict[str, Any]:
        """The marker a checkout's status move carries in the same write when
        someone (webhooks) listens; nothing when nobody does."""
        return {OUTBOX_DUE: now} if self.outbox_wanted else {}

    async def announce(self, checkout_id: str, doc: dict[str, Any] | None = None) -> None:
        """Tell listeners (webhooks) a checkout's status moved; never raises.
        ``doc`` is the checkout as just written, when the caller has it."""
        for listener in self.checkout_listeners:
            try:
                await listener(checkout_id, doc)
            except Exception:  # the outbox sweep catches up (OUTBOX_DUE stays set)
                log.exception("checkout listener failed for %s", checkout_id)

    async def _settle_checkout(self, order: Order, now: datetime) -> tuple[Checkout | None, bool, Any]:
        """The checkout's side of a payment: open → paid; or, when another
        order paid it already or the merchant was told it is closed, a flag
        (``double_paid``) and the paid listeners' refund of this payment."""
        changes = {
            "status": PAID, "paid_out_trade_no": order.out_trade_no, "paid_at": now, "updated_at": now,
            **self.outbox_intent(now),  # the webhook's intent, in the same write as the move
        }
        with store_guard():
            doc = await self.store.update_if(
                CHECKOUTS, order.checkout_id, {"status": {"$in": list(CHECKOUT_MOVES[PAID])}}, changes
            )
            if doc is not None:
                return Checkout.from_doc(doc), False, doc
            doc = await self.store.update_if(
                CHECKOUTS,
                order.checkout_id,
                {"status": {"$in": list(PAID_STATUSES)}, "paid_out_trade_no": {"$ne": order.out_trade_no}},
                {"double_paid": True, "updated_at": now},
            )
            reason = "second_payment"
            if doc is None:
                # Closed, and final: the money goes back, the close stays true.
                doc = await self.store.update_if(
                    CHECKOUTS, order.checkout_id, {"status": CLOSED}, {"double_paid": True, "updated_at": now}
                )
                reason = "paid_after_close"
        if doc is None:
            return None, False, None
        log.error(
            "DOUBLE PAYMENT (%s): checkout %s (%s) paid by %s; refunding it",
            reason,
            order.checkout_id,
            doc.get("status"),
            order.out_trade_no,
        )
        await self.audit.record(
            "double_payment",
            verdict="flagged",
            reason=reason,
            checkout_id=order.checkout_id,
            out_trade_no=order.out_trade_no,
            first_out_trade_no=doc.get("paid_out_trade_no"),
        )
        return Checkout.from_doc(doc), True, doc

    async def _close_siblings(self, paid: Order) -> None:
        """Unpaid siblings must never be paid too: hand them to the reconciler now."""
        with store_guard():  # most checkouts have one order: count before reading any
            open_siblings = await self.store.count(
                ORDERS, {"checkout_id": paid.checkout_id, "state": {"$in": [CREATED, PREPAID]}}
            )
        if not open_siblings:
            return
        for sibling in await self.for_checkout(paid.checkout_id):
            if sibling.out_trade_no != paid.out_trade_no and sibling.state in (CREATED, PREPAID):
                await self.touch(sibling, close_requested=True, next_check_at=self.now())

    async def due_for_check(self, now: datetime, limit: int = 100) -> list[Order]:
        with store_guard():
            docs = await self.store.find(
                ORDERS,
                {"state": {"$in": [CREATED, PREPAID]}, "next_check_at": {"$lte": now}},
                sort=[("next_check_at", 1)],
                limit=limit,
            )
        return [Order.from_doc(d) for d in docs]

    @staticmethod
    def backoff(checks: int) -> timedelta:
        """Query schedule for an unconfirmed order: 1 min, 2, 4 … capped at 30 min."""
        return timedelta(minutes=min(30, 2 ** min(checks, 5)))
