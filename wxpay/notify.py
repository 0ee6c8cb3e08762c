"""Payment and refund notifies: parse safely, prove authenticity, then type.

A payment notify is checked in two steps because its sign type belongs to
the order (and notifies often omit ``sign_type``): :func:`read_notify`
parses without trusting anything, :func:`verify_notify_origin` checks the
signature with the sign type the notify itself shows (no order needed, so a
forgery costs the caller no lookup), the caller finds the order by
``out_trade_no``, then :func:`verify_payment_notify` checks the signature
with that order's sign type before any field is believed.

A refund notify has no signature; decrypting ``req_info`` with our key is
the proof (:func:`decrypt_refund_notify`).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from itertools import filterfalse
from datetime import datetime
from typing import Mapping

from .errors import (
    DecryptError,
    IdentityMismatchError,
    ProtocolError,
    ReturnFailError,
    WxPayError,
    business_error,
)
from .refund_crypto import decrypt_req_info
from .results import Coupon  # one coupon type for notifies and orderquery
from .signing import HMAC_SHA256, MD5, verify
from .timeutil import parse_success_time, parse_wire_time
from .xmlcodec import build_xml, parse_xml

__all__ = [
    "MAX_NOTIFY_BYTES",
    "Coupon",
    "PaymentNotify",
    "RefundNotify",
    "decrypt_refund_notify",
    "notify_reply",
    "read_notify",
    "verify_notify_origin",
    "verify_payment_notify",
]

log = logging.getLogger(__name__)

# Real notifies are 1-2 KiB; promotion_detail can add a few more.
MAX_NOTIFY_BYTES = 32 * 1024

_COUPON = re.compile(r"coupon_(type|id|fee)_([0-9]{1,3})")


@dataclass(frozen=True)
class PaymentNotify:
    """A verified payment notify. ``raw`` keeps every field WeChat sent."""

    appid: str
    mch_id: str
    out_trade_no: str
    transaction_id: str
    total_fee: int
    time_end: datetime
    sign_type: str
    cash_fee: int | None = None
    settlement_total_fee: int | None = None
    coupon_fee: int | None = None
    coupon_count: int | None = None
    coupons: list[Coupon] = field(default_factory=list)
    openid: str | None = None
    trade_type: str | None = None
    bank_type: str | None = None
    fee_type: str | None = None
    cash_fee_type: str | None = None
    is_subscribe: str | None = None
    attach: str | None = None
    device_info: str | None = None
    raw: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class RefundNotify:
    """A decrypted refund notify. ``raw`` is the decrypted ``<root>`` content."""

    appid: str
    mch_id: str
    transaction_id: str
    out_trade_no: str
    refund_id: str
    out_refund_no: str
    total_fee: int
    refund_fee: int
    refund_status: str  # SUCCESS / CHANGE / REFUNDCLOSE
    settlement_total_fee: int | None = None
    settlement_refund_fee: int | None = None
    success_time: datetime | None = None
    refund_recv_account: str | None = None  # wire name: refund_recv_accout (sic)
    refund_account: str | None = None
    refund_request_source: str | None = None
    raw: dict[str, str] = field(default_factory=dict, repr=False)


# --- helpers -------------------------------------------------------------------


def _opt(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    return value if value else None


def _req(fields: Mapping[str, str], name: str, what: str) -> str:
    value = fields.get(name)
    if not value:
        raise ProtocolError(f"{what} lacks the required field {name}")
    return value


def _is_amount(value: str) -> bool:
    """Same as matching ``[0-9]{1,18}``, without a regex call per amount."""
    return len(value) <= 18 and value.isdigit() and value.isascii()


def _int(name: str, value: str) -> int:
    if _is_amount(value):
        return int(value)
    raise ProtocolError(f"Field {name} must be a non-negative integer, got {value[:20]!r}")


def _opt_int(fields: Mapping[str, str], name: str) -> int | None:
    value = fields.get(name)
    return _int(name, value) if value else None


# Coupon field name -> (part, n); at most 3,330 names can match _COUPON. Names
# known not to be coupon fields are remembered too (capped), so a notify's
# usual fields are skipped without a regex or a Python-level test each.
_COUPON_FIELDS: dict[str, tuple[str, int]] = {}
_OTHER_FIELDS: set[str] = set()


def _frozen(cls: type[_T], values: dict) -> _T:
    """An instance of frozen dataclass ``cls`` from all its field values.

    Equal to ``cls(**values)``; a frozen ``__init__`` pays one
    ``object.__setattr__`` per field, and a notify has 22 of them.
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def _coupon_field(name: str) -> tuple[str, int] | None:
    """(part, n) for a coupon field name, remembering the answer either way."""
    match = _COUPON.fullmatch(name)
    if match is None:
        if len(_OTHER_FIELDS) < 4096:
            _OTHER_FIELDS.add(name)
        return None
    hit = _COUPON_FIELDS[name] = (match.group(1), int(match.group(2)))
    return hit


