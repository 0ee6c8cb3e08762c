"""APIv3 transactions and refunds as typed, frozen dataclasses.

One shape per object whether it comes decrypted from a notify or from a
query reply (WeChat sends the same JSON object both ways; a refund's state
is ``refund_status`` in notifies and ``status`` in replies). Amounts are
integer fen, times aware UTC. Each object keeps the decoded JSON as ``raw``.

Field errors are :class:`~wxpay.errors.ProtocolError` with code
``missing_field`` or ``bad_field`` naming the JSON path.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, TypeVar, Union

T = TypeVar("T")

from ..errors import ProtocolError
from ..timeutil import parse_rfc3339

__all__ = [
    "AppPrepay",
    "H5Prepay",
    "JsapiPrepay",
    "NativePrepay",
    "Prepay",
    "Promotion",
    "Refund",
    "RefundAmount",
    "Transaction",
    "TransactionAmount",
    "parse_json_object",
    "parse_prepay",
    "parse_refund",
    "parse_transaction",
]


# --- JSON and fields ---------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Two parsers could each believe a different copy; refuse both.
        raise ProtocolError("The JSON repeats a key", code="malformed_json")
    return obj


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"The JSON holds {name}, which is not JSON", code="malformed_json")


# Built once: json.loads(..., object_pairs_hook=...) builds a decoder (and its scanner) per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
_SCAN = _DECODER.scan_once
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's four (str.isspace() knows more)


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Strict JSON: UTF-8 (no BOM, no UTF-16), an object at the top, no repeated keys, no NaN."""
    try:
        text = str(data, "utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        if text[:1] == "{":
            # The scanner itself, as decode() runs it, without decode()'s Python frames: what
            # follows the object must be JSON whitespace only.
            obj, end = _SCAN(text, 0)
            if end != len(text) and _WHITESPACE.match(text, end).end() != len(text):
                raise ValueError("extra data")
        else:
            obj = _DECODER.decode(text)
    except (ValueError, RecursionError, AttributeError, TypeError, StopIteration):  # + UnicodeDecodeError
        raise ProtocolError(f"{what} is not valid UTF-8 JSON", code="malformed_json") from None
    if type(obj) is not dict:
        raise ProtocolError(f"{what} is JSON but not an object", code="malformed_json")
    return obj


def frozen(cls: type[T], fields: dict[str, Any]) -> T:
    """A frozen dataclass filled in one step, ``fields`` naming every field.

    Its generated ``__init__`` pays one ``object.__setattr__`` per field, a
    third of the cost of typing a notify; the object is the same (equal,
    hashed and frozen alike: tests/wxpay/v3/test_models_fast.py).
    """
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


def _is_object(value: Any) -> bool:
    """A JSON object: almost always a dict (the ABC check is the slow path)."""
    return type(value) is dict or isinstance(value, Mapping)


def _missing(path: str, what: str) -> ProtocolError:
    return ProtocolError(f"{what} lacks the required field {path}", code="missing_field")


def _bad(path: str, expected: str, what: str) -> ProtocolError:
    return ProtocolError(f"{what}: field {path} must be {expected}", code="bad_field")


def _str(obj: Mapping[str, Any], name: str, what: str, *, path: str = "", required: bool = False) -> str | None:
    value = obj.get(name)
    if type(value) is str and value:  # the usual case first
        return value
    if value is None or value == "":
        if required:
            raise _missing(path + name, what)
        return None
    if not isinstance(value, str):
        raise _bad(path + name, "a string", what)
    return value


def _req_str(obj: Mapping[str, Any], name: str, what: str, *, path: str = "") -> str:
    value = obj.get(name)
    if type(value) is str and value:
        return value
    value = _str(obj, name, what, path=path, required=True)
    assert value is not None
    return value


def _int(obj: Mapping[str, Any], name: str, what: str, *, path: str = "", required: bool = False) -> int | None:
    value = obj.get(name)
    if type(value) is int and value >= 0:  # the usual case first
        return value
    if value is None:
        if required:
            raise _missing(path + name, what)
        return None
    if type(value) is not int or value < 0:  # bool is an int subclass: refused by the type check
        raise _bad(path + name, "a non-negative integer (fen)", what)
    return value


def _req_int(obj: Mapping[str, Any], name: str, what: str, *, path: str = "") -> int:
    value = _int(obj, name, what, path=path, required=True)
    assert value is not None
    return value


def _obj(obj: Mapping[str, Any], name: str, what: str, *, required: bool = False) -> Mapping[str, Any] | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _missing(name, what)
        return None
    if not _is_object(value):
        raise _bad(name, "an object", what)
    return value


def _time(obj: Mapping[str, Any], name: str, what: str, *, required: bool = False) -> datetime | None:
    text = _str(obj, name, what, required=required)
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ProtocolError:
        raise _bad(name, "an RFC 3339 time with offset", what) from None


# --- transactions ------------------------------------------------------------------


@dataclass(frozen=True)
class TransactionAmount:
    """``total`` is the order amount; ``payer_total`` what the shopper paid after coupons."""

    total: int
    currency: str | None = None
    payer_total: int | None = None
    payer_currency: str | None = None


@dataclass(frozen=True)
class Promotion:
    """One entry of ``promotion_detail`` (a coupon or discount on the payment)."""

    coupon_id: str
    amount: int
    name: str | None = None
    scope: str | None = None
    type: str | None = None
    stock_id: str | None = None
    wechatpay_contribute: int | None = None
    merchant_contribute: int | None = None
    other_contribute: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Transaction:
    """A payment: the decrypted ``TRANSACTION.SUCCESS`` resource, or a query reply.

    Unpaid orders (a query in ``NOTPAY``) have no ``transaction_id``, payer,
    ``payer_total`` or ``success_time``; a paid one always has them.
    """

    appid: str
    mchid: str
    out_trade_no: str
    trade_state: str  # SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR
    transaction_id: str | None = None
    trade_type: str | None = None
    trade_state_desc: str | None = None
    bank_type: str | None = None
    attach: str | None = None
    success_time: datetime | None = None
    openid: str | None = None
    amount: TransactionAmount | None = None
    promotions: tuple[Promotion, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def paid(self) -> bool:
        return self.trade_state in ("SUCCESS", "REFUND")


def _promotions(obj: Mapping[str, Any], what: str) -> tuple[Promotion, ...]:
    items = obj.get("promotion_detail")
    if items is None:
        return ()
    if not isinstance(items, list) or not all(_is_object(i) for i in items):
        raise _bad("promotion_detail", "a list of objects", what)
    out = []
    for n, item in enumerate(items):
        path = f"promotion_detail[{n}]."
        out.append(Promotion(
            coupon_id=_req_str(item, "coupon_id", what, path=path),
            amount=_req_int(item, "amount", what, path=path),
            name=_str(item, "name", what, path=path),
            scope=_str(item, "scope", what, path=path),
            type=_str(item, "type", what, path=path),
            stock_id=_str(item, "stock_id", what, path=path),
            wechatpay_contribute=_int(item, "wechatpay_contribute", what, path=path),
            merchant_contribute=_int(item, "merchant_contribute", what, path=path),
            other_contribute=_int(item, "other_contribute", what, path=path),
            currency=_str(item, "currency", what, path=path),
        ))
    return tuple(out)


def parse_transaction(obj: Mapping[str, Any], *, what: str = "Transaction") -> Transaction:
    """A transaction JSON object → :class:`Transaction`; a paid one must carry its payment fields."""
    if not _is_object(obj):
        raise ProtocolError(f"{what} is not a JSON object", code="malformed_json")
    trade_state = _req_str(obj, "trade_state", what)
    paid = trade_state in ("SUCCESS", "REFUND")
    amount_obj = _obj(obj, "amount", what, required=paid)
    amount = None
    if amount_obj is not None:
        amount = frozen(TransactionAmount, {
            "total": _req_int(amount_obj, "total", what, path="amount."),
            "currency": _str(amount_obj, "currency", what, path="amount.", required=paid),
            "payer_total": _int(amount_obj, "payer_total", what, path="amount.", required=paid),
            "payer_currency": _str(amount_obj, "payer_currency", what, path="amount."),
        })
    payer = _obj(obj, "payer", what)
    return frozen(Transaction, {
        "appid": _req_str(obj, "appid", what),
        "mchid": _req_str(obj, "mchid", what),
        "out_trade_no": _req_str(obj, "out_trade_no", what),
        "trade_state": trade_state,
        "transaction_id": _str(obj, "transaction_id", what, required=paid),
        "trade_type": _str(obj, "trade_type", what),
        "trade_state_desc": _str(obj, "trade_state_desc", what),
        "bank_type": _str(obj, "bank_type", what),
        "attach": _str(obj, "attach", what),
        "success_time": _time(obj, "success_time", what, required=paid),
        "openid": _str(payer, "openid", what, path="payer.") if payer is not None else None,
        "amount": amount,
        "promotions": _promotions(obj, what),
        "raw": obj,
    })


# --- refunds -----------------------------------------------------------------------


@dataclass(frozen=True)
class RefundAmount:
    """``refund`` of ``total``; ``payer_refund`` is what goes back to the shopper."""

    total: int
    refund: int
    payer_total: int | None = None
    payer_refund: int | None = None
    settlement_total: int | None = None
    settlement_refund: int | None = None
    discount_refund: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Refund:
    """A refund: the decrypted ``REFUND.*`` resource, or a refund (query) reply.

    ``refund_status``: SUCCESS, CLOSED (failed, final), PROCESSING, ABNORMAL
    (not final: needs the merchant's action in the merchant platform).
    """

    out_trade_no: str
    out_refund_no: str
    refund_id: str
    refund_status: str
    amount: RefundAmount
    transaction_id: str | None = None
    mchid: str | None = None
    success_time: datetime | None = None
    create_time: datetime | None = None
    user_received_account: str | None = None
    channel: str | None = None
    funds_account: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_refund(obj: Mapping[str, Any], *, what: str = "Refund") -> Refund:
    """A refund JSON object (notify ``refund_status`` or reply ``status``) → :class:`Refund`."""
    if not _is_object(obj):
        raise ProtocolError(f"{what} is not a JSON object", code="malformed_json")
    status_name = "refund_status" if "refund_status" in obj else "status"
    status = _req_str(obj, status_name, what)
    amount_obj = _obj(obj, "amount", what, required=True)
    assert amount_obj is not None
    return frozen(Refund, {
        "out_trade_no": _req_str(obj, "out_trade_no", what),
        "out_refund_no": _req_str(obj, "out_refund_no", what),
        "refund_id": _req_str(obj, "refund_id", what),
        "refund_status": status,
        "amount": frozen(RefundAmount, {
            "total": _req_int(amount_obj, "total", what, path="amount."),
            "refund": _req_int(amount_obj, "refund", what, path="amount."),
            "payer_total": _int(amount_obj, "payer_total", what, path="amount."),
            "payer_refund": _int(amount_obj, "payer_refund", what, path="amount."),
            "settlement_total": _int(amount_obj, "settlement_total", what, path="amount."),
            "settlement_refund": _int(amount_obj, "settlement_refund", what, path="amount."),
            "discount_refund": _int(amount_obj, "discount_refund", what, path="amount."),
            "currency": _str(amount_obj, "currency", what, path="amount."),
        }),
        "transaction_id": _str(obj, "transaction_id", what),
        "mchid": _str(obj, "mchid", what),
        "success_time": _time(obj, "success_time", what),
        "create_time": _time(obj, "create_time", what),
        "user_received_account": _str(obj, "user_received_account", what),
        "channel": _str(obj, "channel", what),
        "funds_account": _str(obj, "funds_account", what),
        "raw": obj,
    })


# --- prepay replies ---------------------------------------------------------------


@dataclass(frozen=True)
class JsapiPrepay:
    """JSAPI (Official Account pages, Mini Programs): sign the page's payload with ``prepay_id``."""

    prepay_id: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class AppPrepay:
    """App: sign the OpenSDK ``PayReq`` with ``prepay_id``."""

    prepay_id: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class NativePrepay:
    """Native: show ``code_url`` as a QR code."""

    code_url: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class H5Prepay:
    """H5: send the shopper's browser to ``h5_url`` (add ``redirect_url`` to come back)."""

    h5_url: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


Prepay = Union[JsapiPrepay, AppPrepay, NativePrepay, H5Prepay]

_PREPAY = {
    "jsapi": (JsapiPrepay, "prepay_id", ("wx",)),
    "app": (AppPrepay, "prepay_id", ("wx",)),
    "native": (NativePrepay, "code_url", ("weixin://",)),
    "h5": (H5Prepay, "h5_url", ("https://", "http://")),
}


def parse_prepay(kind: str, obj: Mapping[str, Any]) -> Prepay:
    """A (verified) order reply → the typed result of its ``kind`` (jsapi, app, native, h5)."""
    cls, name, prefixes = _PREPAY[kind]
    what = f"The {kind} order reply"
    value = _req_str(obj, name, what)
    if not value.startswith(prefixes) or len(value) > 2048 or not value.isascii():
        raise _bad(name, f"a {' or '.join(prefixes)}… value", what)
    return cls(value, raw=obj)
