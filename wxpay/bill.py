"""The daily statement from ``pay/downloadbill``: text rows into typed rows.

A bill is not XML: a header row, detail rows whose every value starts with a
backtick (so spreadsheets leave long numbers alone), a summary header and a
summary row. Amounts are yuan with two decimals and become integer fen via
``Decimal``, never float. The fee (手续费) has five decimals, i.e. fractions
of a fen, so it stays a ``Decimal`` of yuan. WeChat has renamed columns over
the years (总金额 → 应结订单金额 + 订单金额, 代金券或立减优惠金额 → 代金券金额 …);
both generations are read, and any column not known here is kept in ``raw``.

A failed download answers in XML (``return_code=FAIL``, "No Bill Exist",
"Bill Creating", …) and becomes a typed error.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import (  # noqa: F401  (the bill errors are re-exported here, where they were first defined)
    BillError,
    BillNotReadyError,
    MessageTooLargeError,
    NoBillError,
    ProtocolError,
    RetryableBusinessError,
    ReturnFailError,
)
from .timeutil import parse_success_time
from .xmlcodec import parse_xml

MAX_BILL_BYTES = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


# --- errors (defined in wxpay.errors, where every version's callers find them) ---


def bill_fail_error(reply: dict[str, str]) -> Exception:
    msg = reply.get("return_msg") or ""
    lowered = msg.lower()
    kw: dict[str, Any] = {"return_code": reply.get("return_code") or "FAIL", "return_msg": msg or None}
    if "no bill exist" in lowered:
        return NoBillError(
            f"WeChat has no bill for that day: no trades, older than 3 months, or not generated yet (WeChat: {msg})",
            **kw,
        )
    if "bill creating" in lowered:
        return BillNotReadyError(
            f"WeChat is still generating this bill; fetch it after 10:00 the next day (WeChat: {msg})",
            **kw,
        )
    if "systemerror" in lowered.replace(" ", ""):
        return RetryableBusinessError(
            f"WeChat had a system error producing the bill; retry (WeChat: {msg})",
            err_code="SYSTEMERROR",
            **kw,
        )
    return BillError(f"WeChat refused the bill download (WeChat: {msg or 'no reason given'})", **kw)


# --- rows ----------------------------------------------------------------------

# header text (whitespace removed) -> (attribute, kind)
_ROW_COLUMNS: dict[str, tuple[str, str]] = {
    "交易时间": ("trade_time", "time"),
    "公众账号ID": ("appid", "str"),
    "商户号": ("mch_id", "str"),
    "子商户号": ("sub_mch_id", "str"),
    "特约商户号": ("sub_mch_id", "str"),
    "设备号": ("device_info", "str"),
    "微信订单号": ("transaction_id", "str"),
    "商户订单号": ("out_trade_no", "str"),
    "用户标识": ("openid", "str"),
    "交易类型": ("trade_type", "str"),
    "交易状态": ("trade_state", "str"),
    "付款银行": ("bank_type", "str"),
    "货币种类": ("fee_type", "str"),
    "总金额": ("total_fee", "fen"),
    "订单金额": ("total_fee", "fen"),
    "应结订单金额": ("settlement_total_fee", "fen"),
    "代金券或立减优惠金额": ("coupon_fee", "fen"),
    "代金券金额": ("coupon_fee", "fen"),
    "企业红包金额": ("coupon_fee", "fen"),
    "退款申请时间": ("refund_apply_time", "time"),
    "退款成功时间": ("refund_success_time", "time"),
    "微信退款单号": ("refund_id", "str"),
    "商户退款单号": ("out_refund_no", "str"),
    "退款金额": ("refund_fee", "fen"),
    "申请退款金额": ("request_refund_fee", "fen"),
    "代金券或立减优惠退款金额": ("coupon_refund_fee", "fen"),
    "充值券退款金额": ("coupon_refund_fee", "fen"),
    "企业红包退款金额": ("coupon_refund_fee", "fen"),
    "退款类型": ("refund_type", "str"),
    "退款状态": ("refund_status", "str"),
    "商品名称": ("body", "str"),
    "商户数据包": ("attach", "str"),
    "手续费": ("poundage", "yuan"),
    "费率": ("rate", "str"),
    "费率备注": ("rate_note", "str"),
}

_SUMMARY_COLUMNS: dict[str, tuple[str, str]] = {
    "总交易单数": ("total_count", "int"),
    "总交易额": ("total_fee", "fen"),
    "应结订单总金额": ("settlement_total_fee", "fen"),
    "订单总金额": ("order_total_fee", "fen"),
    "总退款金额": ("refund_fee", "fen"),
    "退款总金额": ("refund_fee", "fen"),
    "申请退款总金额": ("request_refund_fee", "fen"),
    "总代金券或立减优惠退款金额": ("coupon_refund_fee", "fen"),
    "总企业红包退款金额": ("coupon_refund_fee", "fen"),
    "充值券退款总金额": ("coupon_refund_fee", "fen"),
    "手续费总金额": ("poundage", "yuan"),
}


@dataclass(frozen=True)
class BillRow:
    trade_time: datetime | None = None
    appid: str | None = None
    mch_id: str | None = None
    sub_mch_id: str | None = None
    device_info: str | None = None
    transaction_id: str | None = None
    out_trade_no: str | None = None
    openid: str | None = None
    trade_type: str | None = None
    trade_state: str | None = None
    bank_type: str | None = None
    fee_type: str | None = None
    total_fee: int | None = None
    settlement_total_fee: int | None = None
    coupon_fee: int | None = None
    refund_apply_time: datetime | None = None
    refund_success_time: datetime | None = None
    refund_id: str | None = None
    out_refund_no: str | None = None
    refund_fee: int | None = None
    request_refund_fee: int | None = None
    coupon_refund_fee: int | None = None
    refund_type: str | None = None
    refund_status: str | None = None
    body: str | None = None
    attach: str | None = None
    poundage: Decimal | None = None  # yuan, five decimals (fractions of a fen)
    rate: str | None = None
    rate_note: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class BillSummary:
    total_count: int | None = None
    total_fee: int | None = None
    settlement_total_fee: int | None = None
    order_total_fee: int | None = None
    refund_fee: int | None = None
    request_refund_fee: int | None = None
    coupon_refund_fee: int | None = None
    poundage: Decimal | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Bill:
    rows: list[BillRow]
    summary: BillSummary
    headers: list[str] = field(default_factory=list, repr=False)


# --- conversion ----------------------------------------------------------------

_CENT = Decimal(100)


def yuan_to_fen(text: str) -> int:
    """'12.34' → 1234 exactly; a value that is not a whole number of fen is an error."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ProtocolError(f"Bill amount is not a number: {text!r}") from None
    if not value.is_finite():
        raise ProtocolError(f"Bill amount is not a number: {text!r}")
    fen = value * _CENT
    if fen != fen.to_integral_value():
        raise ProtocolError(f"Bill amount {text!r} is not a whole number of fen")
    return int(fen)


