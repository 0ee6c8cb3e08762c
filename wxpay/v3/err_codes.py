"""APIv3 error replies: HTTP status + ``{code, message, detail}`` → typed errors.

Each code maps to a class of :mod:`wxpay.errors` and a message a merchant
can act on. WeChat's own ``code`` and ``message`` are kept verbatim in
``err_code`` / ``err_code_des``, the status in ``http_status``, the optional
``detail`` object in ``detail`` (never in ``to_dict()``: for a bad signature
it quotes the string-to-sign).

Codes are looked up without underscores, so the older spellings
(``ORDERNOTEXIST``, ``SYSTEMERROR``, ``NOTENOUGH``, ``USERPAYING``,
``RULELIMIT``) map like the current ones. Retryable: 202, 429 and 5xx
(with the same parameters); every other 4xx means fix the request.
"""
from __future__ import annotations

import json
from typing import Any

from .. import errors as e
from ..bill import BillNotReadyError, NoBillError

__all__ = ["V3_CODES", "describe_v3_code", "error_from_reply"]

_SIGN_HINT = (
    "WeChat refused our request signature: check the merchant private key, that the configured "
    "certificate serial is the current merchant API certificate's, and this machine's clock"
)

# code (without underscores, upper case) -> (class, message a merchant can act on)
V3_CODES: dict[str, tuple[type[e.WxPayError], str]] = {
    "USERPAYING": (e.UserPayingError, "The shopper is still confirming the payment; query again shortly with the same out_trade_no"),
    "APPIDMCHIDNOTMATCH": (e.MerchantSetupError, "The appid is not bound to this mchid; bind them in the merchant platform (product center, AppID account management)"),
    "INVALIDREQUEST": (e.InvalidRequestError, "WeChat refused the request under its business rules (for a refund: more than the remaining amount, or a changed request under the same out_refund_no); read WeChat's message"),
    "MCHNOTEXISTS": (e.MerchantSetupError, "WeChat does not know this mchid; check the configured merchant id"),
    "ORDERCLOSED": (e.OrderClosedError, "The order is closed; create a new out_trade_no to take payment"),
    "PARAMERROR": (e.InvalidRequestError, "A request field is invalid; WeChat's message and detail name it"),
    "SIGNERROR": (e.MerchantSetupError, _SIGN_HINT),
    "ACCOUNTERROR": (e.BusinessError, "The shopper's WeChat account is abnormal; the shopper must pay another way"),
    "NOAUTH": (e.MerchantSetupError, "This merchant is not allowed this operation; enable the product in the merchant platform"),
    "NOTENOUGH": (e.NotEnoughError, "Insufficient balance (the shopper's for payment, the merchant's available balance for refunds)"),
    "OUTTRADENOUSED": (e.OutTradeNoUsedError, "This out_trade_no was already used with different parameters; use a new one"),
    "RULELIMIT": (e.BusinessError, "A WeChat business rule refused this payment (amount or frequency limits); read WeChat's message"),
    "TRADEERROR": (e.BusinessError, "WeChat refused the transaction; read WeChat's message"),
    "USERACCOUNTABNORMAL": (e.BusinessError, "The shopper's account is closed or abnormal; refund by another channel"),
    "ORDERNOTEXIST": (e.OrderNotExistError, "WeChat has no such order (only orders whose creation succeeded exist)"),
    "ORDERPAID": (e.OrderPaidError, "The order is already paid; treat it as paid"),
    "RESOURCENOTEXISTS": (e.ResourceNotExistError, "WeChat has no such object (order, refund or certificate)"),
    "FREQUENCYLIMITED": (e.RateLimitedError, "Rate limited by WeChat; slow down and retry later with the same parameters"),
    "RATELIMITEXCEEDED": (e.RateLimitedError, "Rate limited by WeChat; slow down and retry later with the same parameters"),
    "SYSTEMERROR": (e.RetryableBusinessError, "WeChat had a system error; retry with exactly the same parameters"),
    "BANKERROR": (e.RetryableBusinessError, "The shopper's bank had an error; retry with exactly the same parameters"),
    "SERVICEUNAVAILABLE": (e.RetryableBusinessError, "WeChat Pay is unavailable or overloaded; retry later with the same parameters"),
    "OPENIDMISMATCH": (e.OpenidMismatchError, "The openid does not belong to the appid of the order; get the openid under that appid"),
    "INVALIDTRANSACTIONID": (e.InvalidRequestError, "The transaction_id is not one of this merchant's"),
    "NOSTATEMENTEXIST": (NoBillError, "WeChat has no bill for that day: no trades or refunds (or no fund movements), or older than 3 months"),
    "STATEMENTCREATING": (BillNotReadyError, "WeChat is still generating this bill; day T is ready from 10:00 on T+1, fetch it then"),
}

# status -> (class, message) for codes not in the table
_BY_STATUS: dict[int, tuple[type[e.WxPayError], str]] = {
    202: (e.UserPayingError, "WeChat accepted the request but has not finished; ask again with the same parameters"),
    400: (e.InvalidRequestError, "WeChat refused the request's parameters"),
    401: (e.MerchantSetupError, _SIGN_HINT),
    403: (e.BusinessError, "WeChat refused the operation"),
    404: (e.ResourceNotExistError, "WeChat has no such object"),
    429: (e.RateLimitedError, "Rate limited by WeChat; slow down and retry later"),
}


def describe_v3_code(code: str, status: int) -> tuple[type[e.WxPayError], str]:
    """The class and merchant message for a V3 ``code`` under an HTTP ``status``."""
    key = code.replace("_", "").upper() if isinstance(code, str) else ""
    if key in V3_CODES:
        return V3_CODES[key]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return e.RetryableBusinessError, "WeChat had a server error; retry with exactly the same parameters"
    return e.BusinessError, f"WeChat refused the request (HTTP {status})"


def _reply_object(body: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def error_from_reply(status: int, body: bytes, *, request_id: str | None = None) -> e.WxPayError:
    """The typed error for a non-2xx V3 reply (or a 202).

    A body that is not WeChat's JSON error (a proxy's HTML page, nothing at
    all) becomes a :class:`~wxpay.errors.TransportError` for 5xx (retry)
    and a :class:`~wxpay.errors.ProtocolError` otherwise.
    """
    obj = _reply_object(body) if body else None
    code = obj.get("code") if obj else None
    where = f"; Request-ID {request_id}" if request_id else ""
    if not isinstance(code, str) or not code:
        if status >= 500:
            return e.TransportError(
                f"WeChat answered HTTP {status} without an error body; retry later{where}",
                status=status, http_status=status, request_id=request_id,
            )
        return e.ProtocolError(
            f"WeChat answered HTTP {status} with a body that is not a V3 error object{where}",
            code="malformed_error_reply", http_status=status, request_id=request_id,
        )
    wechat_message = obj.get("message") if isinstance(obj.get("message"), str) else None
    cls, text = describe_v3_code(code, status)
    detail = obj.get("detail")
    field = detail.get("field") if isinstance(detail, dict) else None
    if cls is e.InvalidRequestError and e.names_openid(field, wechat_message):
        cls, text = e.OpenidMismatchError, e.OPENID_MISMATCH_MESSAGE
    if wechat_message:
        text = f"{text} (WeChat {status} {code}: {wechat_message})"
    else:
        text = f"{text} (WeChat {status} {code})"
    return cls(
        text + where,
        err_code=code,
        err_code_des=wechat_message,
        http_status=status,
        detail=obj.get("detail"),
        request_id=request_id,
    )
