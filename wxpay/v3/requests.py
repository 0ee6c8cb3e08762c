"""APIv3 requests as pure values: method, path with query, body bytes. No I/O.

Each ``build_*`` checks its arguments against WeChat's field rules and
raises :class:`~wxpay.errors.InvalidArgumentError` before anything is sent,
then returns a :class:`V3Request` whose ``body`` is serialised **once**:
those bytes are signed and those bytes are sent (:func:`request_headers`).

Two V3 wire rules are enforced here for every body, whoever built it
(:func:`json_body`):

- ``null`` is never sent: a field whose value is ``None`` is omitted;
- strings are UTF-8 of 1-3-byte characters only: a 4-byte character (an
  emoji, a rare ideograph) is refused locally with the field's name, since
  WeChat would refuse the whole request.

The builders write fields in the order of WeChat's own documentation, so
the shared vectors' bodies (R3, R4, R5) come out byte for byte.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping
from urllib.parse import quote, urlencode, urlsplit

from ..errors import InvalidArgumentError
from ..timeutil import rfc3339_time
from .signing import MerchantSigner

__all__ = [
    "ACCOUNT_TYPES",
    "BILL_TYPES",
    "ORDER_KINDS",
    "V3Request",
    "build_bill_file",
    "build_certificates",
    "build_close",
    "build_fund_flow_bill",
    "build_order",
    "build_query_by_out_trade_no",
    "build_query_by_transaction_id",
    "build_refund",
    "build_refund_query",
    "build_trade_bill",
    "json_body",
    "request_headers",
]

# kind -> path; the Mini Program pays through JSAPI with its own appid.
ORDER_KINDS = {
    "jsapi": "/v3/pay/transactions/jsapi",
    "app": "/v3/pay/transactions/app",
    "native": "/v3/pay/transactions/native",
    "h5": "/v3/pay/transactions/h5",
}
BILL_TYPES = ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND", "ALL_SPECIAL", "SUC_SPECIAL", "REF_SPECIAL")
ACCOUNT_TYPES = ("BASIC", "OPERATION", "FEES")
H5_TYPES = ("Wap", "iOS", "Android")

_OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-*]{6,32}")
_OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
_ID = re.compile(r"[0-9A-Za-z]{1,32}")  # mchid, transaction_id
_APPID = re.compile(r"[0-9A-Za-z_]{1,32}")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class V3Request:
    """One call: ``path`` is WeChat's (``/v3/…?query``), before any base-URL prefix.

    ``endpoint`` names the call in call statistics; ``safe`` says whether
    repeating it can change anything at WeChat (queries, close, bills).
    """

    method: str
    path: str
    body: bytes
    endpoint: str
    safe: bool


# --- the body ----------------------------------------------------------------


def _bad(message: str, code: str | None = None) -> InvalidArgumentError:
    return InvalidArgumentError(message, code=code)


def _clean(value: Any, path: str) -> Any:
    """A JSON-ready copy: None dropped from objects, 4-byte characters and floats refused."""
    kind = type(value)
    if kind is str:
        return _text(value, path)
    if kind is int or kind is bool:
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _bad(f"{path or 'body'} has a non-string key {key!r}")
            if item is None:
                continue  # absent, never null
            where = f"{path}.{key}" if path else key
            out[_text(key, where)] = _clean(item, where)
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for n, item in enumerate(value):
            if item is None:
                raise _bad(f"{path}[{n}] is None; WeChat Pay APIv3 accepts no null, leave the item out")
            items.append(_clean(item, f"{path}[{n}]"))
        return items
    if isinstance(value, str):
        return _text(str(value), path)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        raise _bad(f"{path} is a float; WeChat Pay APIv3 amounts are integer fen")
    raise _bad(f"{path} is a {type(value).__name__}, which has no JSON form")


# Code points beyond the Basic Multilingual Plane take 4 bytes in UTF-8; lone
# surrogates are not text at all.
_NOT_3_BYTES = re.compile("[\U00010000-\U0010FFFF\ud800-\udfff]")


def _text(value: str, path: str) -> str:
    if value.isascii():
        return value
    match = _NOT_3_BYTES.search(value)
    if match is None:
        return value
    char, n = match.group(), match.start()
    point = ord(char)
    if point > 0xFFFF:
        raise _bad(
            f"{path} holds {char!r} (U+{point:X}) at position {n}: a 4-byte UTF-8 character (an emoji "
            "or a rare ideograph), which WeChat Pay APIv3 refuses; remove or replace it",
            code="unsupported_character",
        )
    raise _bad(f"{path} holds a lone surrogate at position {n}: not valid text", code="unsupported_character")


# Built once: json.dumps with options builds an encoder per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_body(obj: Mapping[str, Any]) -> bytes:
    """The exact bytes to sign and send: compact UTF-8 JSON, ``None`` omitted, 4-byte characters refused."""
    return _ENCODE(_clean(obj, "")).encode("utf-8")


# --- argument checks ---------------------------------------------------------------


def _pattern(value: Any, name: str, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad(f"{name} must be {rule} (got {str(value)[:70]!r})")
    return value


def _out_trade_no(value: Any) -> str:
    return _pattern(value, "out_trade_no", _OUT_TRADE_NO, "6-32 characters of letters, digits and _ - *")


def _out_refund_no(value: Any) -> str:
    return _pattern(value, "out_refund_no", _OUT_REFUND_NO, "1-64 characters of letters, digits and _ - | * @")


def _mchid(value: Any) -> str:
    return _pattern(value, "mchid", _ID, "the merchant id (letters and digits, at most 32)")


def _transaction_id(value: Any) -> str:
    return _pattern(value, "transaction_id", _ID, "WeChat's transaction id (letters and digits, at most 32)")


def _appid(value: Any) -> str:
    return _pattern(value, "appid", _APPID, "an appid (letters, digits and _, at most 32)")


def _string(value: Any, name: str, *, max_bytes: int) -> str:
    if (type(value) is str and value.isascii() and 0 < len(value) <= max_bytes
            and not value[0].isspace() and not value[-1].isspace()):
        return value  # the usual case: ASCII is one byte a character and has no 4-byte ones
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{name} must be a non-empty string")
    if value != value.strip():
        raise _bad(f"{name} must not start or end with whitespace")
    _text(value, name)
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise _bad(f"{name} is {size} UTF-8 bytes; WeChat allows at most {max_bytes}")
    return value


def _opt_string(value: Any, name: str, *, max_bytes: int) -> str | None:
    return None if value is None else _string(value, name, max_bytes=max_bytes)


def _currency(value: Any) -> str:
    return _pattern(value, "currency", _CURRENCY, "a three-letter currency code such as CNY")


def _time(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise _bad(f"{name} must be a timezone-aware datetime (a naive time is ambiguous)")
    return rfc3339_time(value)


def _object(value: Any, name: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _bad(f"{name} must be a JSON object (a dict)")
    return value


def _ip(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"{name} must be the shopper's IP address as a string")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _bad(f"{name} is not an IPv4 or IPv6 address: {value[:60]!r}") from None
    if address.is_unspecified:
        raise _bad(f"{name} must be the shopper's real IP, not {value}")
    return value


def _fen(value: Any, name: str) -> int:
    """Integer fen > 0 (a bool is an int in Python and is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{name} must be an int number of fen, not {type(value).__name__}")
    if value <= 0:
        raise _bad(f"{name} must be greater than 0 fen (got {value})")
    return value


# notify_urls found good: a server sends the same one or two on every order. Bounded; a URL
# is a pure function of its text, so the answer is the same cached or not.
_GOOD_URLS: dict[str, bool] = {}
_MAX_GOOD_URLS = 64


def _notify_url(value: Any, name: str = "notify_url") -> str:
    if type(value) is str and value in _GOOD_URLS:
        return value
    if not isinstance(value, str) or not value or len(value) > 255:
        raise _bad(f"{name} must be an absolute URL of at most 255 characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or not value.isascii() or " " in value:
        raise _bad(f"{name} must be an absolute http(s) URL reachable by WeChat (got {value[:80]!r})")
    if parts.query or parts.fragment or "?" in value:
        raise _bad(f"{name} must not carry a query string or fragment; WeChat refuses them")
    if type(value) is str and len(_GOOD_URLS) < _MAX_GOOD_URLS:
        _GOOD_URLS[value] = True
    return value


def _segment(value: str) -> str:
    # '*' and '@' are legal in a path segment; '|' is not and gets encoded.
    return quote(value, safe="*@")


# --- orders ------------------------------------------------------------------------


def build_order(
    kind: str,
    *,
    appid: str,
    mchid: str,
    description: str,
    out_trade_no: str,
    notify_url: str,
    total: int,
    currency: str = "CNY",
    openid: str | None = None,
    payer_client_ip: str | None = None,
    h5_type: str | None = None,
    time_expire: datetime | None = None,
    attach: str | None = None,
    goods_tag: str | None = None,
    support_fapiao: bool | None = None,
    detail: Mapping[str, Any] | None = None,
    scene_info: Mapping[str, Any] | None = None,
    settle_info: Mapping[str, Any] | None = None,
) -> V3Request:
    """Place an order: ``kind`` is ``jsapi`` (Official Account pages and Mini Programs),
    ``app``, ``native`` (QR code) or ``h5`` (mobile browsers).

    JSAPI needs the shopper's ``openid`` under ``appid``; H5 needs
    ``payer_client_ip`` (``h5_type`` defaults to ``Wap``). ``scene_info``
    may carry more (``device_id``, ``store_info``); ``payer_client_ip``
    and ``h5_type`` are merged into it.
    """
    if kind not in ORDER_KINDS:
        raise _bad(f"kind must be one of {', '.join(ORDER_KINDS)} (got {str(kind)[:20]!r})")
    if kind == "jsapi" and openid is None:
        raise _bad("A JSAPI order (Official Account or Mini Program) needs the shopper's openid under this appid")
    if kind != "jsapi" and openid is not None:
        raise _bad(f"openid belongs to JSAPI orders only, not {kind}")
    if kind != "h5" and h5_type is not None:
        raise _bad("h5_type belongs to H5 orders only")
    scene = dict(_object(scene_info, "scene_info") or {})
    if payer_client_ip is not None:
        scene["payer_client_ip"] = payer_client_ip
    if kind == "h5":
        if "payer_client_ip" not in scene:
            raise _bad("An H5 order needs payer_client_ip, the shopper's IP address")
        h5_info = dict(_object(scene.get("h5_info"), "scene_info.h5_info") or {})
        h5_info["type"] = h5_type or h5_info.get("type") or "Wap"
        if h5_info["type"] not in H5_TYPES:
            raise _bad(f"h5_type must be one of {', '.join(H5_TYPES)} (got {str(h5_info['type'])[:20]!r})")
        scene["h5_info"] = h5_info
    if "payer_client_ip" in scene:
        _ip(scene["payer_client_ip"], "payer_client_ip")
    if support_fapiao is not None and not isinstance(support_fapiao, bool):
        raise _bad("support_fapiao must be True or False")
    order: dict[str, Any] = {
        "appid": _appid(appid),
        "mchid": _mchid(mchid),
        "description": _string(description, "description", max_bytes=127),
        "out_trade_no": _out_trade_no(out_trade_no),
        "time_expire": _time(time_expire, "time_expire"),
        "attach": _opt_string(attach, "attach", max_bytes=128),
        "notify_url": _notify_url(notify_url),
        "goods_tag": _opt_string(goods_tag, "goods_tag", max_bytes=32),
        "support_fapiao": support_fapiao,
        "amount": {"total": _fen(total, "total"), "currency": _currency(currency)},
        "payer": {"openid": _string(openid, "openid", max_bytes=128)} if openid is not None else None,
        "detail": _object(detail, "detail"),
        "scene_info": scene or None,
        "settle_info": _object(settle_info, "settle_info"),
    }
    return V3Request("POST", ORDER_KINDS[kind], _checked_body(order, _FREE_FORM), f"v3/{kind}", safe=False)


# The order's fields a caller fills freely (nested objects of any shape): only these need
# json_body's walk; every other field was checked above, so its value goes out as it is.
_FREE_FORM = ("detail", "scene_info", "settle_info")


def _checked_body(fields: dict[str, Any], free_form: tuple[str, ...]) -> bytes:
    """json_body's bytes for ``fields`` whose values are checked already, but for the ``free_form`` ones."""
    body = {}
    for name, value in fields.items():
        if value is not None:
            body[name] = _clean(value, name) if name in free_form else value
    return _ENCODE(body).encode("utf-8")


def build_query_by_out_trade_no(mchid: str, out_trade_no: str) -> V3Request:
    path = f"/v3/pay/transactions/out-trade-no/{_segment(_out_trade_no(out_trade_no))}?{urlencode({'mchid': _mchid(mchid)})}"
    return V3Request("GET", path, b"", "v3/query", safe=True)


def build_query_by_transaction_id(mchid: str, transaction_id: str) -> V3Request:
    path = f"/v3/pay/transactions/id/{_segment(_transaction_id(transaction_id))}?{urlencode({'mchid': _mchid(mchid)})}"
    return V3Request("GET", path, b"", "v3/query", safe=True)


def build_close(mchid: str, out_trade_no: str) -> V3Request:
    """Close an unpaid order; WeChat answers 204."""
    path = f"/v3/pay/transactions/out-trade-no/{_segment(_out_trade_no(out_trade_no))}/close"
    return V3Request("POST", path, json_body({"mchid": _mchid(mchid)}), "v3/close", safe=True)


# --- refunds -----------------------------------------------------------------------


def build_refund(
    *,
    out_refund_no: str,
    refund: int,
    total: int,
    out_trade_no: str | None = None,
    transaction_id: str | None = None,
    reason: str | None = None,
    notify_url: str | None = None,
    funds_account: str | None = None,
    currency: str = "CNY",
    goods_detail: list[Mapping[str, Any]] | None = None,
) -> V3Request:
    """A domestic refund of ``refund`` fen out of the order's ``total``; the same
    ``out_refund_no`` is the same refund, so a repeat is harmless."""
    if (out_trade_no is None) == (transaction_id is None):
        raise _bad("A refund names its order by exactly one of out_trade_no or transaction_id")
    _fen(refund, "refund")
    _fen(total, "total")
    if refund > total:
        raise _bad(f"refund {refund} exceeds the order's total {total}")
    if funds_account is not None and funds_account != "AVAILABLE":
        raise _bad("funds_account can only be AVAILABLE")
    if goods_detail is not None and not isinstance(goods_detail, (list, tuple)):
        raise _bad("goods_detail must be a list of objects")
    body = {
        "transaction_id": None if transaction_id is None else _transaction_id(transaction_id),
        "out_trade_no": None if out_trade_no is None else _out_trade_no(out_trade_no),
        "out_refund_no": _out_refund_no(out_refund_no),
        "reason": _reason(reason),
        "notify_url": None if notify_url is None else _notify_url(notify_url),
        "funds_account": funds_account,
        "amount": {"refund": refund, "total": total, "currency": _currency(currency)},
        "goods_detail": goods_detail,
    }
    return V3Request("POST", "/v3/refund/domestic/refunds", json_body(body), "v3/refund", safe=False)


def _reason(reason: Any) -> str | None:
    """Shown to the shopper: at most 80 characters."""
    if reason is None:
        return None
    _string(reason, "reason", max_bytes=80 * 3)
    if len(reason) > 80:
        raise _bad(f"reason is {len(reason)} characters; WeChat allows at most 80")
    return reason


def build_refund_query(out_refund_no: str) -> V3Request:
    path = f"/v3/refund/domestic/refunds/{_segment(_out_refund_no(out_refund_no))}"
    return V3Request("GET", path, b"", "v3/refundquery", safe=True)


# --- bills and certificates ------------------------------------------------------------


def _bill_date(value: Any) -> str:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise _bad("bill_date must be a date (the China calendar day of the bill)")
    return value.isoformat()


def build_trade_bill(bill_date: date, bill_type: str = "ALL", *, gzip: bool = False) -> V3Request:
    """Step 1 of the trade bill: where to download it and its SHA1."""
    if bill_type not in BILL_TYPES:
        raise _bad(f"bill_type must be one of {', '.join(BILL_TYPES)} (got {str(bill_type)[:20]!r})")
    query = {"bill_date": _bill_date(bill_date), "bill_type": bill_type}
    if gzip:
        query["tar_type"] = "GZIP"
    return V3Request("GET", f"/v3/bill/tradebill?{urlencode(query)}", b"", "v3/tradebill", safe=True)


def build_fund_flow_bill(bill_date: date, account_type: str = "BASIC", *, gzip: bool = False) -> V3Request:
    """Step 1 of the fund-flow bill of one account (BASIC, OPERATION or FEES)."""
    if account_type not in ACCOUNT_TYPES:
        raise _bad(f"account_type must be one of {', '.join(ACCOUNT_TYPES)} (got {str(account_type)[:20]!r})")
    query = {"bill_date": _bill_date(bill_date), "account_type": account_type}
    if gzip:
        query["tar_type"] = "GZIP"
    return V3Request("GET", f"/v3/bill/fundflowbill?{urlencode(query)}", b"", "v3/fundflowbill", safe=True)


def build_bill_file(api_path: str) -> V3Request:
    """Step 2: GET the download URL's path (checked by ``V3Endpoints.api_path_of``), signed like any GET."""
    if not isinstance(api_path, str) or not api_path.startswith("/v3/"):
        raise _bad("The bill file path must be a /v3/ path on the configured WeChat host")
    return V3Request("GET", api_path, b"", "v3/billdownload", safe=True)


def build_certificates() -> V3Request:
    return V3Request("GET", "/v3/certificates", b"", "v3/certificates", safe=True)


# --- headers -----------------------------------------------------------------------------


def request_headers(
    signer: MerchantSigner,
    method: str,
    wire_path: str,
    body: bytes,
    *,
    wechatpay_serial: str | None,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers of one attempt: a fresh signature over exactly ``body``.

    ``wechatpay_serial`` names the key we verify replies with (the public key
    ID, or the newest trusted platform certificate); WeChat then signs the
    reply with that key. ``None`` (nothing trusted yet) omits the header.
    """
    headers = {
        "Authorization": signer.authorization(method, wire_path, body, timestamp=timestamp, nonce=nonce),
        "Accept": "application/json",
    }
    if body:
        headers["Content-Type"] = "application/json"
    if wechatpay_serial:
        headers["Wechatpay-Serial"] = wechatpay_serial
    return headers
