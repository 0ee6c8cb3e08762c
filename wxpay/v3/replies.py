"""APIv3 replies judged as pure functions: status, headers and raw body in, typed result or error out.

The order is fixed, for every call:

1. a 4xx/5xx (or a 202 "not finished yet") is WeChat's ``{code, message,
   detail}`` and becomes its typed error (:func:`~wxpay.v3.err_codes.error_from_reply`),
   without verification, as WeChat's SDKs do;
2. any other 2xx is verified over the **raw bytes** (``Validator``) before
   a single field is read: time window, serial, probes, signature;
3. the JSON is parsed strictly and typed, and what it names (mchid,
   out_trade_no, out_refund_no) must be what we asked about.

The one reply that is never signed is a bill file (step 2): it is proven by
the SHA1 announced in the signed step 1 instead (:func:`read_bill_file`).
"""
from __future__ import annotations

from typing import Mapping

from ..errors import (
    IdentityMismatchError,
    OrderNotExistError,
    ProtocolError,
    RefundNotExistError,
    VerificationError,
    WxPayError,
)
from .bills import BillDownload, check_bill, parse_bill_download
from .err_codes import error_from_reply
from .models import Prepay, Refund, Transaction, parse_json_object, parse_prepay, parse_refund, parse_transaction
from .verification import Validator

__all__ = [
    "header",
    "read_bill_download",
    "read_bill_file",
    "read_close",
    "read_prepay",
    "read_refund",
    "read_refund_query",
    "read_transaction",
    "verified_body",
]


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup on a plain mapping."""
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def _error(status: int, headers: Mapping[str, str], body: bytes) -> WxPayError:
    return error_from_reply(status, body, request_id=header(headers, "Request-ID"))


def verified_body(status: int, headers: Mapping[str, str], body: bytes, validator: Validator,
                  *, allowed: tuple[int, ...] = (200,)) -> bytes:
    """The raw body of a success reply once its signature holds; else the typed error.

    ``allowed`` lists the success statuses this call can have (200, or 204
    for close). A 202 is WeChat's "accepted, not finished" and is raised
    as the typed error its body names (``USER_PAYING``).
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("body must be the raw bytes received")
    body = bytes(body)
    if status not in allowed and not (200 <= status < 300 and status != 202):
        raise _error(status, headers, body)
    try:
        validator.validate(headers, body)
    except VerificationError as exc:
        exc.request_id = exc.request_id or header(headers, "Request-ID")
        raise
    if status not in allowed:
        raise ProtocolError(
            f"WeChat answered HTTP {status} where this call answers {' or '.join(map(str, allowed))}",
            code="unexpected_status", http_status=status, request_id=header(headers, "Request-ID"),
        )
    return body


def _json(status: int, headers: Mapping[str, str], body: bytes, validator: Validator, what: str) -> dict:
    return parse_json_object(verified_body(status, headers, body, validator), what)


def _same(field: str, got: str | None, wanted: str | None, what: str) -> None:
    if wanted is not None and got != wanted:
        raise IdentityMismatchError(
            f"{what} names {field} {str(got)[:64]!r}, not the {wanted!r} asked about: refused")


def read_prepay(kind: str, status: int, headers: Mapping[str, str], body: bytes, validator: Validator) -> Prepay:
    """An order reply → ``JsapiPrepay`` / ``AppPrepay`` (prepay_id), ``NativePrepay`` (code_url), ``H5Prepay`` (h5_url)."""
    return parse_prepay(kind, _json(status, headers, body, validator, f"The {kind} order reply"))


def read_transaction(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    validator: Validator,
    *,
    mchid: str,
    out_trade_no: str | None = None,
    transaction_id: str | None = None,
) -> Transaction:
    """A query reply → :class:`Transaction` (404 ``ORDER_NOT_EXIST`` → ``OrderNotExistError``)."""
    what = "The order query reply"
    transaction = parse_transaction(_json(status, headers, body, validator, what), what=what)
    _same("mchid", transaction.mchid, mchid, what)
    _same("out_trade_no", transaction.out_trade_no, out_trade_no, what)
    _same("transaction_id", transaction.transaction_id, transaction_id, what)
    return transaction


def read_close(status: int, headers: Mapping[str, str], body: bytes, validator: Validator) -> None:
    """Close answers 204 with no body, signed over an empty body line."""
    verified_body(status, headers, body, validator, allowed=(204, 200))


def read_refund(status: int, headers: Mapping[str, str], body: bytes, validator: Validator,
                *, out_refund_no: str) -> Refund:
    """A refund reply (accepted, not yet final: ``refund_status`` PROCESSING, or a final one on a repeat).

    WeChat's 404 ``RESOURCE_NOT_EXISTS`` here means the order to refund is
    unknown: :class:`~wxpay.errors.OrderNotExistError`.
    """
    if status == 404:
        error = _error(status, headers, body)
        if _code(error) == "RESOURCENOTEXISTS":
            raise _retyped(OrderNotExistError, error,
                           "WeChat has no paid order under that out_trade_no / transaction_id to refund")
        raise error
    what = "The refund reply"
    refund = parse_refund(_json(status, headers, body, validator, what), what=what)
    _same("out_refund_no", refund.out_refund_no, out_refund_no, what)
    return refund


def read_refund_query(status: int, headers: Mapping[str, str], body: bytes, validator: Validator,
                      *, out_refund_no: str) -> Refund:
    """A refund query reply; 404 ``RESOURCE_NOT_EXISTS`` → :class:`~wxpay.errors.RefundNotExistError`."""
    if status == 404:
        error = _error(status, headers, body)
        if _code(error) in ("RESOURCENOTEXISTS", "REFUNDNOTEXIST"):
            raise _retyped(RefundNotExistError, error,
                           f"WeChat has no refund {out_refund_no!r}: it was never accepted; "
                           "ask again with the same out_refund_no to create it")
        raise error
    what = "The refund query reply"
    refund = parse_refund(_json(status, headers, body, validator, what), what=what)
    _same("out_refund_no", refund.out_refund_no, out_refund_no, what)
    return refund


def read_bill_download(status: int, headers: Mapping[str, str], body: bytes, validator: Validator) -> BillDownload:
    """Bill step 1 → where to download and the SHA1 to check (400 ``NO_STATEMENT_EXIST`` → ``NoBillError``)."""
    return parse_bill_download(verified_body(status, headers, body, validator))


def read_bill_file(status: int, headers: Mapping[str, str], body: bytes, download: BillDownload) -> bytes:
    """Bill step 2: **unsigned**; the plain (un-gzipped) bytes once their SHA1 matches step 1's."""
    if status != 200:
        raise _error(status, headers, body)
    return check_bill(body, download)


def _code(error: WxPayError) -> str:
    return (error.err_code or "").replace("_", "").upper()


def _retyped(cls: type[WxPayError], error: WxPayError, text: str) -> WxPayError:
    wechat = f" (WeChat {error.http_status} {error.err_code}: {error.err_code_des})" if error.err_code_des else ""
    where = f"; Request-ID {error.request_id}" if error.request_id else ""
    return cls(text + wechat + where, err_code=error.err_code, err_code_des=error.err_code_des,
               http_status=error.http_status, detail=error.detail, request_id=error.request_id)