def _coupons(fields: Mapping[str, str]) -> list[Coupon]:
    """``coupon_{type,id,fee}_$n`` in any element order, sorted by ``$n``."""
    by_index: dict[int, dict[str, str]] = {}
    # Known non-coupon names are skipped in C; of two names for one part
    # ("_1", "_01") the later in the document wins.
    for name in filterfalse(_OTHER_FIELDS.__contains__, fields):
        hit = _COUPON_FIELDS.get(name) or _coupon_field(name)
        if hit is not None:
            by_index.setdefault(hit[1], {})[hit[0]] = fields[name]
    return _coupon_list(by_index) if by_index else []


def _coupon_list(by_index: dict[int, dict[str, str]]) -> list[Coupon]:
    coupons = []
    for n in sorted(by_index):
        parts = by_index[n]
        coupon_id, fee = parts.get("id"), parts.get("fee")
        if not coupon_id or not fee:
            raise ProtocolError(f"Coupon {n} needs both coupon_id_{n} and coupon_fee_{n}")
        if not _is_amount(fee):
            _int(f"coupon_fee_{n}", fee)  # raises, naming the field
        coupons.append(_frozen(Coupon, {"type": parts.get("type") or None, "id": coupon_id, "fee": int(fee)}))
    return coupons


def _check_identity(fields: Mapping[str, str], appid: str, mch_id: str, what: str) -> None:
    if fields.get("appid") != appid:
        raise IdentityMismatchError(f"{what} names another appid than ours; it is not for this merchant")
    if fields.get("mch_id") != mch_id:
        raise IdentityMismatchError(f"{what} names another mch_id than ours; it is not for this merchant")


def _notify_fail(fields: Mapping[str, str], what: str) -> ReturnFailError:
    msg = fields.get("return_msg") or None
    text = f"{what} reports return_code={fields.get('return_code') or 'missing'}; nothing to record"
    return ReturnFailError(f"{text} (WeChat: {msg})" if msg else text,
                           return_code=fields.get("return_code"), return_msg=msg)


# --- payment notify --------------------------------------------------------------


def read_notify(body: bytes, max_bytes: int = MAX_NOTIFY_BYTES) -> dict[str, str]:
    """Parse a notify body safely; nothing in the result is trusted yet."""
    return parse_xml(body, root="xml", max_bytes=max_bytes)


def verify_notify_origin(fields: Mapping[str, str], *, key: str) -> str:
    """Check the signature without knowing the order; returns the sign type.

    The sign type is the declared one, else the one the signature's length
    names (32 hex digits: MD5, 64: HMAC-SHA256). Only our key can pass, so
    a notify that fails here was not sent by WeChat; one that passes still
    goes through :func:`verify_payment_notify` with the order's own sign
    type. No I/O: a caller runs it before any lookup. Raises
    :class:`SignatureError`.
    """
    sign = fields.get("sign") or ""
    return verify(fields, key, fields.get("sign_type") or (HMAC_SHA256 if len(sign) == 64 else MD5))


