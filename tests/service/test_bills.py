"""compare_bill alone: China-day boundaries against UTC records, and each kind of difference."""
from __future__ import annotations

from datetime import date, datetime, timezone

from service.bills import china_day_bounds, compare_bill
from service.models import Order, Refund
from wxpay.gateway import BillLine, DayBill
from wxpay.timeutil import CHINA_TZ

DAY = date(2026, 3, 10)


def order(no: str, *, paid_china: datetime, fee: int = 100, state: str = "paid") -> Order:
    at = paid_china.astimezone(timezone.utc)
    return Order(no, "co_x", "NATIVE", "wx1", "190", "MD5", fee, created_at=at, state=state, time_end=at, paid_at=at)


def row(no: str, fee: int = 100, **kw) -> BillLine:
    return BillLine(out_trade_no=no, transaction_id=None, trade_state=kw.pop("trade_state", "SUCCESS"), amount_fen=fee,
                    **kw)


def bill(*rows: BillLine) -> DayBill:
    return DayBill(DAY, tuple(rows))


def china(h: int, m: int = 0, s: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 3, day, h, m, s, tzinfo=CHINA_TZ)


def test_the_china_day_is_16_00_utc_to_16_00_utc():
    start, end = china_day_bounds(DAY)
    assert start == datetime(2026, 3, 9, 16, tzinfo=timezone.utc)
    assert end == datetime(2026, 3, 10, 16, tzinfo=timezone.utc)


def test_payments_just_inside_the_china_day_belong_to_it_and_just_outside_do_not():
    orders = {
        "early": order("early", paid_china=china(0, 0, 0)),          # 2026-03-09 16:00 UTC: the 9th in UTC
        "late": order("late", paid_china=china(23, 59, 59)),
        "next": order("next", paid_china=china(0, 0, 0, day=11)),    # the 11th in China, still the 10th in UTC
    }
    report = compare_bill(DAY, bill(row("early"), row("late")), orders, {})
    assert report.clean and report.our_payments == 2
    # Without the bill rows, exactly the two of that China day are missing at WeChat.
    report = compare_bill(DAY, bill(), orders, {})
    assert sorted(d.out_trade_no for d in report.differences) == ["early", "late"]
    assert {d.kind for d in report.differences} == {"paid_here_not_at_wechat"}


def test_each_kind_of_difference():
    orders = {
        "amount": order("amount", paid_china=china(10), fee=99),
        "state": order("state", paid_china=china(11), state="closed"),
    }
    refunds = {
        "r-state": Refund("r-state", "co_x", "amount", "wx1", "190", 10, 99, created_at=china(12), state="pending"),
        "r-amount": Refund("r-amount", "co_x", "amount", "wx1", "190", 11, 99, created_at=china(12), state="succeeded"),
        "r-ours": Refund("r-ours", "co_x", "amount", "wx1", "190", 12, 99, created_at=china(13), state="succeeded"),
        "r-failed": Refund("r-failed", "co_x", "amount", "wx1", "190", 12, 99, created_at=china(13), state="failed"),
    }
    rows = [
        row("amount", 100), row("state"), row("ghost"),
        row("amount", trade_state="REFUND", out_refund_no="r-state", refund_id="5031", refund_fen=10, refund_status="SUCCESS"),
        row("amount", trade_state="REFUND", out_refund_no="r-amount", refund_id="5032", refund_fen=12, refund_status="SUCCESS"),
        row("amount", trade_state="REFUND", out_refund_no="r-theirs", refund_id="5033", refund_fen=5, refund_status="SUCCESS"),
    ]
    report = compare_bill(DAY, bill(*rows), orders, refunds)
    found = sorted((d.kind, d.out_refund_no or d.out_trade_no) for d in report.differences)
    assert found == [
        ("amount_mismatch", "amount"),
        ("paid_at_wechat_not_here", "ghost"),
        ("refund_amount_mismatch", "r-amount"),
        ("refund_at_wechat_not_here", "r-theirs"),
        ("refund_here_not_at_wechat", "r-ours"),
        ("refund_state_mismatch", "r-state"),
        ("state_mismatch", "state"),
    ]
    assert not report.clean and "7 difference(s)" in report.text()
    assert report.to_dict()["differences"][0]["kind"] in {d.kind for d in report.differences}
