"""A China day's payments and refunds: which belong to it, their sums, their rows.

One owner for the rule both WeChat's bill reconciliation (service/bills.py)
and the console use (its "today" figures and its CSV export), so the three
never disagree:

- a **payment** belongs to the China day of WeChat's own payment time
  (``time_end``, kept on the order from orderquery; our confirmation time
  when WeChat gave none), so a payment at 23:59:59 China time is not moved
  to the next day by our clock;
- a **refund** belongs to the day it was requested (``created_at``), as in
  WeChat's bill; one WeChat refused outright (``failed``: no money moved)
  belongs to no day.

The figures: **gross** is what the day's payments brought in (every paid
order, a double payment too: its money moved), **refunded** what the day's
refunds gave back once WeChat completed them, **net** the difference;
refunds still under way are counted apart (``refunds_pending_fen``).

Reading is bounded and paged: the figures read at most ``FIGURES_SCAN``
orders (projected to the few fields they add up; ``truncated`` says when a
day was larger), the export pages through everything ``PAGE`` rows at a
time, so a big day costs memory for one page, not the day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, AsyncIterator, Sequence

from store.base import Store
from wxpay.timeutil import CHINA_TZ

from .guard import store_guard
from .models import CHECKOUTS, ORDERS, PAID, R_FAILED, R_NEEDS_ATTENTION, R_PENDING, R_SUCCEEDED, REFUNDS, Order, Refund

# An order is paid within its prepay window (two hours) of its creation; two
# days is a wide margin for finding the orders a day's payments can be on.
ORDER_LEAD = timedelta(days=2)
FIGURES_SCAN = 20_000
PAGE = 500

PAYMENT_FIELDS = ("total_fee", "time_end", "paid_at")
REFUND_FIELDS = ("amount_fen", "state")


def china_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where China day ``day`` starts and ends: [start, end)."""
    start = datetime.combine(day, time(0), tzinfo=CHINA_TZ).astimezone(timezone.utc)
    return start, start + timedelta(days=1)


def china_day_of(moment: datetime) -> date:
    """The China calendar day ``moment`` falls on."""
    return moment.astimezone(CHINA_TZ).date()


def payment_time(order: Order | dict[str, Any]) -> datetime | None:
    """When a paid order was paid, for the day it belongs to: WeChat's time first."""
    if isinstance(order, Order):
        return order.time_end or order.paid_at
    return order.get("time_end") or order.get("paid_at")


def within(moment: datetime | None, bounds: tuple[datetime, datetime]) -> bool:
    return moment is not None and bounds[0] <= moment < bounds[1]


def payment_in_day(order: Order, bounds: tuple[datetime, datetime]) -> bool:
    return order.state == PAID and within(payment_time(order), bounds)


def refund_in_day(refund: Refund, bounds: tuple[datetime, datetime]) -> bool:
    return refund.state != R_FAILED and within(refund.created_at, bounds)


def paid_orders_where(bounds: tuple[datetime, datetime]) -> dict[str, Any]:
    """The stored orders a day's payments can be among (the ``state, created_at`` index)."""
    return {"state": PAID, "created_at": {"$gte": bounds[0] - ORDER_LEAD, "$lt": bounds[1]}}


def refunds_where(bounds: tuple[datetime, datetime]) -> dict[str, Any]:
    """A day's refunds (the ``created_at`` index); failed ones are left out by :func:`refund_in_day`."""
    return {"created_at": {"$gte": bounds[0], "$lt": bounds[1]}}


@dataclass(frozen=True)
class DayFigures:
    day: date
    payments: int
    gross_fen: int
    refunds: int           # requested that day and not refused by WeChat
    refunded_fen: int      # of those, what WeChat completed
    refunds_pending_fen: int  # of those, what is still under way (pending, or needing a person)
    truncated: bool        # more orders than FIGURES_SCAN: the figures are a lower bound

    @property
    def net_fen(self) -> int:
        return self.gross_fen - self.refunded_fen

    def to_dict(self) -> dict[str, Any]:
        start, end = china_day_bounds(self.day)
        return {
            "day": self.day.isoformat(),
            "timezone": "Asia/Shanghai (UTC+8)",
            "since": start,
            "until": end,
            "payments": self.payments,
            "gross_fen": self.gross_fen,
            "refunds": self.refunds,
            "refunded_fen": self.refunded_fen,
            "refunds_pending_fen": self.refunds_pending_fen,
            "net_fen": self.net_fen,
            "truncated": self.truncated,
        }


