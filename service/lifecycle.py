"""Every state move of a checkout, an order or a refund: one table each, one writer.

A move is a compare-and-set on the current state: the store applies it
only if the document is in one of the states the table allows the target
to be entered from, so a duplicate notify, a racing reconciler or a
second process can only lose the race, never apply a move twice or out of
order. :meth:`Lifecycle.move` is the only code that changes a status or a
state (``tests/service/test_lifecycle.py`` walks every pair of states, and
checks that no other module writes these documents); the rest of the
service layer asks it, or uses :meth:`Lifecycle.update` for bookkeeping
that a state guards but does not change.

Why the tables say what they say:

- a checkout is paid or closed from open only, and both are final: a
  payment that lands on a closed checkout is confirmed on its order,
  refunded, and flagged (``double_paid``), and the checkout stays closed;
  refunds only follow a payment;
- an order may become paid from closed or failed: WeChat's own orderquery
  is the truth, and a shopper can pay in the instant we close or give up on
  an order; nothing leaves paid;
- a refund ends once (succeeded, closed, failed), except that one needing
  attention may still end either way.

Every checkout move carries the webhook intent (``OUTBOX_DUE``) in the same
write when webhooks are on, so no move the merchant must hear about can be
lost between two writes (service/outbox.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from store.base import Store

from .clock import utcnow
from .guard import store_guard
from .models import (
    CHECKOUT_STATUSES,
    CHECKOUTS,
    CLOSED,
    CREATED,
    FAILED,
    OPEN,
    ORDER_STATES,
    ORDERS,
    OUTBOX_DUE,
    PAID,
    PARTIALLY_REFUNDED,
    PREPAID,
    R_CLOSED,
    R_FAILED,
    R_NEEDS_ATTENTION,
    R_PENDING,
    R_SUCCEEDED,
    REFUND_STATES,
    REFUNDED,
    REFUNDS,
    Checkout,
    Order,
    Refund,
)

CHECKOUT = "checkout"
ORDER = "order"
REFUND = "refund"


@dataclass(frozen=True)
class Machine:
    """One entity's states and its table of moves (target -> the states it may be entered from)."""

    name: str
    collection: str
    field: str  # where the document keeps its state
    states: tuple[str, ...]
    moves: Mapping[str, frozenset[str]]

    def allows(self, source: str, target: str) -> bool:
        return source in self.moves.get(target, frozenset())

    def sources(self, target: str) -> list[str]:
        if target not in self.moves:
            raise ValueError(f"no {self.name} ever moves to {target!r}")
        return sorted(self.moves[target])


CHECKOUT_MACHINE = Machine(CHECKOUT, CHECKOUTS, "status", CHECKOUT_STATUSES, {
    PAID: frozenset({OPEN}),
    CLOSED: frozenset({OPEN}),
    PARTIALLY_REFUNDED: frozenset({PAID, PARTIALLY_REFUNDED}),
    REFUNDED: frozenset({PAID, PARTIALLY_REFUNDED}),
})

ORDER_MACHINE = Machine(ORDER, ORDERS, "state", ORDER_STATES, {
    PREPAID: frozenset({CREATED, PREPAID}),
    PAID: frozenset({CREATED, PREPAID, FAILED, CLOSED}),
    CLOSED: frozenset({CREATED, PREPAID}),
    FAILED: frozenset({CREATED, PREPAID}),
})

REFUND_MACHINE = Machine(REFUND, REFUNDS, "state", REFUND_STATES, {
    R_SUCCEEDED: frozenset({R_PENDING, R_NEEDS_ATTENTION}),
    R_CLOSED: frozenset({R_PENDING, R_NEEDS_ATTENTION}),
    R_NEEDS_ATTENTION: frozenset({R_PENDING}),
    R_FAILED: frozenset({R_PENDING}),
})

MACHINES: Mapping[str, Machine] = {m.name: m for m in (CHECKOUT_MACHINE, ORDER_MACHINE, REFUND_MACHINE)}

# States from which a checkout's refunds may be asked for (and the amount reserved).
REFUNDABLE = CHECKOUT_MACHINE.moves[PARTIALLY_REFUNDED]


class Lifecycle:
    """The one writer of checkout, order and refund states.

    ``announce``: whether checkout moves carry the webhook intent (webhooks on)."""

    def __init__(self, store: Store, *, announce: bool = False, now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.announce = announce
        self.now = now

    async def move(
        self, entity: str, key: str, to: str, *, where: Mapping[str, Any] | None = None, **changes: Any
    ) -> dict[str, Any] | None:
        """Compare-and-set ``key`` into ``to``: only from a state the table
        allows (and matching ``where``, for more conditions). Returns the
        document as written, or ``None`` when it was elsewhere (it moved on,
        or the move is refused)."""
        machine = MACHINES[entity]
        sources = machine.sources(to)
        if where and machine.field in where:
            raise ValueError(f"the {machine.name}'s {machine.field} is the table's to check")
        if machine.field in changes:
            raise ValueError(f"a {machine.name}'s {machine.field} changes only as the move's target")
        now = self.now()
        sets = {machine.field: to, "updated_at": now, **changes}
        if entity == CHECKOUT and self.announce:
            sets[OUTBOX_DUE] = now  # the webhook intent, in the same write as the move
        expect = {machine.field: {"$in": sources}, **(where or {})}
        with store_guard():
            return await self.store.update_if(machine.collection, key, expect, sets)

    async def update(
        self, entity: str, key: str, *, where: Mapping[str, Any], inc: Mapping[str, int] | None = None, **changes: Any
    ) -> dict[str, Any] | None:
        """Bookkeeping that does not change the state (guarded by ``where``,
        usually the state it was read in); ``None`` when nothing matched."""
        machine = MACHINES[entity]
        if machine.field in changes or machine.field in (inc or {}):
            raise ValueError(f"a {machine.name}'s {machine.field} changes only by move()")
        with store_guard():
            return await self.store.update_if(machine.collection, key, dict(where), changes, inc=inc)

    async def discard(self, entity: str, key: str, *, where: Mapping[str, Any]) -> bool:
        """Delete a document that never took effect (a refund WeChat was never asked for)."""
        machine = MACHINES[entity]
        with store_guard():
            return await self.store.delete_if(machine.collection, key, dict(where))

    # -- typed --------------------------------------------------------------------------------

    async def move_order(self, order: Order, to: str, **changes: Any) -> Order | None:
        doc = await self.move(ORDER, order.out_trade_no, to, **changes)
        return Order.from_doc(doc) if doc else None

    async def touch_order(self, order: Order, **changes: Any) -> Order | None:
        """Bookkeeping on an order still in the state it was read in."""
        doc = await self.update(ORDER, order.out_trade_no, where={"state": order.state},
                                updated_at=self.now(), **changes)
        return Order.from_doc(doc) if doc else None

    async def move_checkout(
        self, checkout_id: str, to: str, *, where: Mapping[str, Any] | None = None, **changes: Any
    ) -> Checkout | None:
        doc = await self.move(CHECKOUT, checkout_id, to, where=where, **changes)
        return Checkout.from_doc(doc) if doc else None

    async def move_refund(self, refund: Refund, to: str, **changes: Any) -> Refund | None:
        doc = await self.move(REFUND, refund.out_refund_no, to, **changes)
        return Refund.from_doc(doc) if doc else None
