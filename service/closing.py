"""The merchant cancels an unpaid checkout.

The close itself is the reconciler's (``Reconciler.close_checkout``, shared
with the expiry): the checkout is marked so no new WeChat order can start,
each unpaid order is queried and closed (``pay/closeorder``; WeChat refuses
that within five minutes of an order's creation, so younger ones are closed
by the reconciler as soon as WeChat allows), then the checkout moves open →
closed. If WeChat says an order is paid meanwhile, the payment is confirmed,
the checkout becomes paid — the money moved before the merchant was told
anything else — and the merchant hears 409 ``checkout_paid``. Once the
answer is 200 ``closed`` it stays true: a payment that still lands on an
order of the checkout is refunded automatically and flagged ``double_paid``.
A cancel cut short after the mark (a crash, the store down: the merchant got
no 200) leaves the checkout open but unpayable; repeating the cancel
finishes it, and the expiry does at the latest.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from store.base import Store

from .audit import Audit
from .checkouts import CheckoutService
from .clock import utcnow
from .errors import Conflict
from .models import PAID_STATUSES, Checkout
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
        closed = await self.reconciler.close_checkout(checkout.id)
        if closed is not None:
            await self.audit.record("cancel", verdict="closed", checkout_id=checkout.id)
            return closed
        after = await self.checkouts.get(checkout.id)  # already closed, or a payment won
        if after.status in PAID_STATUSES:
            raise Conflict("checkout_paid", "The shopper paid before the cancel reached WeChat; the checkout is paid")
        return after