async def figures(store: Store, day: date, *, scan: int = FIGURES_SCAN) -> DayFigures:
    """Gross, refunded and net of China day ``day`` (see the module's rules)."""
    bounds = china_day_bounds(day)
    with store_guard():
        orders = await store.find(ORDERS, paid_orders_where(bounds), limit=scan + 1, fields=PAYMENT_FIELDS)
        refunds = await store.find(REFUNDS, refunds_where(bounds), limit=scan + 1, fields=REFUND_FIELDS)
    truncated = len(orders) > scan or len(refunds) > scan
    paid = [int(d.get("total_fee") or 0) for d in orders[:scan] if within(payment_time(d), bounds)]
    kept = [d for d in refunds[:scan] if d.get("state") != R_FAILED]
    return DayFigures(
        day=day,
        payments=len(paid),
        gross_fen=sum(paid),
        refunds=len(kept),
        refunded_fen=sum(int(d.get("amount_fen") or 0) for d in kept if d.get("state") == R_SUCCEEDED),
        refunds_pending_fen=sum(
            int(d.get("amount_fen") or 0) for d in kept if d.get("state") in (R_PENDING, R_NEEDS_ATTENTION)
        ),
        truncated=truncated,
    )


@dataclass(frozen=True)
class Line:
    """One row of a day's export: a payment or a refund, with its checkout's reference."""

    kind: str  # "payment" | "refund"
    at: datetime  # the moment that puts it in the day (payment time; refund request)
    amount_fen: int
    state: str
    checkout_id: str
    merchant_reference: str | None
    out_trade_no: str
    transaction_id: str | None = None
    trade_type: str | None = None
    out_refund_no: str | None = None
    refund_id: str | None = None
    refund_kind: str | None = None
    succeeded_at: datetime | None = None


async def lines(store: Store, day: date, *, page: int = PAGE) -> AsyncIterator[list[Line]]:
    """China day ``day``'s payments, then its refunds, a page at a time, each
    page oldest first; every row once even if rows arrive meanwhile."""
    bounds = china_day_bounds(day)
    seen: set[str] = set()
    async for docs in _pages(store, ORDERS, paid_orders_where(bounds), page):
        orders = [o for o in (Order.from_doc(d) for d in docs if d["_id"] not in seen) if payment_in_day(o, bounds)]
        seen.update(o.out_trade_no for o in orders)
        refs = await _references(store, [o.checkout_id for o in orders])
        rows = [
            Line("payment", payment_time(o) or o.created_at, o.total_fee, o.state, o.checkout_id, refs.get(o.checkout_id),
                 o.out_trade_no, transaction_id=o.transaction_id, trade_type=o.trade_type)
            for o in orders
        ]
        if rows:
            yield sorted(rows, key=lambda r: (r.at, r.out_trade_no))
    seen.clear()
    async for docs in _pages(store, REFUNDS, refunds_where(bounds), page):
        refunds = [r for r in (Refund.from_doc(d) for d in docs if d["_id"] not in seen) if refund_in_day(r, bounds)]
        seen.update(r.out_refund_no for r in refunds)
        refs = await _references(store, [r.checkout_id for r in refunds])
        orders = await _transactions(store, [r.out_trade_no for r in refunds])
        rows = [
            Line("refund", r.created_at, r.amount_fen, r.state, r.checkout_id, refs.get(r.checkout_id), r.out_trade_no,
                 transaction_id=orders.get(r.out_trade_no), out_refund_no=r.out_refund_no, refund_id=r.refund_id,
                 refund_kind=r.kind, succeeded_at=r.succeeded_at)
            for r in refunds
        ]
        if rows:
            yield rows


async def _pages(store: Store, collection: str, where: dict[str, Any], page: int) -> AsyncIterator[list[dict[str, Any]]]:
    skip = 0
    while True:
        with store_guard():
            docs = await store.find(collection, where, sort=[("created_at", 1)], limit=page, skip=skip)
        if docs:
            yield docs
        if len(docs) < page:
            return
        skip += page


async def _references(store: Store, checkout_ids: Sequence[str]) -> dict[str, str | None]:
    ids = sorted(set(checkout_ids))
    if not ids:
        return {}
    with store_guard():
        docs = await store.find(CHECKOUTS, {"_id": {"$in": ids}}, limit=0, fields=["merchant_reference"])
    return {d["_id"]: d.get("merchant_reference") for d in docs}


async def _transactions(store: Store, out_trade_nos: Sequence[str]) -> dict[str, str | None]:
    nos = sorted(set(out_trade_nos))
    if not nos:
        return {}
    with store_guard():
        docs = await store.find(ORDERS, {"_id": {"$in": nos}}, limit=0, fields=["transaction_id"])
    return {d["_id"]: d.get("transaction_id") for d in docs}