def verify_payment_notify(
    fields: Mapping[str, str],
    *,
    key: str,
    sign_type: str,
    appid: str,
    mch_id: str,
    origin_sign_type: str | None = None,
) -> PaymentNotify:
    """Verify a parsed notify with the order's ``sign_type``, then type its fields.

    Order of checks: signature (a declared ``sign_type`` must equal the
    order's), ``return_code``, ``result_code``, appid/mch_id. Raises a
    :class:`WxPayError` subclass naming the first failure.
    ``origin_sign_type``: what :func:`verify_notify_origin` returned for these
    same ``fields`` and ``key``. When it is the order's sign type, that check
    computed this very signature (same fields, key and algorithm; a declared
    sign type equal to it), so it is not computed again.
    """
    try:
        used = sign_type if origin_sign_type == sign_type else verify(fields, key, sign_type)
        if fields.get("return_code") != "SUCCESS":
            raise _notify_fail(fields, "Payment notify")
        if fields.get("result_code") != "SUCCESS":
            raise business_error(fields)
        _check_identity(fields, appid, mch_id, "Payment notify")
        what = "Payment notify"
        get = fields.get
        notify = _frozen(PaymentNotify, {
            "appid": appid,
            "mch_id": mch_id,
            "out_trade_no": _req(fields, "out_trade_no", what),
            "transaction_id": _req(fields, "transaction_id", what),
            "total_fee": _int("total_fee", _req(fields, "total_fee", what)),
            "time_end": parse_wire_time(_req(fields, "time_end", what)),
            "sign_type": used,
            "cash_fee": _opt_int(fields, "cash_fee"),
            "settlement_total_fee": _opt_int(fields, "settlement_total_fee"),
            "coupon_fee": _opt_int(fields, "coupon_fee"),
            "coupon_count": _opt_int(fields, "coupon_count"),
            "coupons": _coupons(fields),
            "openid": get("openid") or None,
            "trade_type": get("trade_type") or None,
            "bank_type": get("bank_type") or None,
            "fee_type": get("fee_type") or None,
            "cash_fee_type": get("cash_fee_type") or None,
            "is_subscribe": get("is_subscribe") or None,
            "attach": get("attach") or None,
            "device_info": get("device_info") or None,
            "raw": dict(fields),
        })
    except WxPayError as exc:
        log.debug("payment notify rejected: %s: %s", exc.code, exc.message)
        raise
    log.debug(
        "payment notify verified: out_trade_no=%s sign_type=%s total_fee=%d",
        notify.out_trade_no, notify.sign_type, notify.total_fee,
    )
    return notify


def notify_reply(ok: bool, message: str | None = None) -> bytes:
    """The XML WeChat expects back; anything else (even "success") counts as FAIL.

    ``message`` defaults to ``OK`` / ``FAIL``; on failure give a short reason.
    """
    if message is None:
        message = "OK" if ok else "FAIL"
    return build_xml({"return_code": "SUCCESS" if ok else "FAIL", "return_msg": message})


# --- refund notify ---------------------------------------------------------------


def decrypt_refund_notify(
    body: bytes,
    *,
    key: str,
    appid: str,
    mch_id: str,
    max_bytes: int = MAX_NOTIFY_BYTES,
) -> RefundNotify:
    """Parse, check and decrypt a refund notify.

    The outer fields are unauthenticated, so a mismatch there is refused, and
    only a ``req_info`` that decrypts under our key to a ``<root>`` document
    is believed.
    """
    what = "Refund notify"
    try:
        outer = parse_xml(body, root="xml", max_bytes=max_bytes)
        if outer.get("return_code") != "SUCCESS":
            raise _notify_fail(outer, what)
        _check_identity(outer, appid, mch_id, what)
        plain = decrypt_req_info(outer.get("req_info", ""), key)
        try:
            inner = parse_xml(plain, root="root", max_bytes=max_bytes)
        except ProtocolError as exc:
            raise DecryptError(
                f"req_info decrypted but is not the expected <root> XML ({exc.message})"
            ) from None
        success_time = _opt(inner, "success_time")
        notify = RefundNotify(
            appid=appid,
            mch_id=mch_id,
            transaction_id=_req(inner, "transaction_id", what),
            out_trade_no=_req(inner, "out_trade_no", what),
            refund_id=_req(inner, "refund_id", what),
            out_refund_no=_req(inner, "out_refund_no", what),
            total_fee=_int("total_fee", _req(inner, "total_fee", what)),
            refund_fee=_int("refund_fee", _req(inner, "refund_fee", what)),
            refund_status=_req(inner, "refund_status", what),
            settlement_total_fee=_opt_int(inner, "settlement_total_fee"),
            settlement_refund_fee=_opt_int(inner, "settlement_refund_fee"),
            success_time=parse_success_time(success_time) if success_time else None,
            refund_recv_account=_opt(inner, "refund_recv_accout"),
            refund_account=_opt(inner, "refund_account"),
            refund_request_source=_opt(inner, "refund_request_source"),
            raw=inner,
        )
    except WxPayError as exc:
        log.debug("refund notify rejected: %s: %s", exc.code, exc.message)
        raise
    log.debug(
        "refund notify decrypted: out_refund_no=%s refund_status=%s",
        notify.out_refund_no, notify.refund_status,
    )
    return notify