def _yuan(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ProtocolError(f"Bill amount is not a number: {text!r}") from None
    if not value.is_finite():
        raise ProtocolError(f"Bill amount is not a number: {text!r}")
    return value


def _convert(kind: str, text: str) -> Any:
    if text == "":
        return None
    if kind == "str":
        return text
    if kind == "fen":
        return yuan_to_fen(text)
    if kind == "yuan":
        return _yuan(text)
    if kind == "int":
        if not re.fullmatch(r"[0-9]{1,18}", text.strip()):
            raise ProtocolError(f"Bill count is not an integer: {text!r}")
        return int(text.strip())
    if kind == "time":
        return parse_success_time(text)
    raise AssertionError(kind)


def _header(line: str) -> list[str]:
    return [re.sub(r"\s+", "", name) for name in line.split(",")]


def _values(line: str, width: int, where: str) -> list[str]:
    """Split a backtick row; splitting on ",`" keeps commas inside values (e.g. 商品名称)."""
    if not line.startswith("`"):
        raise ProtocolError(f"Bill {where} row does not start with a backtick")
    values = line[1:].split(",`")
    if len(values) != width:
        raise ProtocolError(f"Bill {where} row has {len(values)} values for {width} columns")
    return values


def _typed(columns: dict[str, tuple[str, str]], header: list[str], values: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    raw = dict(zip(header, values))
    for name, text in raw.items():
        spec = columns.get(name)
        if spec is None:
            continue
        attr, kind = spec
        converted = _convert(kind, text)
        if converted is not None or attr not in out:
            out[attr] = converted
    out["raw"] = raw
    return out


def gunzip(data: bytes, max_bytes: int = MAX_BILL_BYTES) -> bytes:
    """Decompress a gzip bill with a hard size cap (a small body can inflate hugely)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error:
        raise ProtocolError("Bill is not valid gzip") from None
    if len(out) > max_bytes:
        raise MessageTooLargeError(f"Bill inflates beyond {max_bytes} bytes")
    if not inflater.eof:
        raise ProtocolError("Bill gzip stream is truncated")
    return out


def parse_bill(body: bytes | str) -> Bill:
    """Parse a downloadbill body (plain text or gzip), or raise its failure as an error."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body[:2] == _GZIP_MAGIC:
        body = gunzip(body)
    stripped = body.lstrip()
    if stripped.startswith(b"<"):
        reply = parse_xml(stripped)
        if reply.get("return_code") == "SUCCESS":
            raise ProtocolError("downloadbill answered XML SUCCESS instead of a bill")
        raise bill_fail_error(reply)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"Bill is not UTF-8 (byte {exc.start})") from None
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) < 3:
        raise ProtocolError("Bill is too short: expected header, summary header and summary row")
    header = _header(lines[0])
    rows: list[BillRow] = []
    index = 1
    while index < len(lines) and lines[index].startswith("`"):
        rows.append(BillRow(**_typed(_ROW_COLUMNS, header, _values(lines[index], len(header), "detail"))))
        index += 1
    if index + 2 != len(lines):
        raise ProtocolError("Bill must end with one summary header and one summary row")
    summary_header = _header(lines[index])
    summary = BillSummary(
        **_typed(_SUMMARY_COLUMNS, summary_header, _values(lines[index + 1], len(summary_header), "summary"))
    )
    return Bill(rows=rows, summary=summary, headers=header)


