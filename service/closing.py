"""The merchant cancels an unpaid checkout.

The checkout moves open → closed first (compare-and-set), so no new WeChat
order can start; then each unpaid WeChat order of it is asked to close
(``pay/closeorder``). WeChat refuses to close an order younger than five
minutes, so those are handed to the reconciler for when they are old
enough. Each order is queried before it is closed: if WeChat says it is
paid (or closeorder answers ORDERPAID), the payment is confirmed and the
checkout becomes paid after all — the money moved, it must not be lost —
and the merchant hears 409 ``checkout_paid``.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from store.base import Store

from .audit import Audit
from .checkouts import CheckoutService
from .clock import utcnow
from .errors import Conflict, ServiceError
from .guard import store_guard
from .models import CHECKOUT_MOVES, CHECKOUTS, CLOSED, CREATED, PAID_STATUSES, PREPAID, Checkout
from .orders import OrderBook
from .reconciler import Reconciler

log = logging.getLogger("wxpay_server.closing")


class ClosingService:
    def __init__(
        self,
        store: Store,
        checkouts: CheckoutService,
        orders: OrderBook,
        reconciler: Reconciler,
        audit: Audit,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.checkouts = checkouts
        self.orders = orders
        self.reconciler = reconciler
        self.audit = audit
        self.now = now

    async def cancel(self, checkout_id: str) -> Checkout:
        """Close an unpaid checkout; repeating it is harmless."""
        checkout = await self.checkouts.get(checkout_id)
        if checkout.status in PAID_STATUSES:
            raise Conflict("checkout_paid", "A paid checkout cannot be cancelled; refund it instead")
        now = self.now()
        if checkout.status not in (CLOSED,):
            with store_guard():
                moved = await self.store.update_if(
                    CHECKOUTS, checkout.id, {"status": {"$in": list(CHECKOUT_MOVES[CLOSED])}},
                    {"status": CLOSED, "closed_at": now, "updated_at": now, **self.orders.outbox_intent(now)},
                )
            if moved is None:
                return await self._settled_meanwhile(checkout.id)
            await self.audit.record("cancel", verdict="closed", checkout_id=checkout.id)
            await self.orders.announce(checkout.id)
        for order in await self.orders.for_checkout(checkout.id):
            if order.state not in (CREATED, PREPAID):
                continue
            touched = await self.orders.touch(order, close_requested=True, next_check_at=now)
            if touched is None:
                continue
            try:
                # Query first (a payment is confirmed, not lost), then close if old enough.
                await self.reconciler.check_now(touched)
                again = await self.orders.get(order.out_trade_no)
                if again is not None and again.state in (CREATED, PREPAID) and again.next_check_at and again.next_check_at <= self.now():
                    await self.reconciler.check_now(again)  # closeorder said ORDERPAID: confirm it
            except ServiceError:
                raise
            except Exception as exc:  # WeChat unreachable: the reconciler keeps trying
                log.warning("cancel %s: order %s not closed yet (%s)", checkout.id, order.out_trade_no, getattr(exc, "code", exc))
        after = await self.checkouts.get(checkout.id)
        if after.status in PAID_STATUSES:
            raise Conflict("checkout_paid", "The shopper paid before the cancel reached WeChat; the checkout is paid")
        return after

    async def _settled_meanwhile(self, checkout_id: str) -> Checkout:
        current = await self.checkouts.get(checkout_id)
        if current.status in PAID_STATUSES:
            raise Conflict("checkout_paid", "A paid checkout cannot be cancelled; refund it instead")
        return current
