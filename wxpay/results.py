"""Typed results of Pay V2 calls, built from verified reply fields.

Every field WeChat sends as a number is an ``int`` here, every China wire
time an aware UTC ``datetime``. Each result keeps the whole verified reply in
``raw`` so fields WeChat adds later are not lost. A builder raises
:class:`ProtocolError` when a field the protocol promises is missing or
malformed, so a half-formed result never leaves this module.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from .errors import ProtocolError
from .timeutil import parse_success_time, parse_wire_time

_INT = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only: int() also takes "١٢"


# --- field readers -----------------------------------------------------------


def opt_str(raw: Mapping[str, str], name: str) -> str | None:
    value = raw.get(name)
    return value if value not in (None, "") else None


def req_str(raw: Mapping[str, str], name: str) -> str:
    value = opt_str(raw, name)
    if value is None:
        raise ProtocolError(f"WeChat reply lacks {name}")
    return value


def opt_int(raw: Mapping[str, str], name: str) -> int | None:
    value = opt_str(raw, name)
    if value is None:
        return None
    value = value.strip()
    if not _INT.fullmatch(value):
        raise ProtocolError(f"WeChat reply field {name} is not an integer: {value!r}")
    return int(value)


def req_int(raw: Mapping[str, str], name: str) -> int:
    value = opt_int(raw, name)
    if value is None:
        raise ProtocolError(f"WeChat reply lacks {name}")
    return value


def opt_wire_time(raw: Mapping[str, str], name: str) -> datetime | None:
    value = opt_str(raw, name)
    return parse_wire_time(value) if value is not None else None


def opt_success_time(raw: Mapping[str, str], name: str) -> datetime | None:
    value = opt_str(raw, name)
    return parse_success_time(value) if value is not None else None


# --- results -------------------------------------------------------------------


@dataclass(frozen=True)
class UnifiedOrderResult:
    prepay_id: str
    trade_type: str
    code_url: str | None
    mweb_url: str | None
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_reply(cls, raw: dict) -> "UnifiedOrderResult":
        trade_type = req_str(raw, "trade_type")
        result = cls(
            prepay_id=req_str(raw, "prepay_id"),
            trade_type=trade_type,
            code_url=opt_str(raw, "code_url"),
            mweb_url=opt_str(raw, "mweb_url"),
            raw=raw,
        )
        if trade_type == "NATIVE" and result.code_url is None:
            raise ProtocolError("WeChat reply to a NATIVE order lacks code_url")
        if trade_type == "MWEB" and result.mweb_url is None:
            raise ProtocolError("WeChat reply to an MWEB order lacks mweb_url")
        return result


@dataclass(frozen=True)
class Coupon:
    type: str | None
    id: str | None
    fee: int


@dataclass(frozen=True)
class OrderQueryResult:
    trade_state: str
    trade_state_desc: str | None
    out_trade_no: str | None
    transaction_id: str | None
    total_fee: int | None
    cash_fee: int | None
    settlement_total_fee: int | None
    coupon_fee: int | None
    coupons: list[Coupon]
    openid: str | None
    trade_type: str | None
    bank_type: str | None
    attach: str | None
    time_end: datetime | None
    raw: dict = field(repr=False, compare=False)

    @property
    def paid(self) -> bool:
        """Paid means trade_state SUCCESS (a later REFUND state is reported as such)."""
        return self.trade_state == "SUCCESS"

    @classmethod
    def from_reply(cls, raw: dict) -> "OrderQueryResult":
        coupons = []
        count = opt_int(raw, "coupon_count") or 0
        for n in range(count):
            coupons.append(
                Coupon(
                    type=opt_str(raw, f"coupon_type_{n}"),
                    id=opt_str(raw, f"coupon_id_{n}"),
                    fee=req_int(raw, f"coupon_fee_{n}"),
                )
            )
        return cls(
            trade_state=req_str(raw, "trade_state"),
            trade_state_desc=opt_str(raw, "trade_state_desc"),
            out_trade_no=opt_str(raw, "out_trade_no"),
            transaction_id=opt_str(raw, "transaction_id"),
            total_fee=opt_int(raw, "total_fee"),
            cash_fee=opt_int(raw, "cash_fee"),
            settlement_total_fee=opt_int(raw, "settlement_total_fee"),
            coupon_fee=opt_int(raw, "coupon_fee"),
            coupons=coupons,
            openid=opt_str(raw, "openid"),
            trade_type=opt_str(raw, "trade_type"),
            bank_type=opt_str(raw, "bank_type"),
            attach=opt_str(raw, "attach"),
            time_end=opt_wire_time(raw, "time_end"),
            raw=raw,
        )


@dataclass(frozen=True)
class CloseOrderResult:
    result_msg: str | None
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_reply(cls, raw: dict) -> "CloseOrderResult":
        return cls(result_msg=opt_str(raw, "result_msg"), raw=raw)


@dataclass(frozen=True)
class RefundResult:
    """WeChat accepted the refund; its final state comes from refundquery or the notify."""

    out_refund_no: str
    refund_id: str
    out_trade_no: str | None
    transaction_id: str | None
    refund_fee: int
    total_fee: int | None
    cash_fee: int | None
    settlement_refund_fee: int | None
    cash_refund_fee: int | None
    coupon_refund_fee: int | None
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_reply(cls, raw: dict) -> "RefundResult":
        return cls(
            out_refund_no=req_str(raw, "out_refund_no"),
            refund_id=req_str(raw, "refund_id"),
            out_trade_no=opt_str(raw, "out_trade_no"),
            transaction_id=opt_str(raw, "transaction_id"),
            refund_fee=req_int(raw, "refund_fee"),
            total_fee=opt_int(raw, "total_fee"),
            cash_fee=opt_int(raw, "cash_fee"),
            settlement_refund_fee=opt_int(raw, "settlement_refund_fee"),
            cash_refund_fee=opt_int(raw, "cash_refund_fee"),
            coupon_refund_fee=opt_int(raw, "coupon_refund_fee"),
            raw=raw,
        )


@dataclass(frozen=True)
class RefundItem:
    out_refund_no: str
    refund_id: str | None
    refund_channel: str | None
    refund_fee: int
    settlement_refund_fee: int | None
    coupon_refund_fee: int | None
    refund_status: str
    refund_account: str | None
    refund_recv_account: str | None
    success_time: datetime | None

    @property
    def succeeded(self) -> bool:
        return self.refund_status == "SUCCESS"


@dataclass(frozen=True)
class RefundQueryResult:
    out_trade_no: str | None
    transaction_id: str | None
    total_fee: int | None
    cash_fee: int | None
    settlement_total_fee: int | None
    refund_count: int
    total_refund_count: int | None
    refunds: list[RefundItem]
    raw: dict = field(repr=False, compare=False)

    @classmethod
    def from_reply(cls, raw: dict) -> "RefundQueryResult":
        count = req_int(raw, "refund_count")
        if count < 0 or count > 50:
            raise ProtocolError(f"WeChat reply has an implausible refund_count {count}")
        refunds = []
        for n in range(count):
            refunds.append(
                RefundItem(
                    out_refund_no=req_str(raw, f"out_refund_no_{n}"),
                    refund_id=opt_str(raw, f"refund_id_{n}"),
                    refund_channel=opt_str(raw, f"refund_channel_{n}"),
                    refund_fee=req_int(raw, f"refund_fee_{n}"),
                    settlement_refund_fee=opt_int(raw, f"settlement_refund_fee_{n}"),
                    coupon_refund_fee=opt_int(raw, f"coupon_refund_fee_{n}"),
                    refund_status=req_str(raw, f"refund_status_{n}"),
                    refund_account=opt_str(raw, f"refund_account_{n}"),
                    # WeChat spells it "accout"; accept the correct spelling too.
                    refund_recv_account=opt_str(raw, f"refund_recv_accout_{n}")
                    or opt_str(raw, f"refund_recv_account_{n}"),
                    success_time=opt_success_time(raw, f"refund_success_time_{n}"),
                )
            )
        return cls(
            out_trade_no=opt_str(raw, "out_trade_no"),
            transaction_id=opt_str(raw, "transaction_id"),
            total_fee=opt_int(raw, "total_fee"),
            cash_fee=opt_int(raw, "cash_fee"),
            settlement_total_fee=opt_int(raw, "settlement_total_fee"),
            refund_count=count,
            total_refund_count=opt_int(raw, "total_refund_count"),
            refunds=refunds,
            raw=raw,
        )


# --- JSON APIs ---------------------------------------------------------------


def parse_json_reply(body: bytes, *, max_bytes: int = 256 * 1024, errcodes: Mapping[int, Any] | None = None) -> dict[str, Any]:
    """Decode a JSON API reply, raising the typed error for a non-zero errcode
    (``errcodes``: the endpoint's own meanings, see ``errors.api_error``)."""
    from .errors import api_error

    if len(body) > max_bytes:
        from .errors import MessageTooLargeError

        raise MessageTooLargeError(f"JSON reply of {len(body)} bytes exceeds {max_bytes}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("WeChat's reply is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("WeChat's JSON reply is not an object")
    errcode = data.get("errcode", 0)
    if isinstance(errcode, bool) or not (isinstance(errcode, int) or isinstance(errcode, str) and _INT.fullmatch(errcode)):
        raise ProtocolError(f"WeChat's errcode is not a number: {errcode!r}")
    if int(errcode) != 0:
        raise api_error(data, errcodes)
    return data


def json_int(data: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ProtocolError(f"WeChat reply lacks {name}")
        return None
    if isinstance(value, bool):
        raise ProtocolError(f"WeChat reply field {name} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    raise ProtocolError(f"WeChat reply field {name} is not an integer: {value!r}")


def json_str(data: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ProtocolError(f"WeChat reply lacks {name}")
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"WeChat reply field {name} is not a string")
    return value


from .bill import Bill, BillRow, BillSummary  # noqa: E402,F401  (re-exported: results of downloadbill)