# --- the fund-flow bill ------------------------------------------------------------
#
# Same text format (backticks, yuan, a summary at the end), other columns: one
# row per movement of money on one account (BASIC, OPERATION or FEES). APIv3's
# /v3/bill/fundflowbill and V2's pay/downloadfundflow both serve it.

_FUND_ROW_COLUMNS: dict[str, tuple[str, str]] = {
    "记账时间": ("booked_at", "time"),
    "微信支付业务单号": ("business_no", "str"),
    "资金流水单号": ("flow_no", "str"),
    "业务名称": ("business_name", "str"),
    "业务类型": ("business_type", "str"),
    "收支类型": ("direction", "str"),
    "收支金额(元)": ("amount_fen", "fen"),
    "账户结余(元)": ("balance_fen", "fen"),
    "资金变更提交申请人": ("applicant", "str"),
    "备注": ("note", "str"),
    "业务凭证号": ("voucher_no", "str"),
}

_FUND_SUMMARY_COLUMNS: dict[str, tuple[str, str]] = {
    "资金流水总笔数": ("total_count", "int"),
    "收入笔数": ("income_count", "int"),
    "收入金额": ("income_fen", "fen"),
    "支出笔数": ("expense_count", "int"),
    "支出金额": ("expense_fen", "fen"),
}


@dataclass(frozen=True)
class FundFlowRow:
    """One movement: ``direction`` is 收入 (in) or 支出 (out); ``amount_fen`` is unsigned."""

    booked_at: datetime | None = None
    business_no: str | None = None
    flow_no: str | None = None
    business_name: str | None = None
    business_type: str | None = None
    direction: str | None = None
    amount_fen: int | None = None
    balance_fen: int | None = None
    applicant: str | None = None
    note: str | None = None
    voucher_no: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class FundFlowSummary:
    total_count: int | None = None
    income_count: int | None = None
    income_fen: int | None = None
    expense_count: int | None = None
    expense_fen: int | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class FundFlowBill:
    rows: list[FundFlowRow]
    summary: FundFlowSummary
    headers: list[str] = field(default_factory=list, repr=False)


def _fund_header(line: str) -> list[str]:
    # Seen with ASCII and full-width brackets: 收支金额(元) / 收支金额（元）.
    return [name.replace("（", "(").replace("）", ")").lstrip("`") for name in _header(line)]


def parse_fund_flow_bill(body: bytes | str) -> FundFlowBill:
    """A fund-flow bill's text (plain or gzip) → typed rows and summary (amounts in fen)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body[:2] == _GZIP_MAGIC:
        body = gunzip(body)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"Fund-flow bill is not UTF-8 (byte {exc.start})") from None
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) < 3:
        raise ProtocolError("Fund-flow bill is too short: expected header, summary header and summary row")
    header = _fund_header(lines[0])
    if "资金流水单号" not in header:
        raise ProtocolError("This is not a fund-flow bill (no 资金流水单号 column)")
    rows: list[FundFlowRow] = []
    index = 1
    while index < len(lines) and lines[index].startswith("`") and index + 2 < len(lines):
        rows.append(FundFlowRow(**_typed(_FUND_ROW_COLUMNS, header, _values(lines[index], len(header), "detail"))))
        index += 1
    if index + 2 != len(lines):
        raise ProtocolError("Fund-flow bill must end with one summary header and one summary row")
    summary_header = _fund_header(lines[index])
    summary = FundFlowSummary(
        **_typed(_FUND_SUMMARY_COLUMNS, summary_header, _values(lines[index + 1], len(summary_header), "summary"))
    )
    return FundFlowBill(rows=rows, summary=summary, headers=header)
