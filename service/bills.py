"""Daily bill reconciliation: WeChat's statement against the store.

:func:`compare_bill` is pure (a bill and our records in, differences out);
:func:`reconcile_day` is the thin runner that gets the bill through the
gateway (whichever API version) and reads the store. ``wxpay-server bills --date YYYY-MM-DD`` prints the result.

Time zones: a bill covers one **China** calendar day (UTC+8, no DST), while
the store keeps UTC. Which payments and refunds belong to a day is
service/daybook.py's rule (the console's figures and export use it too): a
payment the day of WeChat's own ``time_end``, a refund the day it was
requested.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping

from store.base import Store

from wxpay.errors import NoBillError
from wxpay.gateway import BillLine, DayBill, PayGateway
from wxpay.timeutil import CHINA_TZ

from .daybook import china_day_bounds, paid_orders_where, payment_in_day, refund_in_day, refunds_where
from .models import ORDERS, PAID, REFUNDS, Order, Refund

# A bill line's refund status (the gateway's words) -> our refund state.
_REFUND_STATES = {"SUCCESS": "succeeded", "PROCESSING": "pending", "CLOSED": "closed", "ABNORMAL": "needs_attention"}

KINDS = (
    "paid_at_wechat_not_here",
    "paid_here_not_at_wechat",
    "amount_mismatch",
    "state_mismatch",
    "refund_at_wechat_not_here",
    "refund_here_not_at_wechat",
    "refund_amount_mismatch",
    "refund_state_mismatch",
)


@dataclass(frozen=True)
class Difference:
    kind: str
    out_trade_no: str | None
    message: str
    out_refund_no: str | None = None
    wechat: dict[str, Any] | None = None
    ours: dict[str, Any] | None = None


@dataclass
class BillReport:
    day: date
    wechat_payments: int = 0
    wechat_refunds: int = 0
    our_payments: int = 0
    our_refunds: int = 0
    differences: list[Difference] = field(default_factory=list)
    note: str | None = None

    @property
    def clean(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "timezone": "Asia/Shanghai (UTC+8)",
            "clean": self.clean,
            "wechat": {"payments": self.wechat_payments, "refunds": self.wechat_refunds},
            "ours": {"payments": self.our_payments, "refunds": self.our_refunds},
            "differences": [asdict(d) for d in self.differences],
            "note": self.note,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, default=str)

    def text(self) -> str:
        lines = [
            f"Bill of {self.day.isoformat()} (China time): WeChat {self.wechat_payments} payment(s), "
            f"{self.wechat_refunds} refund(s); here {self.our_payments} payment(s), {self.our_refunds} refund(s).",
        ]
        if self.note:
            lines.append(self.note)
        if self.clean:
            lines.append("No differences.")
        else:
            lines.append(f"{len(self.differences)} difference(s):")
            for d in self.differences:
                ref = d.out_refund_no or d.out_trade_no or "?"
                lines.append(f"  {d.kind:<27} {ref}: {d.message}")
        return "\n".join(lines)


def _fen(value: int | None) -> str:
    return "?" if value is None else f"{value} fen ({value // 100}.{value % 100:02d} yuan)"


def compare_bill(
    day: date,
    bill: DayBill | None,
    orders: Mapping[str, Order],
    refunds: Mapping[str, Refund],
) -> BillReport:
    """Every difference between a day's bill and our records.

    ``orders`` and ``refunds`` hold at least our records of that day plus any
    record the bill names (keyed by out_trade_no / out_refund_no); records of
    other days are ignored unless the bill names them. ``bill`` None means
    WeChat has no bill for the day (no trades).
    """
    bounds = china_day_bounds(day)
    lines: tuple[BillLine, ...] = bill.lines if bill else ()
    paid_rows = {r.out_trade_no: r for r in lines if r.is_payment}
    refund_rows = {r.out_refund_no: r for r in lines if r.is_refund}
    ours_paid = {no: o for no, o in orders.items() if payment_in_day(o, bounds)}
    ours_refunds = {no: r for no, r in refunds.items() if refund_in_day(r, bounds)}
    report = BillReport(day, len(paid_rows), len(refund_rows), len(ours_paid), len(ours_refunds))
    add = report.differences.append

    for no, row in sorted(paid_rows.items()):
        wechat = {"trade_state": row.trade_state, "total_fee": row.amount_fen, "transaction_id": row.transaction_id}
        order = orders.get(no)
        if order is None:
            add(Difference("paid_at_wechat_not_here", no, f"WeChat has a payment of {_fen(row.amount_fen)}; the store has no such order", wechat=wechat))
            continue
        ours = {"state": order.state, "total_fee": order.total_fee, "transaction_id": order.transaction_id}
        if order.state != PAID:
            add(Difference("state_mismatch", no, f"paid at WeChat, but {order.state} here", wechat=wechat, ours=ours))
        if row.amount_fen != order.total_fee:
            add(Difference("amount_mismatch", no, f"WeChat {_fen(row.amount_fen)}, here {_fen(order.total_fee)}", wechat=wechat, ours=ours))
    for no, order in sorted(ours_paid.items()):
        if no not in paid_rows:
            add(Difference("paid_here_not_at_wechat", no, f"paid here ({_fen(order.total_fee)}), not in WeChat's bill",
                           ours={"state": order.state, "total_fee": order.total_fee, "transaction_id": order.transaction_id}))

    for no, row in sorted(refund_rows.items()):
        wechat = {"refund_status": row.refund_status, "refund_fee": row.refund_fen, "out_trade_no": row.out_trade_no}
        refund = refunds.get(no)
        if refund is None:
            add(Difference("refund_at_wechat_not_here", row.out_trade_no, f"WeChat refunded {_fen(row.refund_fen)}; the store has no such refund",
                           out_refund_no=no, wechat=wechat))
            continue
        ours = {"state": refund.state, "amount_fen": refund.amount_fen, "out_trade_no": refund.out_trade_no}
        if _REFUND_STATES.get(row.refund_status or "") != refund.state:
            add(Difference("refund_state_mismatch", refund.out_trade_no, f"WeChat says {row.refund_status}, here {refund.state}",
                           out_refund_no=no, wechat=wechat, ours=ours))
        if row.refund_fen != refund.amount_fen:
            add(Difference("refund_amount_mismatch", refund.out_trade_no, f"WeChat {_fen(row.refund_fen)}, here {_fen(refund.amount_fen)}",
                           out_refund_no=no, wechat=wechat, ours=ours))
    for no, refund in sorted(ours_refunds.items()):
        if no not in refund_rows:
            add(Difference("refund_here_not_at_wechat", refund.out_trade_no, f"refund of {_fen(refund.amount_fen)} ({refund.state}) here, not in WeChat's bill",
                           out_refund_no=no, ours={"state": refund.state, "amount_fen": refund.amount_fen}))
    return report


async def reconcile_day(day: date, gateway: PayGateway, store: Store, *, now: datetime | None = None) -> BillReport:
    """Get the bill of China day ``day`` and compare it with the store.

    Raises the bill's error (``wxpay.errors.BillError`` and subclasses,
    transport errors) when there is nothing to compare yet. "No Bill
    Exist" for a finished day on which the store has no trades either is a
    clean day, not an error.
    """
    bounds = china_day_bounds(day)
    try:
        bill: DayBill | None = await gateway.day_bill(day)
    except NoBillError:
        bill = None
    order_docs = await store.find(ORDERS, paid_orders_where(bounds), limit=0)
    orders = {d["_id"]: Order.from_doc(d) for d in order_docs}
    refund_docs = await store.find(REFUNDS, refunds_where(bounds), limit=0)
    refunds = {d["_id"]: Refund.from_doc(d) for d in refund_docs}
    for row in bill.lines if bill else ():
        if row.out_trade_no and row.out_trade_no not in orders:
            doc = await store.get(ORDERS, row.out_trade_no)
            if doc is not None:
                orders[doc["_id"]] = Order.from_doc(doc)
        if row.out_refund_no and row.out_refund_no not in refunds:
            doc = await store.get(REFUNDS, row.out_refund_no)
            if doc is not None:
                refunds[doc["_id"]] = Refund.from_doc(doc)
    if bill is None:
        ready_at = datetime.combine(day + timedelta(days=1), time(10), tzinfo=CHINA_TZ)
        if (now or datetime.now(timezone.utc)) < ready_at:
            raise NoBillError(
                f"WeChat has no bill for {day.isoformat()} yet: bills are ready after 10:00 China time the next day"
            )
    report = compare_bill(day, bill, orders, refunds)
    if bill is None:
        report.note = "WeChat has no bill for this day (No Bill Exist: it saw no trades)."
    return report


def summarize(differences: Iterable[Difference]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in differences:
        out[d.kind] = out.get(d.kind, 0) + 1
    return out
