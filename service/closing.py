"""Closing a checkout: the merchant's cancel, and the expiry.

The close (:meth:`Closing.close_checkout`) is shared by both: the checkout
is marked so no new WeChat order can start, each unpaid order is checked
with WeChat and closed (WeChat refuses that within five minutes of an
order's creation, so younger ones are closed by the reconciler as soon as
WeChat allows), then the checkout moves open → closed. If WeChat says an
order is paid meanwhile, the payment is confirmed, the checkout becomes
paid — the money moved before the merchant was told anything else — and
the merchant hears 409 ``checkout_paid``. Once the answer is 200 ``closed``
it stays true: a payment that still lands on an order of the checkout is
refunded automatically and flagged ``double_paid``. A cancel cut short
after the mark (a crash, the store down: the merchant got no 200) leaves
the checkout open but unpayable; repeating the cancel finishes it, and the
expiry does at the latest.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from wxpay.errors import WxPayError

from .audit import Audit
from .checkouts import CheckoutService
from .clock import utcnow
from .errors import Conflict
from .lifecycle import Lifecycle
from .models import CREATED, PAID_STATUSES, PREPAID, Checkout
from .order_checks import OrderChecks, RunReport
from .orders import OrderBook
from .outbox import Outbox
from .pauses import pause

log = logging.getLogger("wxpay_server.closing")


class Closing:
    def __init__(
        self,
        checkouts: CheckoutService,
        orders: OrderBook,
        checks: OrderChecks,
        lifecycle: Lifecycle,
        outbox: Outbox,
        audit: Audit,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.checkouts = checkouts
        self.orders = orders
        self.checks = checks
        self.lifecycle = lifecycle
        self.outbox = outbox
        self.audit = audit
        self.now = now

    async def cancel(self, checkout_id: str) -> Checkout:
        """Close an unpaid checkout; repeating it is harmless."""
        checkout = await self.checkouts.get(checkout_id)
        if checkout.status in PAID_STATUSES:
            raise Conflict("checkout_paid", "A paid checkout cannot be cancelled; refund it instead")
        closed = await self.close_checkout(checkout.id)
        if closed is not None:
            await self.audit.record("cancel", verdict="closed", checkout_id=checkout.id)
            return closed
        after = await self.checkouts.get(checkout.id)  # already closed, or a payment won
        if after.status in PAID_STATUSES:
            raise Conflict("checkout_paid", "The shopper paid before the cancel reached WeChat; the checkout is paid")
        return after

    async def close_checkout(
        self, checkout_id: str, report: RunReport | None = None, *, patient: bool = False
    ) -> Checkout | None:
        """Close an open checkout so that no order of it stays payable.

        1. Mark it (``CheckoutService.begin_close``): no new order can be reserved.
        2. Check each unpaid order with WeChat: a payment found is confirmed
           (the checkout becomes paid and the close loses); an unpaid order
           is closed, or handed to the passes for when WeChat allows it.
        3. open → closed (``CheckoutService.finish_close``), final from then on.

        Returns the closed checkout, or ``None`` when it was not open or a
        payment won. An order whose unifiedorder was still under way is
        either listed in step 2 or sees the mark when WeChat answers
        (``PrepayService``), so it is closed too.

        WeChat unreachable: the merchant's cancel goes on (the passes keep
        asking about the orders; a payment found later is refunded). The
        expiry is ``patient``: it stops at the first order WeChat could not
        answer for and leaves the checkout marked (unpayable, still open)
        for a later pass, so a payment made before the expiry whose notify
        is late is kept rather than refunded."""
        report = report or RunReport(started_at=self.now())
        if not await self.checkouts.begin_close(checkout_id):
            return None
        listed = await self.orders.for_checkout(checkout_id)
        await pause("closing.after_list")
        for order in listed:
            if order.state not in (CREATED, PREPAID):
                continue
            touched = await self.lifecycle.touch_order(order, close_requested=True, next_check_at=self.now())
            if touched is None:
                continue
            try:
                await self.checks.check(touched, report)
                again = await self.orders.get(order.out_trade_no)
                if again is not None and again.state in (CREATED, PREPAID) and again.next_check_at and again.next_check_at <= self.now():
                    await self.checks.check(again, report)  # closeorder said ORDERPAID: confirm it
            except WxPayError as exc:
                report.errors += 1
                log.warning("closing %s: order %s not closed yet (%s)", checkout_id, order.out_trade_no, exc.code)
                if patient:
                    await self.checks.reschedule(touched)
                    return None
        await pause("closing.before_final")
        closed = await self.checkouts.finish_close(checkout_id)
        if closed is not None:
            await self.outbox.announce(closed.id, closed)
        return closed
