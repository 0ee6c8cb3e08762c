"""Notifies are not guaranteed: ask WeChat about orders nobody confirmed.

Each pass checks the orders whose check is due (service/order_checks.py),
finishes settlements a crash cut short, closes expired checkouts, and
asks WeChat (the refund query) about refunds whose notify has not come.
Only one process runs a pass at a time (a lease, short and renewed by a
heartbeat while the pass runs), however many are deployed.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Callable

from store.base import Store
from store.leases import HEARTBEAT_TTL, HeldLease, Leases
from wxpay.errors import WxPayError

from .clock import utcnow
from .closing import Closing
from .errors import ServiceError
from .guard import store_guard
from .models import CHECKOUTS, OPEN, RUNS
from .order_checks import OrderChecks, RunReport
from .orders import OrderBook
from .pauses import pause
from .payments import Payments
from .refunds import RefundService

log = logging.getLogger("wxpay_server.reconciler")

SETTLE_GRACE = timedelta(seconds=5)   # leave a settlement in progress to its own request
LEASE = "reconciler"

__all__ = ["LEASE", "Reconciler", "RunReport"]


class Reconciler:
    def __init__(
        self,
        store: Store,
        orders: OrderBook,
        checks: OrderChecks,
        payments: Payments,
        closing: Closing,
        refunds: RefundService,
        leases: Leases,
        *,
        holder: str,
        interval: float = 30.0,
        batch: int = 100,
        lease_ttl: timedelta = HEARTBEAT_TTL,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.orders = orders
        self.checks = checks
        self.payments = payments
        self.closing = closing
        self.refunds = refunds
        self.leases = leases
        self.holder = holder
        self.interval = interval
        self.batch = batch
        self.lease_ttl = lease_ttl
        self.now = now
        self.last: RunReport | None = None

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
                await self.checks.check(order, report)
            except (WxPayError, ServiceError) as exc:
                report.errors += 1
                await self.checks.reschedule(order)
                log.warning("reconciler: %s not settled (%s)", order.out_trade_no, getattr(exc, "code", exc))
        if lease.lost:
            return
        await self._finish_settlements(report)
        await self._close_expired_checkouts(report, lease)
        if not lease.lost:
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

    async def _finish_settlements(self, report: RunReport) -> None:
        """Paid orders whose checkout was never settled (a crash or a store
        failure right after the move, and no notify left to repeat it)."""
        for order in await self.orders.unsettled(self.now() - SETTLE_GRACE, self.batch):
            try:
                await self.payments.settle(order)
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
                if await self.closing.close_checkout(doc["_id"], report, patient=True) is not None:
                    report.checkouts_closed += 1
            except ServiceError as exc:
                report.errors += 1
                log.warning("reconciler: checkout %s not closed yet (%s)", doc["_id"], exc.code)

    async def _record(self, report: RunReport) -> None:
        doc = asdict(report)
        doc["notes"] = doc["notes"][:20]
        try:
            await self.store.upsert_if(RUNS, "reconciler", {}, doc)
        except Exception:
            log.warning("could not record the reconciler run")
