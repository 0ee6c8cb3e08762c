"""pay/downloadbill's text body (§9): header row, detail rows, summary header, summary row.

Comma-separated, every value prefixed with a backtick (spreadsheets keep
numbers as text), amounts in yuan, times in China time. Bills are per
mch_id; day T is ready from 09:00 on T+1 and kept for three months.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from ..timeutil import CHINA_TZ
from .pay_state import Order, Refund

FEE_RATE = 0.006  # shown as 0.60%
BILL_TYPES = ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND")

_COMMON = ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
           "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额"]
_REFUND_COLS = ["微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态"]
_TAIL = ["商品名称", "商户数据包", "手续费", "费率", "订单金额"]
HEADERS = {
    "ALL": _COMMON + _REFUND_COLS + _TAIL + ["申请退款金额", "费率备注"],
    "SUCCESS": _COMMON + _TAIL + ["费率备注"],
    "REFUND": _COMMON + ["退款申请时间", "退款成功时间"] + _REFUND_COLS + _TAIL + ["申请退款金额", "费率备注"],
}
HEADERS["RECHARGE_REFUND"] = HEADERS["REFUND"]
SUMMARY_HEADER = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额", "申请退款总金额"]


class BillUnavailable(Exception):
    """The documented return_msg of a failed downloadbill (layer-1 FAIL)."""

    def __init__(self, return_msg: str) -> None:
        super().__init__(return_msg)
        self.return_msg = return_msg


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def _fee(fen: int) -> int:
    return (fen * 6 + 500) // 1000  # 0.6 %, rounded half up, in fen


def _china(dt: datetime | None) -> str:
    return dt.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def _day(dt: datetime | None) -> str:
    return dt.astimezone(CHINA_TZ).strftime("%Y%m%d") if dt else ""


def check_ready(bill_date: str, now: datetime, *, on_the_day: bool = False) -> None:
    """Raise :class:`BillUnavailable` when day ``bill_date`` has no bill yet / any more.

    ``on_the_day`` (``SimConfig.bills_on_the_day``, the sandbox server's
    choice): the day's bill so far is served from the day itself, so a
    merchant trying ``wxpay-server bills`` need not wait for tomorrow."""
    try:
        day = datetime.strptime(bill_date, "%Y%m%d").replace(tzinfo=CHINA_TZ)
    except ValueError:
        raise BillUnavailable("invalid bill_date") from None
    ready_at = day if on_the_day else day + timedelta(days=1, hours=9)
    if now < ready_at:
        raise BillUnavailable("Bill Creating" if now >= day + timedelta(days=1) else "No Bill Exist")
    if now - ready_at > timedelta(days=92):
        raise BillUnavailable("No Bill Exist")


def render(
    bill_date: str, bill_type: str, mch_id: str, orders: Iterable[Order], refunds: Iterable[Refund],
    orders_by_no: dict[str, Order],
) -> str:
    """The bill text; raises :class:`BillUnavailable` ("No Bill Exist") when it has no rows."""
    rows: list[list[str]] = []
    totals = {"count": 0, "settle": 0, "refund": 0, "fee": 0, "order": 0, "asked": 0}

    def common(order: Order, when: datetime | None, state: str) -> list[str]:
        return [_china(when), order.appid, mch_id, "0", order.device_info, order.transaction_id,
                order.out_trade_no, order.openid, order.trade_type, state, order.bank_type, "CNY",
                yuan(order.total_fee), "0.00"]

    if bill_type in ("ALL", "SUCCESS"):
        for order in orders:
            if order.mch_id != mch_id or not order.paid_at or _day(order.paid_at) != bill_date:
                continue
            fee = _fee(order.total_fee)
            tail = [order.body, order.attach, yuan(fee), "0.60%", yuan(order.total_fee)]
            if bill_type == "ALL":
                row = common(order, order.paid_at, "SUCCESS") + ["0", "", "0.00", "0.00", "", ""] + tail + ["0.00", ""]
            else:
                row = common(order, order.paid_at, "SUCCESS") + tail + [""]
            rows.append(row)
            totals["count"] += 1
            totals["settle"] += order.total_fee
            totals["fee"] += fee
            totals["order"] += order.total_fee
    if bill_type in ("ALL", "REFUND", "RECHARGE_REFUND"):
        for refund in refunds:
            if refund.mch_id != mch_id or _day(refund.created_at) != bill_date:
                continue
            if bill_type == "RECHARGE_REFUND" and refund.refund_account != "REFUND_SOURCE_RECHARGE_FUNDS":
                continue
            order = orders_by_no.get(refund.out_trade_no)
            if order is None:
                continue
            fee = -_fee(refund.refund_fee)
            refund_cols = [refund.refund_id, refund.out_refund_no, yuan(refund.refund_fee), "0.00",
                           "ORIGINAL", refund.refund_status]
            tail = [order.body, order.attach, yuan(fee), "0.60%", "0.00", yuan(refund.refund_fee), ""]
            if bill_type == "ALL":
                row = common(order, refund.created_at, "REFUND") + refund_cols + tail
            else:
                row = (common(order, order.paid_at, "REFUND") + [_china(refund.created_at), _china(refund.success_at)]
                       + refund_cols + tail)
            rows.append(row)
            totals["count"] += 1
            totals["refund"] += refund.refund_fee
            totals["fee"] += fee
            totals["asked"] += refund.refund_fee
    if not rows:
        raise BillUnavailable("No Bill Exist")
    summary = [str(totals["count"]), yuan(totals["settle"]), yuan(totals["refund"]), "0.00",
               yuan(totals["fee"]), yuan(totals["order"]), yuan(totals["asked"])]
    lines = [",".join(HEADERS[bill_type])]
    lines += [",".join("`" + value.replace(",", "，") for value in row) for row in rows]
    lines.append(",".join(SUMMARY_HEADER))
    lines.append(",".join("`" + value for value in summary))
    return "\r\n".join(lines) + "\r\n"
