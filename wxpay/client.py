"""Pay V2 for a merchant: checked requests out, verified typed results back.

The module has two halves. The sans-I/O half (``build_*`` and
:func:`check_reply`) validates arguments, signs requests and judges replies
without touching the network, so it can be tested alone and reused by any
event loop. :class:`WxPayClient` only strings those together around one
``transport.send`` per attempt, with the retry policy and the observer.

Reply order is fixed: XML → ``return_code`` (layer 1, unsigned) → signature,
with the sign type the request used, before any other field is read →
appid/mch_id are ours → ``result_code`` (layer 2) → typed result.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from datetime import date, datetime
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import urlsplit

from .bill import Bill, parse_bill
from .endpoints import Endpoints
from .errors import (
    ConfigError,
    IdentityMismatchError,
    InvalidArgumentError,
    ProtocolError,
    business_error,
    return_fail_error,
)
from .merchant import Merchant
from .results import (
    CloseOrderResult,
    OrderQueryResult,
    RefundQueryResult,
    RefundResult,
    UnifiedOrderResult,
)
from .retry import RetryPolicy, Sleep
from .signing import make_nonce, sign, verify
from .timeutil import wire_time
from .transport import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    HttpRequest,
    HttpResponse,
    Observer,
    as_transport,
    host_of,
    observed_call,
    raise_for_status,
)
from .xmlcodec import build_xml, parse_xml

log = logging.getLogger("wxpay.client")

T = TypeVar("T")

TRADE_TYPES = ("JSAPI", "NATIVE", "APP", "MWEB")
BILL_TYPES = ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND")
BILL_REQUEST_TIMEOUT = 60.0

_MERCHANT_NO = re.compile(r"[A-Za-z0-9_\-|*@]+")
_H5_TYPES = {"Wap": ("wap_url", "wap_name"), "IOS": ("app_name", "bundle_id"), "Android": ("app_name", "package_name")}


# --- argument checks (all raise InvalidArgumentError before any I/O) ----------


def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message)


def _check_text(value: Any, name: str, *, max_len: int | None = None, max_bytes: int | None = None) -> str:
    if not isinstance(value, str) or value == "":
        raise _bad(f"{name} must be a non-empty string")
    if value != value.strip():
        raise _bad(f"{name} must not start or end with whitespace (WeChat trims it before checking the signature)")
    if max_len is not None and len(value) > max_len:
        raise _bad(f"{name} is {len(value)} characters; WeChat allows at most {max_len}")
    if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
        raise _bad(f"{name} is {len(value.encode('utf-8'))} UTF-8 bytes; WeChat allows at most {max_bytes}")
    return value


def _opt_text(value: Any, name: str, **limits: int) -> str | None:
    return None if value is None else _check_text(value, name, **limits)


def check_merchant_no(value: Any, name: str, *, min_len: int = 1, max_len: int = 32) -> str:
    """out_trade_no / out_refund_no: ASCII letters, digits and _ - | * @ only."""
    if not isinstance(value, str) or not _MERCHANT_NO.fullmatch(value):
        raise _bad(f"{name} may hold only letters, digits and _ - | * @ (got {value!r})")
    if not min_len <= len(value) <= max_len:
        raise _bad(f"{name} must be {min_len}..{max_len} characters long (got {len(value)})")
    return value


def check_out_trade_no(value: Any) -> str:
    return check_merchant_no(value, "out_trade_no", min_len=6, max_len=32)


def check_fen(value: Any, name: str) -> int:
    """An amount in integer fen, > 0 (bool is an int in Python and is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{name} must be an int number of fen, not {type(value).__name__}")
    if value <= 0:
        raise _bad(f"{name} must be greater than 0 fen (got {value})")
    return value


def check_notify_url(value: Any, name: str = "notify_url") -> str:
    _check_text(value, name, max_len=256)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(f"{name} must be an absolute http(s) URL reachable by WeChat (got {value!r})")
    if parts.query or parts.fragment or "?" in value:
        raise _bad(f"{name} must not carry a query string or fragment; WeChat drops them")
    return value


def check_ip(value: Any, name: str = "spbill_create_ip") -> str:
    if not isinstance(value, str):
        raise _bad(f"{name} must be the shopper's IP address as a string")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _bad(f"{name} is not an IPv4 or IPv6 address: {value!r}") from None
    if address.is_unspecified:
        raise _bad(f"{name} must be the shopper's real IP, not {value}")
    return value


def check_mweb_scene_info(scene_info: Any) -> dict:
    """H5 payments need ``{"h5_info": {"type": Wap|IOS|Android, ...}}``."""
    if not isinstance(scene_info, dict) or not isinstance(scene_info.get("h5_info"), dict):
        raise _bad('MWEB needs scene_info={"h5_info": {"type": "Wap", "wap_url": ..., "wap_name": ...}}')
    h5 = scene_info["h5_info"]
    kind = h5.get("type")
    if kind not in _H5_TYPES:
        raise _bad(f"scene_info.h5_info.type must be one of {', '.join(_H5_TYPES)} (got {kind!r})")
    for key in _H5_TYPES[kind]:
        if not isinstance(h5.get(key), str) or not h5[key].strip():
            raise _bad(f"scene_info.h5_info.{key} is required for type {kind}")
    return scene_info


def _json_field(value: Any, name: str, max_len: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value
        try:
            json.loads(text)
        except ValueError:
            raise _bad(f"{name} must be JSON") from None
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        raise _bad(f"{name} must be a dict or a JSON string")
    if len(text) > max_len:
        raise _bad(f"{name} is {len(text)} characters as JSON; WeChat allows at most {max_len}")
    return text


def _check_time(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise _bad(f"{name} must be a timezone-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _bad(f"{name} must be timezone-aware (UTC preferred); a naive time is ambiguous")
    return wire_time(value)


def _check_appid(value: Any) -> str | None:
    if value is None:
        return None
    return _check_text(value, "appid", max_len=32)


# --- request builders (pure) --------------------------------------------------


def build_unified_order_params(
    *,
    trade_type: str,
    out_trade_no: str,
    total_fee: int,
    body: str,
    notify_url: str,
    spbill_create_ip: str,
    openid: str | None = None,
    product_id: str | None = None,
    scene_info: dict | None = None,
    attach: str | None = None,
    time_expire: datetime | None = None,
    time_start: datetime | None = None,
    detail: Any = None,
    goods_tag: str | None = None,
    limit_pay: str | None = None,
    device_info: str | None = None,
) -> dict[str, Any]:
    """The business fields of unifiedorder, checked against WeChat's rules."""
    if trade_type not in TRADE_TYPES:
        raise _bad(f"trade_type must be one of {', '.join(TRADE_TYPES)} (got {trade_type!r})")
    params: dict[str, Any] = {
        "body": _check_text(body, "body", max_bytes=127),
        "out_trade_no": check_out_trade_no(out_trade_no),
        "total_fee": check_fen(total_fee, "total_fee"),
        "spbill_create_ip": check_ip(spbill_create_ip),
        "notify_url": check_notify_url(notify_url),
        "trade_type": trade_type,
    }
    if trade_type == "JSAPI":
        if openid is None:
            raise _bad("JSAPI (Official Account and Mini Program) needs the shopper's openid under this appid")
    if trade_type == "NATIVE" and product_id is None:
        raise _bad("NATIVE needs product_id (the id encoded in the QR code)")
    if trade_type == "MWEB":
        check_mweb_scene_info(scene_info)
    params["openid"] = _opt_text(openid, "openid", max_len=128)
    params["product_id"] = _opt_text(product_id, "product_id", max_len=32)
    params["scene_info"] = _json_field(scene_info, "scene_info", 256)
    params["attach"] = _opt_text(attach, "attach", max_bytes=127)
    params["detail"] = _json_field(detail, "detail", 6000)
    params["goods_tag"] = _opt_text(goods_tag, "goods_tag", max_len=32)
    if limit_pay is not None and limit_pay != "no_credit":
        raise _bad("limit_pay can only be 'no_credit'")
    params["limit_pay"] = limit_pay
    params["device_info"] = _opt_text(device_info, "device_info", max_len=32)
    start = _check_time(time_start, "time_start")
    expire = _check_time(time_expire, "time_expire")
    if time_start is not None and time_expire is not None and time_expire <= time_start:
        raise _bad("time_expire must be after time_start")
    params["time_start"] = start
    params["time_expire"] = expire
    return {k: v for k, v in params.items() if v is not None}


def _one_of(name_values: Mapping[str, Any], what: str) -> None:
    if all(v is None for v in name_values.values()):
        raise _bad(f"{what} needs one of {', '.join(name_values)}")


def build_order_query_params(*, out_trade_no: str | None = None, transaction_id: str | None = None) -> dict[str, Any]:
    _one_of({"transaction_id": transaction_id, "out_trade_no": out_trade_no}, "orderquery")
    params = {
        "transaction_id": _opt_text(transaction_id, "transaction_id", max_len=32),
        "out_trade_no": None if out_trade_no is None else check_out_trade_no(out_trade_no),
    }
    return {k: v for k, v in params.items() if v is not None}


def build_refund_params(
    *,
    out_refund_no: str,
    total_fee: int,
    refund_fee: int,
    out_trade_no: str | None = None,
    transaction_id: str | None = None,
    notify_url: str | None = None,
    refund_desc: str | None = None,
) -> dict[str, Any]:
    _one_of({"transaction_id": transaction_id, "out_trade_no": out_trade_no}, "refund")
    check_fen(total_fee, "total_fee")
    check_fen(refund_fee, "refund_fee")
    if refund_fee > total_fee:
        raise _bad(f"refund_fee {refund_fee} exceeds the order's total_fee {total_fee}")
    params = {
        "transaction_id": _opt_text(transaction_id, "transaction_id", max_len=32),
        "out_trade_no": None if out_trade_no is None else check_out_trade_no(out_trade_no),
        "out_refund_no": check_merchant_no(out_refund_no, "out_refund_no", max_len=64),
        "total_fee": total_fee,
        "refund_fee": refund_fee,
        "refund_desc": _opt_text(refund_desc, "refund_desc", max_len=80),
        "notify_url": None if notify_url is None else check_notify_url(notify_url),
    }
    return {k: v for k, v in params.items() if v is not None}


def build_refund_query_params(
    *,
    out_refund_no: str | None = None,
    refund_id: str | None = None,
    out_trade_no: str | None = None,
    transaction_id: str | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    _one_of(
        {"refund_id": refund_id, "out_refund_no": out_refund_no, "transaction_id": transaction_id, "out_trade_no": out_trade_no},
        "refundquery",
    )
    if offset is not None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise _bad("offset must be an int >= 0")
        if transaction_id is None and out_trade_no is None:
            raise _bad("offset pages the refunds of one order: pass out_trade_no or transaction_id")
    params = {
        "refund_id": _opt_text(refund_id, "refund_id", max_len=32),
        "out_refund_no": None if out_refund_no is None else check_merchant_no(out_refund_no, "out_refund_no", max_len=64),
        "transaction_id": _opt_text(transaction_id, "transaction_id", max_len=32),
        "out_trade_no": None if out_trade_no is None else check_out_trade_no(out_trade_no),
        "offset": offset,
    }
    return {k: v for k, v in params.items() if v is not None}


def build_download_bill_params(bill_date: date, bill_type: str = "ALL", gzip: bool = False) -> dict[str, Any]:
    if isinstance(bill_date, datetime) or not isinstance(bill_date, date):
        raise _bad("bill_date must be a date (the China calendar day of the bill)")
    if bill_type not in BILL_TYPES:
        raise _bad(f"bill_type must be one of {', '.join(BILL_TYPES)} (got {bill_type!r})")
    params: dict[str, Any] = {"bill_date": bill_date.strftime("%Y%m%d"), "bill_type": bill_type}
    if gzip:
        params["tar_type"] = "GZIP"
    return params


def sign_request(merchant: Merchant, business: Mapping[str, Any], *, appid: str | None = None, nonce: str | None = None) -> bytes:
    """Add the envelope (appid, mch_id, nonce, sign_type), sign, serialise."""
    params: dict[str, Any] = {
        "appid": appid or merchant.appid,
        "mch_id": merchant.mch_id,
        "nonce_str": nonce or make_nonce(),
        "sign_type": merchant.sign_type,
    }
    params.update({k: v for k, v in business.items() if v is not None and v != ""})
    params["sign"] = sign(params, merchant.api_key, merchant.sign_type)
    return build_xml(params)


# --- reply judgement (pure) ---------------------------------------------------


def check_reply(body: bytes, merchant: Merchant, *, appid: str | None = None, sign_type: str | None = None) -> dict[str, str]:
    """Return the verified reply fields, or raise the error that explains it.

    ``sign_type`` is the one the request was signed with (the merchant's by
    default); nothing but ``return_code``/``return_msg`` is read before the
    signature verifies.
    """
    reply = parse_xml(body)
    return_code = reply.get("return_code")
    if return_code == "FAIL":
        raise return_fail_error(reply)
    if return_code != "SUCCESS":
        raise ProtocolError(f"WeChat reply has no valid return_code (got {return_code!r})")
    verify(reply, merchant.api_key, sign_type or merchant.sign_type)
    ours_appid = appid or merchant.appid
    if reply.get("appid") != ours_appid:
        raise IdentityMismatchError(
            f"Signed reply names appid {reply.get('appid')!r}, not ours ({ours_appid})"
        )
    if reply.get("mch_id") != merchant.mch_id:
        raise IdentityMismatchError(
            f"Signed reply names mch_id {reply.get('mch_id')!r}, not ours ({merchant.mch_id})"
        )
    result_code = reply.get("result_code")
    if result_code == "FAIL":
        raise business_error(reply)
    if result_code != "SUCCESS":
        raise ProtocolError(f"WeChat reply has no valid result_code (got {result_code!r})")
    return reply


# --- the client ------------------------------------------------------------------


class WxPayClient:
    """Async Pay V2 client for one merchant.

    ``transport`` is anything with ``async send(HttpRequest) -> HttpResponse``
    or a bare async function (default: :class:`TornadoTransport`). Queries,
    closeorder and bills retry by themselves; unifiedorder and refund only
    with ``retry=True``. ``observer`` receives a :class:`CallRecord` after
    every attempt.
    """

    def __init__(
        self,
        merchant: Merchant,
        *,
        transport: Any = None,
        endpoints: Endpoints | None = None,
        retry: RetryPolicy | None = None,
        observer: Observer | None = None,
        sleep: Sleep = asyncio.sleep,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        if not isinstance(merchant, Merchant):
            raise ConfigError("WxPayClient needs a wxpay.Merchant")
        self.merchant = merchant
        self.transport = as_transport(transport)
        self.endpoints = endpoints or Endpoints()
        self.retry_policy = retry or RetryPolicy()
        self.observer = observer
        self._sleep = sleep
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout

    async def _call(
        self,
        endpoint: str,
        path: str,
        body: bytes,
        handle: Callable[[HttpResponse], T],
        *,
        retry: bool,
        cert: bool = False,
        request_timeout: float | None = None,
    ) -> T:
        request = HttpRequest(
            method="POST",
            url=self.endpoints.pay(path),
            headers={"Content-Type": "text/xml; charset=utf-8"},
            body=body,
            client_cert=self.merchant.cert_path if cert else None,
            client_key=self.merchant.key_path if cert else None,
            connect_timeout=self.connect_timeout,
            request_timeout=request_timeout or self.request_timeout,
        )

        async def attempt() -> T:
            response = await self.transport.send(request)
            raise_for_status(response, request.url)
            return handle(response)

        return await observed_call(
            endpoint, host_of(request.url), attempt, observer=self.observer, logger=log,
            policy=self.retry_policy, retry=retry, sleep=self._sleep,
        )

    def _signed(self, appid: str | None, build: Callable[[dict], T]) -> Callable[[HttpResponse], T]:
        merchant = self.merchant

        def handle(response: HttpResponse) -> T:
            return build(check_reply(response.body, merchant, appid=appid))

        return handle

    async def unified_order(
        self,
        *,
        trade_type: str,
        out_trade_no: str,
        total_fee: int,
        body: str,
        notify_url: str,
        spbill_create_ip: str,
        openid: str | None = None,
        product_id: str | None = None,
        scene_info: dict | None = None,
        attach: str | None = None,
        time_expire: datetime | None = None,
        time_start: datetime | None = None,
        detail: Any = None,
        goods_tag: str | None = None,
        limit_pay: str | None = None,
        device_info: str | None = None,
        appid: str | None = None,
        retry: bool = False,
    ) -> UnifiedOrderResult:
        """Create (or re-enter) an order. A Mini Program is JSAPI with its own appid."""
        appid = _check_appid(appid)
        params = build_unified_order_params(
            trade_type=trade_type, out_trade_no=out_trade_no, total_fee=total_fee, body=body,
            notify_url=notify_url, spbill_create_ip=spbill_create_ip, openid=openid,
            product_id=product_id, scene_info=scene_info, attach=attach, time_expire=time_expire,
            time_start=time_start, detail=detail, goods_tag=goods_tag, limit_pay=limit_pay,
            device_info=device_info,
        )
        payload = sign_request(self.merchant, params, appid=appid)
        return await self._call(
            "unifiedorder", "pay/unifiedorder", payload,
            self._signed(appid, UnifiedOrderResult.from_reply), retry=retry,
        )

    async def order_query(
        self, *, out_trade_no: str | None = None, transaction_id: str | None = None, appid: str | None = None
    ) -> OrderQueryResult:
        appid = _check_appid(appid)
        params = build_order_query_params(out_trade_no=out_trade_no, transaction_id=transaction_id)
        payload = sign_request(self.merchant, params, appid=appid)
        return await self._call(
            "orderquery", "pay/orderquery", payload,
            self._signed(appid, OrderQueryResult.from_reply), retry=True,
        )

    async def close_order(self, out_trade_no: str, *, appid: str | None = None) -> CloseOrderResult:
        appid = _check_appid(appid)
        payload = sign_request(self.merchant, {"out_trade_no": check_out_trade_no(out_trade_no)}, appid=appid)
        return await self._call(
            "closeorder", "pay/closeorder", payload,
            self._signed(appid, CloseOrderResult.from_reply), retry=True,
        )

    async def refund(
        self,
        *,
        out_refund_no: str,
        total_fee: int,
        refund_fee: int,
        out_trade_no: str | None = None,
        transaction_id: str | None = None,
        notify_url: str | None = None,
        refund_desc: str | None = None,
        appid: str | None = None,
        retry: bool = False,
    ) -> RefundResult:
        """Ask for a refund over mutual TLS. Success means accepted, not refunded."""
        if not self.merchant.cert_path:
            raise ConfigError(
                "Refunds need the merchant API certificate: set cert_path (and key_path) on the Merchant"
            )
        appid = _check_appid(appid)
        params = build_refund_params(
            out_refund_no=out_refund_no, total_fee=total_fee, refund_fee=refund_fee,
            out_trade_no=out_trade_no, transaction_id=transaction_id, notify_url=notify_url,
            refund_desc=refund_desc,
        )
        payload = sign_request(self.merchant, params, appid=appid)
        return await self._call(
            "refund", "secapi/pay/refund", payload,
            self._signed(appid, RefundResult.from_reply), retry=retry, cert=True,
        )

    async def refund_query(
        self,
        *,
        out_refund_no: str | None = None,
        refund_id: str | None = None,
        out_trade_no: str | None = None,
        transaction_id: str | None = None,
        offset: int | None = None,
        appid: str | None = None,
    ) -> RefundQueryResult:
        appid = _check_appid(appid)
        params = build_refund_query_params(
            out_refund_no=out_refund_no, refund_id=refund_id, out_trade_no=out_trade_no,
            transaction_id=transaction_id, offset=offset,
        )
        payload = sign_request(self.merchant, params, appid=appid)
        return await self._call(
            "refundquery", "pay/refundquery", payload,
            self._signed(appid, RefundQueryResult.from_reply), retry=True,
        )

    async def download_bill(
        self, bill_date: date, bill_type: str = "ALL", gzip: bool = False, *, appid: str | None = None
    ) -> Bill:
        """The day's statement (bills are unsigned text; failures are XML)."""
        appid = _check_appid(appid)
        params = build_download_bill_params(bill_date, bill_type, gzip)
        payload = sign_request(self.merchant, params, appid=appid)
        return await self._call(
            "downloadbill", "pay/downloadbill", payload,
            lambda response: parse_bill(response.body), retry=True,
            request_timeout=max(BILL_REQUEST_TIMEOUT, self.request_timeout),
        )
