"""Notifies are not guaranteed: ask WeChat about orders nobody confirmed.

Each pass queries the orders whose check is due, applies what WeChat says,
closes orders that can no longer be paid, closes expired checkouts, and
asks ``pay/refundquery`` about refunds whose notify has not come.
Only one process runs a pass at a time (a lease, short and renewed by a
heartbeat while the pass runs), however many are deployed.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from store.base import Store
from store.leases import HEARTBEAT_TTL, HeldLease, Leases
from wxpay.errors import OrderClosedError, OrderNotExistError, OrderPaidError, WxPayError

from .audit import Audit
from .clock import utcnow
from .errors import Conflict, ServiceError
from .guard import store_guard
from .models import CHECKOUTS, CLOSED, CREATED, FAILED, OPEN, PREPAID, RUNS, Checkout, Order
from .orders import OrderBook
from .pauses import pause
from .payment_notify import payment_from_query

log = logging.getLogger("wxpay_server.reconciler")

CLOSE_MIN_AGE = timedelta(minutes=5)  # WeChat refuses closeorder on younger orders
SETTLE_GRACE = timedelta(seconds=5)   # leave a settlement in progress to its own request
LEASE = "reconciler"


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
        lease_ttl: timedelta = HEARTBEAT_TTL,
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
        self.lease_ttl = lease_ttl
        self.now = now
        self.last: RunReport | None = None
        self.refunds: Any = None  # service.refunds.RefundService, wired by server.py

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            ran = True
            try:
                ran = (await self.run_once()).ran
            except Exception:  # the loop must survive a bad pass
                log.exception("reconciler pass failed")
            # Another holder (perhaps one that just died) has the lease: look
            # again once it could have lapsed, not a whole interval later.
            wait = self.interval if ran else min(self.interval, self.lease_ttl.total_seconds())
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

    async def run_once(self) -> RunReport:
        """One pass under the lease (kept by a heartbeat while the pass runs;
        if it is lost, the pass stops at the next order: every step is a
        compare-and-set, so whoever took over repeats nothing twice)."""
        report = RunReport(started_at=self.now())
        with store_guard():
            async with self.leases.hold(LEASE, self.holder, self.lease_ttl) as lease:
                if lease is None:
                    report.ran = False
                    return report
                try:
                    await self._pass(report, lease)
                finally:
                    report.finished_at = self.now()
                    self.last = report
                    await self._record(report)
        return report

    async def _pass(self, report: RunReport, lease: HeldLease) -> None:
        for order in await self.orders.due_for_check(self.now(), self.batch):
            if lease.lost:
                report.notes.append("lease lost; pass stopped")
                return
            await pause("reconciler.before_check")
            report.checked += 1
            try:
                await self._check(order, report)
            except (WxPayError, ServiceError) as exc:
                report.errors += 1
                await self._reschedule(order)
                log.warning("reconciler: %s not settled (%s)", order.out_trade_no, getattr(exc, "code", exc))
        if lease.lost:
            return
        await self._finish_settlements(report)
        await self._close_expired_checkouts(report, lease)
        if self.refunds is not None and not lease.lost:
            await self._check_refunds(report)

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

    async def _close_expired_checkouts(self, report: RunReport, lease: HeldLease) -> None:
        now = self.now()
        with store_guard():
            docs = await self.store.find(
                CHECKOUTS, {"status": OPEN, "expires_at": {"$lte": now}}, sort=[("expires_at", 1)], limit=self.batch
            )
        for doc in docs:
            if lease.lost:
                return
            try:
                if await self.close_checkout(doc["_id"], report, patient=True) is not None:
                    report.checkouts_closed += 1
            except ServiceError as exc:
                report.errors += 1
                log.warning("reconciler: checkout %s not closed yet (%s)", doc["_id"], exc.code)

    async def close_checkout(
        self, checkout_id: str, report: RunReport | None = None, *, patient: bool = False
    ) -> Checkout | None:
        """Close an open checkout so that no order of it stays payable (the
        merchant's cancel and the expiry both come here).

        1. Mark it (``OrderBook.begin_close``): no new order can be reserved.
        2. Check each unpaid order with WeChat: a payment found is confirmed
           (the checkout becomes paid and the close loses); an unpaid order
           is closed, or handed to the passes for when WeChat allows it
           (never within five minutes of its creation).
        3. open → closed (``OrderBook.finish_close``), final from then on.

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
        if not await self.orders.begin_close(checkout_id):
            return None
        listed = await self.orders.for_checkout(checkout_id)
        await pause("closing.after_list")
        for order in listed:
            if order.state not in (CREATED, PREPAID):
                continue
            touched = await self.orders.touch(order, close_requested=True, next_check_at=self.now())
            if touched is None:
                continue
            try:
                await self._check(touched, report)
                again = await self.orders.get(order.out_trade_no)
                if again is not None and again.state in (CREATED, PREPAID) and again.next_check_at and again.next_check_at <= self.now():
                    await self._check(again, report)  # closeorder said ORDERPAID: confirm it
            except WxPayError as exc:
                report.errors += 1
                log.warning("closing %s: order %s not closed yet (%s)", checkout_id, order.out_trade_no, exc.code)
                if patient:
                    await self._reschedule(touched)
                    return None
        await pause("closing.before_final")
        return await self.orders.finish_close(checkout_id)

    async def _record(self, report: RunReport) -> None:
        doc = asdict(report)
        doc["notes"] = doc["notes"][:20]
        try:
            await self.store.upsert_if(RUNS, "reconciler", {}, doc)
        except Exception:
            log.warning("could not record the reconciler run")
