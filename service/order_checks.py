"""One unconfirmed order checked against WeChat, and the one way an order is closed.

:meth:`OrderChecks.check` asks WeChat (through the payment confirmation,
service/payments.py) and applies what it says: a payment is recorded; a
closed, revoked or failed order moves there; one that can no longer be
paid is closed (:meth:`OrderChecks.close`); anything else is asked again
later, less and less often. The reconciler's passes and the closing of a
checkout (a cancel, an expiry) both come here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from wxpay.errors import OrderClosedError, OrderNotExistError, OrderPaidError
from wxpay.gateway import PayGateway

from .audit import Audit
from .clock import utcnow
from .lifecycle import Lifecycle
from .models import CLOSED, CREATED, FAILED, Order
from .orders import backoff
from .payments import CONFIRMED, NOT_PAID, RECONCILER, Payments

log = logging.getLogger("wxpay_server.reconciler")

CLOSE_MIN_AGE = timedelta(minutes=5)  # WeChat refuses to close younger orders


@dataclass
class RunReport:
    """What one reconciler pass (or one close of a checkout) did."""

    started_at: datetime
    ran: bool = True
    checked: int = 0
    paid: int = 0
    closed: int = 0
    failed: int = 0
    errors: int = 0
    checkouts_closed: int = 0
    settled: int = 0
    refunds_checked: int = 0
    refunds_settled: int = 0
    finished_at: datetime | None = None
    notes: list[str] = field(default_factory=list)


class OrderChecks:
    def __init__(
        self,
        gateway: PayGateway,
        payments: Payments,
        lifecycle: Lifecycle,
        audit: Audit,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.gateway = gateway
        self.payments = payments
        self.lifecycle = lifecycle
        self.audit = audit
        self.now = now

    async def check(self, order: Order, report: RunReport) -> None:
        """Ask WeChat about ``order`` and apply the answer. Raises the
        gateway's errors when WeChat could not say (nothing changed)."""
        try:
            confirmation = await self.payments.confirm(order, via=RECONCILER)
        except OrderNotExistError:
            # unifiedorder never reached WeChat: nothing can be paid on it.
            if order.state == CREATED and self.now() - order.created_at > CLOSE_MIN_AGE:
                if await self.lifecycle.move_order(order, FAILED, failure="order_not_exist", next_check_at=None):
                    report.failed += 1
            else:
                await self.reschedule(order)
            return
        if confirmation.outcome != NOT_PAID:
            if confirmation.paid:
                if confirmation.outcome == CONFIRMED:
                    report.paid += 1
                    await self.audit.record("reconciler", verdict="paid", out_trade_no=order.out_trade_no)
                return
            code = confirmation.reason or confirmation.outcome
            report.errors += 1
            report.notes.append(f"{order.out_trade_no}: {code}")
            await self.audit.record("reconciler", verdict=code, out_trade_no=order.out_trade_no)
            return
        state = confirmation.facts.state
        if state == "CLOSED":
            if await self.lifecycle.move_order(order, CLOSED, closed_at=self.now(), next_check_at=None):
                report.closed += 1
        elif state in ("REVOKED", "PAYERROR"):
            if await self.lifecycle.move_order(order, FAILED, failure=state.lower(), next_check_at=None):
                report.failed += 1
        elif self.should_close(order):
            await self.close(order, report)
        else:
            await self.reschedule(order)

    def should_close(self, order: Order) -> bool:
        # A "created" order never had its prepay_id handed out (the reply was
        # lost), so no shopper can pay it: close it rather than query forever.
        expired = order.prepay_expires_at is not None and order.prepay_expires_at <= self.now()
        return order.close_requested or expired or order.state == CREATED

    async def close(self, order: Order, report: RunReport) -> None:
        """Close an unpaid order at WeChat, then here; not within WeChat's
        five minutes (it is looked at again once they have passed)."""
        ready_at = order.created_at + CLOSE_MIN_AGE
        if self.now() < ready_at:
            await self.lifecycle.touch_order(order, next_check_at=ready_at)
            return
        try:
            async with self.audit.wechat_call(
                "close_order", out_trade_no=order.out_trade_no, api_version=self.gateway.api_version
            ):
                await self.gateway.close_order(order.out_trade_no, appid=order.appid)
        except OrderPaidError:
            await self.lifecycle.touch_order(order, next_check_at=self.now())  # paid after all: ask again now
            return
        except OrderClosedError:
            pass
        if await self.lifecycle.move_order(order, CLOSED, closed_at=self.now(), next_check_at=None):
            report.closed += 1

    async def reschedule(self, order: Order) -> None:
        await self.lifecycle.touch_order(order, checks=order.checks + 1, next_check_at=self.now() + backoff(order.checks))
