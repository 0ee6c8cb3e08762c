"""V3 bills in two steps (digest §5.6-§5.8, §9.7).

Step 1 (``/v3/bill/tradebill`` or ``/v3/bill/fundflowbill``, signed reply)
renders the file, keeps it under a random token for a short while and
answers its SHA1 (of the plain, un-gzipped bytes) and a ``download_url``.
Step 2 (``/v3/billdownload/file?token=``, Authorization-signed like any GET)
returns the bytes, gzipped when step 1 asked for it, with **no**
``Wechatpay-*`` headers. An expired or unknown token is 400
``INVALID_REQUEST``; another merchant's token is 403 ``NO_AUTH``.

The trade bill is V2's (same columns, backticks, yuan); the fund-flow bill
lists the basic account's income (payments) and expense (refunds, fees).
At most ``MAX_TOKENS`` files are kept; the oldest go first.
"""
from __future__ import annotations

import gzip
import hashlib
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from .. import bill
from ..pay_state import Order, Refund
from .wire import V3Error, param_error

TOKEN_TTL = timedelta(minutes=5)  # the current tradebill page (older pages: 30 s)
MAX_TOKENS = 64
TRADE_BILL_TYPES = ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND", "ALL_SPECIAL", "SUC_SPECIAL", "REF_SPECIAL")
# Choice: the *_SPECIAL types (digest §5.6; for merchants in special industries) list the same rows as
# their plain counterparts here.
_SPECIAL = {"ALL_SPECIAL": "ALL", "SUC_SPECIAL": "SUCCESS", "REF_SPECIAL": "REFUND"}
ACCOUNT_TYPES = ("BASIC", "OPERATION", "FEES")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")

FUND_HEADER = ["记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型", "收支金额（元）",
               "账户结余（元）", "资金变更提交申请人", "备注", "业务凭证号"]
FUND_SUMMARY = ["资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"]


@dataclass
class BillFile:
    mch_id: str
    data: bytes  # as served (gzip when asked)
    expires_at: datetime


def bill_date(text: str) -> str:
    """``YYYY-MM-DD`` → V2's ``YYYYMMDD`` (the day-ready rules are shared)."""
    match = _DATE.match(text)
    if match is None:
        raise param_error("/bill_date", "应为YYYY-MM-DD格式的日期", value=text[:16], location="query")
    try:
        datetime(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise param_error("/bill_date", "不是存在的日期", value=text, location="query") from None
    return match[1] + match[2] + match[3]


def _unavailable(exc: bill.BillUnavailable) -> V3Error:
    # Choice: V2's texts mapped to the V3 codes SDKs know for them.
    if exc.return_msg == "Bill Creating":
        return V3Error(400, "STATEMENT_CREATING", "账单生成中，请稍后再试（次日10点后下载）")
    return V3Error(400, "NO_STATEMENT_EXIST", "账单不存在：该日期无交易，或超过三个月")


def trade_bill(day: str, bill_type: str, mch_id: str, orders: list[Order], refunds: Iterable[Refund],
               now: datetime, *, on_the_day: bool = False) -> bytes:
    if bill_type not in TRADE_BILL_TYPES:
        raise param_error("/bill_type", f"应为{'、'.join(TRADE_BILL_TYPES)}之一", value=bill_type[:32],
                          location="query")
    try:
        bill.check_ready(day, now, on_the_day=on_the_day)
        text = bill.render(day, _SPECIAL.get(bill_type, bill_type), mch_id, orders, refunds,
                           {o.out_trade_no: o for o in orders})
    except bill.BillUnavailable as exc:
        raise _unavailable(exc) from None
    return text.encode("utf-8")


def fundflow_bill(day: str, account_type: str, mch_id: str, orders: list[Order], refunds: Iterable[Refund],
                  now: datetime, *, on_the_day: bool = False) -> bytes:
    if account_type not in ACCOUNT_TYPES:
        raise param_error("/account_type", f"应为{'、'.join(ACCOUNT_TYPES)}之一", value=account_type[:32],
                          location="query")
    try:
        bill.check_ready(day, now, on_the_day=on_the_day)
    except bill.BillUnavailable as exc:
        raise _unavailable(exc) from None
    entries: list[tuple[datetime, str, str, str, int]] = []  # when, id, name, income|expense, fen
    if account_type == "BASIC":
        for order in orders:
            if order.mch_id == mch_id and order.paid_at and bill._day(order.paid_at) == day:
                entries.append((order.paid_at, order.transaction_id, "交易", "收入", order.total_fee))
                entries.append((order.paid_at, order.transaction_id, "扣除交易手续费", "支出", bill._fee(order.total_fee)))
        for refund in refunds:
            if refund.mch_id == mch_id and bill._day(refund.created_at) == day:
                entries.append((refund.created_at, refund.refund_id, "退款", "支出", refund.refund_fee))
    entries = [e for e in entries if e[4] > 0]
    if not entries:
        raise _unavailable(bill.BillUnavailable("No Bill Exist"))
    entries.sort(key=lambda e: e[0])
    balance, rows = 0, []
    for n, (when, ref, name, direction, fen) in enumerate(entries, start=1):
        balance += fen if direction == "收入" else -fen
        rows.append([bill._china(when), ref, f"{day}{n:010d}", name, name, direction, bill.yuan(fen),
                     bill.yuan(balance), "system", "", ref])
    income = [e[4] for e in entries if e[3] == "收入"]
    expense = [e[4] for e in entries if e[3] == "支出"]
    summary = [str(len(entries)), str(len(income)), bill.yuan(sum(income)), str(len(expense)), bill.yuan(sum(expense))]
    lines = [",".join(FUND_HEADER)]
    lines += [",".join("`" + v for v in row) for row in rows]
    lines += [",".join(FUND_SUMMARY), ",".join("`" + v for v in summary)]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


class BillFiles:
    """Files between step 1 and step 2, by token; bounded in number and in time."""

    def __init__(self) -> None:
        self._files: OrderedDict[str, BillFile] = OrderedDict()

    def __len__(self) -> int:
        return len(self._files)

    def put(self, mch_id: str, plain: bytes, tar_type: str, now: datetime) -> tuple[str, str]:
        """(token, sha1 hex of the plain bytes)."""
        self._drop_expired(now)
        data = gzip.compress(plain, mtime=0) if tar_type == "GZIP" else plain
        token = secrets.token_urlsafe(24)
        self._files[token] = BillFile(mch_id, data, now + TOKEN_TTL)
        while len(self._files) > MAX_TOKENS:
            self._files.popitem(last=False)
        return token, hashlib.sha1(plain).hexdigest()

    def get(self, token: str, mch_id: str, now: datetime) -> bytes:
        found = self._files.get(token)
        if found is None or now >= found.expires_at:
            raise V3Error(400, "INVALID_REQUEST", "下载链接已失效，请重新申请账单（第一步）",
                          {"field": "token", "location": "query"})
        if found.mch_id != mch_id:
            raise V3Error(403, "NO_AUTH", "无权下载其他商户的账单")
        return found.data

    def _drop_expired(self, now: datetime) -> None:
        for token in [t for t, f in self._files.items() if now >= f.expires_at]:
            del self._files[token]
