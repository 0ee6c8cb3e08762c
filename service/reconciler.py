"""Notifies are not guaranteed: ask WeChat about orders nobody confirmed.

Each pass queries the orders whose check is due, applies what WeChat says,
closes orders that can no longer be paid, closes expired checkouts, and
asks ``pay/refundquery`` about refunds whose notify has not come.
Only one process runs a pass at a time (a lease), however many are
deployed.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from store.base import Store
from store.leases import Leases
from wxpay.errors import OrderClosedError, OrderNotExistError, OrderPaidError, WxPayError

from .audit import Audit
from .clock import utcnow
from .errors import Conflict, ServiceError
from .guard import store_guard
from .models import CHECKOUT_MOVES, CHECKOUTS, CLOSED, CREATED, FAILED, OPEN, PREPAID, RUNS, Order
from .orders import OrderBook
from .payment_notify import payment_from_query

log = logging.getLogger("wxpay_server.reconciler")

CLOSE_MIN_AGE = timedelta(minutes=5)  # WeChat refuses closeorder on younger orders
SETTLE_GRACE = timedelta(seconds=5)   # leave a settlement in progress to its own request


@dataclass
class RunReport:
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


class Reconciler:
    def __init__(
        self,
        store: Store,
        orders: OrderBook,
        pay: Any,
        leases: Leases,
        audit: Audit,
        *,
        holder: str,
        interval: float = 30.0,
        batch: int = 100,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.orders = orders
        self.pay = pay
        self.leases = leases
        self.audit = audit
        self.holder = holder
        self.interval = interval
        self.batch = batch
        self.now = now
        self.last: RunReport | None = None
        self.refunds: Any = None  # service.refunds.RefundService, wired by server.py

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # the loop must survive a bad pass
                log.exception("reconciler pass failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass

    async def run_once(self) -> RunReport:
        report = RunReport(started_at=self.now())
        ttl = timedelta(seconds=max(60.0, 3 * self.interval))
        with store_guard():
            if not await self.leases.acquire("reconciler", self.holder, ttl):
                report.ran = False
                return report
        try:
            for order in await self.orders.due_for_check(self.now(), self.batch):
                report.checked += 1
                try:
                    await self._check(order, report)
                except (WxPayError, ServiceError) as exc:
                    report.errors += 1
                    await self._reschedule(order)
                    log.warning("reconciler: %s not settled (%s)", order.out_trade_no, getattr(exc, "code", exc))
            await self._finish_settlements(report)
            await self._close_expired_checkouts(report)
            if self.refunds is not None:
                await self._check_refunds(report)
        finally:
            report.finished_at = self.now()
            self.last = report
            with store_guard():
                await self.leases.release("reconciler", self.holder)
            await self._record(report)
        return report

    async def check_now(self, order: Order) -> RunReport:
        """One order's check outside a pass (the merchant's cancel uses it)."""
        report = RunReport(started_at=self.now())
        await self._check(order, report)
        return report

    async def _check_refunds(self, report: RunReport) -> None:
        for refund in await self.refunds.unapplied(self.batch):  # a crash between settle and apply
            await self.refunds.apply(refund)
        for refund in await self.refunds.due(self.now(), self.batch):
            report.refunds_checked += 1
            try:
                outcome = await self.refunds.check(refund)
            except (WxPayError, ServiceError) as exc:
                report.errors += 1
                log.warning("reconciler: refund %s not settled (%s)", refund.out_refund_no, getattr(exc, "code", exc))
                continue
            if outcome in ("succeeded", "closed", "needs_attention"):
                report.refunds_settled += 1

    async def _check(self, order: Order, report: RunReport) -> None:
        try:
            query = await self.pay.order_query(out_trade_no=order.out_trade_no)
        except OrderNotExistError:
            # unifiedorder never reached WeChat: nothing can be paid on it.
            if order.state == CREATED and self.now() - order.created_at > CLOSE_MIN_AGE:
                if await self.orders.move(order, FAILED, failure="order_not_exist", next_check_at=None):
                    report.failed += 1
            else:
                await self._reschedule(order)
            return
        state = query.trade_state
        if state in ("SUCCESS", "REFUND"):
            try:
                outcome = await self.orders.mark_paid(order, payment_from_query(query), via="reconciler")
            except Conflict as exc:
                report.errors += 1
                report.notes.append(f"{order.out_trade_no}: {exc.code}")
                await self.audit.record("reconciler", verdict=exc.code, out_trade_no=order.out_trade_no)
                return
            if outcome.newly_paid:
                report.paid += 1
                await self.audit.record("reconciler", verdict="paid", out_trade_no=order.out_trade_no)
        elif state == "CLOSED":
            if await self.orders.move(order, CLOSED, closed_at=self.now(), next_check_at=None):
                report.closed += 1
        elif state in ("REVOKED", "PAYERROR"):
            if await self.orders.move(order, FAILED, failure=state.lower(), next_check_at=None):
                report.failed += 1
        elif self._should_close(order):
            await self._close(order, report)
        else:
            await self._reschedule(order)

    def _should_close(self, order: Order) -> bool:
        # A "created" order never had its prepay_id handed out (the reply was
        # lost), so no shopper can pay it: close it rather than query forever.
        expired = order.prepay_expires_at is not None and order.prepay_expires_at <= self.now()
        return order.close_requested or expired or order.state == CREATED

    async def _close(self, order: Order, report: RunReport) -> None:
        ready_at = order.created_at + CLOSE_MIN_AGE
        if self.now() < ready_at:
            await self.orders.touch(order, next_check_at=ready_at)
            return
        try:
            await self.pay.close_order(order.out_trade_no)
        except OrderPaidError:
            await self.orders.touch(order, next_check_at=self.now())  # paid after all: re-query
            return
        except OrderClosedError:
            pass
        if await self.orders.move(order, CLOSED, closed_at=self.now(), next_check_at=None):
            report.closed += 1

    async def _reschedule(self, order: Order) -> None:
        await self.orders.touch(order, checks=order.checks + 1, next_check_at=self.now() + OrderBook.backoff(order.checks))

    async def _finish_settlements(self, report: RunReport) -> None:
        """Paid orders whose checkout was never settled (a crash or a store
        failure right after the move, and no notify left to repeat it)."""
        for order in await self.orders.unsettled(self.now() - SETTLE_GRACE, self.batch):
            try:
                await self.orders.settle_paid(order)
                report.settled += 1
            except ServiceError as exc:
                report.errors += 1
                log.warning("reconciler: %s not settled (%s)", order.out_trade_no, exc.code)

    async def _close_expired_checkouts(self, report: RunReport) -> None:
        now = self.now()
        with store_guard():
            docs = await self.store.find(
                CHECKOUTS, {"status": OPEN, "expires_at": {"$lte": now}}, sort=[("expires_at", 1)], limit=self.batch
            )
        for doc in docs:
            with store_guard():
                closed = await self.store.update_if(
                    CHECKOUTS, doc["_id"], {"status": {"$in": list(CHECKOUT_MOVES[CLOSED])}},
                    {"status": CLOSED, "closed_at": now, "updated_at": now, **self.orders.outbox_intent(now)},
                )
            if closed is None:
                continue
            report.checkouts_closed += 1
            for order in await self.orders.for_checkout(doc["_id"]):
                if order.state in (CREATED, PREPAID):
                    await self.orders.touch(order, close_requested=True, next_check_at=now)
            await self.orders.announce(doc["_id"])

    async def _record(self, report: RunReport) -> None:
        doc = asdict(report)
        doc["notes"] = doc["notes"][:20]
        try:
            await self.store.upsert_if(RUNS, "reconciler", {}, doc)
        except Exception:
            log.warning("could not record the reconciler run")
