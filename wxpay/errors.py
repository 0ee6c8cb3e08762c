"""One error root for everything WeChat can do wrong, with subclasses by cause.

Callers branch on the class (or on ``code``); merchants read ``message``.
WeChat's own words (``err_code``, ``err_code_des``, ``return_msg``) are kept
verbatim beside ours so nothing is lost in translation. APIv3 replies put
their ``code``/``message`` in ``err_code``/``err_code_des`` too, beside the
HTTP status, the free-form ``detail`` and WeChat's ``Request-ID``.

A class may carry several causes that callers treat alike (every way a V3
signature can fail is one :class:`VerificationError`); those instances carry
a finer ``code`` of their own, passed to the constructor.
"""
from __future__ import annotations

from typing import Any, Mapping


class WxPayError(Exception):
    """Root of every error raised by :mod:`wxpay`."""

    code = "wxpay_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        return_code: str | None = None,
        return_msg: str | None = None,
        result_code: str | None = None,
        err_code: str | None = None,
        err_code_des: str | None = None,
        errcode: int | None = None,
        errmsg: str | None = None,
        code: str | None = None,
        http_status: int | None = None,
        detail: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # a finer cause than the class's own code
        self.http_status = http_status
        self.detail = detail
        self.request_id = request_id
        self.return_code = return_code
        self.return_msg = return_msg
        self.result_code = result_code
        self.err_code = err_code
        self.err_code_des = err_code_des
        self.errcode = errcode
        self.errmsg = errmsg

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe view for logs and API error bodies (never holds secrets)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        for name in ("return_msg", "err_code", "err_code_des", "errcode", "errmsg", "http_status", "request_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


# --- the wire itself -------------------------------------------------------


class TransportError(WxPayError):
    """The request did not get a usable HTTP answer (connect, TLS, 5xx)."""

    code = "wechat_unreachable"
    retryable = True

    def __init__(self, message: str, *, status: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status = status


class WxTimeoutError(TransportError):
    code = "wechat_timeout"


class ProtocolError(WxPayError):
    """A body that is not the XML/JSON WeChat's protocol promises (or is hostile)."""

    code = "malformed_message"


class UnsafeXMLError(ProtocolError):
    """DOCTYPE or ENTITY declarations: refused before any parser sees them."""

    code = "unsafe_xml"


class MessageTooLargeError(ProtocolError):
    code = "message_too_large"


class SignatureError(WxPayError):
    """A signature that is missing, of the wrong type, or does not verify."""

    code = "bad_signature"


class VerificationError(SignatureError):
    """An APIv3 response or notify that does not prove it came from WeChat.

    One class for every cause (missing or malformed ``Wechatpay-*`` headers,
    a stale timestamp, an unknown serial, a ``WECHATPAY/SIGNTEST/`` probe, a
    signature that is not base64 or does not verify): the answer is always
    "do not trust it" (a notify gets a non-2xx reply). ``code`` names the cause.
    """

    code = "bad_signature"


class DecryptError(ProtocolError):
    """Ciphertext that does not decrypt with our key: a V2 refund notify's
    req_info, or a V3 AES-256-GCM resource (wrong APIv3 key, tampering)."""

    code = "undecryptable"


class IdentityMismatchError(WxPayError):
    """A signed message naming another appid or mch_id than ours."""

    code = "identity_mismatch"


class ConfigError(WxPayError):
    """The library was asked to do something its configuration cannot support."""

    code = "wxpay_config"


class InvalidArgumentError(WxPayError, ValueError):
    """A caller's argument breaks WeChat's field rules; caught before any I/O."""

    code = "invalid_argument"


# --- layer 1: return_code=FAIL (unsigned) ------------------------------------


class ReturnFailError(WxPayError):
    """``return_code=FAIL``: WeChat refused the request itself (sign, format)."""

    code = "wechat_rejected_request"


class BillError(ReturnFailError):
    """The bill download answered with a failure instead of a bill."""

    code = "bill_unavailable"


class NoBillError(BillError):
    """No bill for that day: no trades, a day too old (3 months), or not yet generated."""

    code = "no_bill"


class BillNotReadyError(BillError):
    """WeChat is still generating the bill; day T is ready after 10:00 on T+1."""

    code = "bill_not_ready"


# --- layer 2: result_code=FAIL (signed, with err_code) ----------------------


class BusinessError(WxPayError):
    """``result_code=FAIL``: WeChat understood the request and said no."""

    code = "wechat_business_error"


class RetryableBusinessError(BusinessError):
    """WeChat asks to retry with the very same parameters (SYSTEMERROR & co)."""

    code = "wechat_busy"
    retryable = True


class OrderPaidError(BusinessError):
    code = "order_paid"


class OrderClosedError(BusinessError):
    code = "order_closed"


class OrderNotExistError(BusinessError):
    code = "order_not_exist"


class RefundNotExistError(BusinessError):
    code = "refund_not_exist"


class OutTradeNoUsedError(BusinessError):
    code = "out_trade_no_used"


class NotEnoughError(BusinessError):
    code = "not_enough"


class InvalidRequestError(BusinessError):
    code = "invalid_request"


class OpenidMismatchError(InvalidRequestError):
    """WeChat refused the order's openid: not a user of that appid (made up,
    or an openid of another app, e.g. the Official Account's for a Mini
    Program payment). The caller must get the openid under the order's appid."""

    code = "openid_mismatch"


class MerchantSetupError(BusinessError):
    """Problems only the merchant's WeChat console or config can fix."""

    code = "merchant_setup"


class UserPayingError(RetryableBusinessError):
    """V3 202 USER_PAYING: the shopper is still confirming; ask again with the same parameters."""

    code = "user_paying"


class RateLimitedError(RetryableBusinessError):
    """V3 429: WeChat asks us to slow down; retry later, not at once."""

    code = "rate_limited"


class ResourceNotExistError(BusinessError):
    """V3 404 RESOURCE_NOT_EXISTS: the object asked for does not exist at WeChat."""

    code = "resource_not_exist"


class PlatformCertificatesUnavailableError(MerchantSetupError):
    """``/v3/certificates`` answered 404: this merchant has a WeChat Pay public key, no platform certificates."""

    code = "no_platform_certificates"


# --- Official Account / OAuth JSON APIs (errcode) ----------------------------


class ApiError(WxPayError):
    """A JSON API answered with a non-zero ``errcode``."""

    code = "wechat_api_error"


class TokenInvalidError(ApiError):
    """40001/40014/42001: the access_token is stale; refresh and retry once."""

    code = "token_invalid"


class OAuthCodeError(ApiError):
    code = "oauth_code_invalid"


class OAuthCodeUsedError(OAuthCodeError):
    code = "oauth_code_used"


class OAuthCodeExpiredError(OAuthCodeError):
    code = "oauth_code_expired"


class RefreshTokenError(ApiError):
    code = "oauth_refresh_token_invalid"


class QuotaExceededError(ApiError):
    code = "api_quota_exceeded"


class ApiBusyError(ApiError):
    code = "wechat_busy"
    retryable = True


class LoginCodeError(ApiError):
    """A Mini Program ``wx.login`` code WeChat will not trade (``sns/jscode2session``
    40029: unknown, expired, or another Mini Program's): call ``wx.login`` again."""

    code = "login_code_invalid"


class LoginCodeUsedError(LoginCodeError):
    """40163: the ``wx.login`` code was traded already; codes are single-use."""

    code = "login_code_used"


class LoginBlockedError(ApiError):
    """40226: WeChat rates the shopper high-risk and blocks the Mini Program login."""

    code = "login_blocked"


class LoginRateLimitedError(QuotaExceededError):
    """45011 on ``jscode2session``: this shopper logged in too often this minute (100)."""

    code = "login_rate_limited"
    retryable = True


# ---------------------------------------------------------------------------


def business_error(reply: Mapping[str, Any]) -> BusinessError:
    """Map a signed ``result_code=FAIL`` reply to its typed error."""
    from .err_codes import describe_err_code

    err_code = str(reply.get("err_code") or "")
    des = reply.get("err_code_des")
    cls, message = describe_err_code(err_code)
    if cls is InvalidRequestError and names_openid(des):
        cls, message = OpenidMismatchError, OPENID_MISMATCH_MESSAGE
    if des:
        message = f"{message} (WeChat: {des})"
    return cls(
        message,
        return_code="SUCCESS",
        result_code="FAIL",
        err_code=err_code or None,
        err_code_des=des,
    )


OPENID_MISMATCH_MESSAGE = "WeChat refused the openid: it is not a user of the order's appid; get the openid under that appid"


def names_openid(*texts: Any) -> bool:
    """Whether WeChat's words about a refused parameter name the openid
    (V2 ``PARAM_ERROR`` "appid和openid不匹配", V3 ``detail.field`` "/payer/openid")."""
    return any(isinstance(t, str) and "openid" in t.lower() for t in texts)


def return_fail_error(reply: Mapping[str, Any]) -> ReturnFailError:
    msg = reply.get("return_msg") or ""
    text = "WeChat rejected the request before processing it"
    if "签名" in msg or "sign" in msg.lower():
        text = (
            "WeChat rejected the request signature: check the API key (APIv2 key "
            "in the merchant platform, not the AppSecret) and the sign type"
        )
    return ReturnFailError(
        f"{text} (WeChat: {msg})" if msg else text,
        return_code="FAIL",
        return_msg=msg or None,
    )


def api_error(
    body: Mapping[str, Any], errcodes: Mapping[int, tuple[type[ApiError], str]] | None = None
) -> ApiError:
    """Map a JSON ``{errcode, errmsg}`` reply to its typed error.

    ``errcodes``: an endpoint's own meanings, ahead of the shared table
    (``jscode2session``'s 40029 is a ``wx.login`` code, not an OAuth one)."""
    from .err_codes import describe_errcode

    errcode = int(body.get("errcode", -1))
    errmsg = str(body.get("errmsg", ""))
    cls, message = (errcodes or {}).get(errcode) or describe_errcode(errcode)
    return cls(f"{message} (WeChat {errcode}: {errmsg})", errcode=errcode, errmsg=errmsg)
