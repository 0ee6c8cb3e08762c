"""WeChat's error codes, each with the error class and what a merchant can do.

The tables come from the protocol digest (pay V2 err_code, §4.3–§9; JSON
errcode, §14–§15). Unknown codes still map to the generic class of their
family so nothing is swallowed.
"""
from __future__ import annotations

from . import errors as e

# err_code -> (class, message a merchant can act on)
ERR_CODES: dict[str, tuple[type[e.BusinessError], str]] = {
    "SYSTEMERROR": (e.RetryableBusinessError, "WeChat had a system error; retry with exactly the same parameters"),
    "BIZERR_NEED_RETRY": (e.RetryableBusinessError, "WeChat rejected a concurrent refund; retry with the same out_refund_no"),
    "INVALID_REQ_TOO_MUCH": (e.RetryableBusinessError, "Too many invalid requests; wait one minute before retrying"),
    "FREQUENCY_LIMITED": (e.RetryableBusinessError, "Rate limited by WeChat; slow down and retry later"),
    "ORDERPAID": (e.OrderPaidError, "The order is already paid; treat it as paid"),
    "ORDERCLOSED": (e.OrderClosedError, "The order is closed; create a new out_trade_no to take payment"),
    "ORDERNOTEXIST": (e.OrderNotExistError, "WeChat has no such order (only orders whose unifiedorder succeeded, and for refunds only paid orders, exist)"),
    "REFUNDNOTEXIST": (e.RefundNotExistError, "WeChat has no refund for this order or refund number"),
    "OUT_TRADE_NO_USED": (e.OutTradeNoUsedError, "This out_trade_no was already used with different parameters; use a new one"),
    "INVALID_REQUEST": (e.InvalidRequestError, "The request is malformed or differs from the first request with this number; resend the identical parameters"),
    "NOTENOUGH": (e.NotEnoughError, "Insufficient balance (the shopper's for payment, the merchant's for refunds)"),
    "TRADE_OVERDUE": (e.BusinessError, "The order is more than one year old and can no longer be refunded"),
    "USER_ACCOUNT_ABNORMAL": (e.BusinessError, "The shopper's account is closed or abnormal; refund manually"),
    "INVALID_TRANSACTIONID": (e.InvalidRequestError, "The transaction_id is not valid for this merchant"),
    "PARAM_ERROR": (e.InvalidRequestError, "A parameter is invalid (for example the openid does not belong to the appid)"),
    "LACK_PARAMS": (e.InvalidRequestError, "A required parameter is missing"),
    "ERROR": (e.BusinessError, "WeChat refused the operation; read err_code_des"),
    "TRADE_STATE_ERROR": (e.BusinessError, "The order's state does not allow this operation"),
    "NOAUTH": (e.MerchantSetupError, "The merchant account lacks permission for this API; enable the product in the merchant platform"),
    "APPID_NOT_EXIST": (e.MerchantSetupError, "The appid is unknown to WeChat; check the configured appid"),
    "MCHID_NOT_EXIST": (e.MerchantSetupError, "The mch_id is unknown to WeChat; check the configured merchant id"),
    "APPID_MCHID_NOT_MATCH": (e.MerchantSetupError, "The appid is not bound to this mch_id; bind them in the merchant platform"),
    "SIGNERROR": (e.MerchantSetupError, "WeChat says the signature is wrong; check the API key and sign type"),
    "XML_FORMAT_ERROR": (e.InvalidRequestError, "WeChat could not parse the request XML"),
    "REQUIRE_POST_METHOD": (e.InvalidRequestError, "WeChat requires POST"),
    "POST_DATA_EMPTY": (e.InvalidRequestError, "The request body was empty"),
    "NOT_UTF8": (e.InvalidRequestError, "The request was not UTF-8"),
}

# errcode -> (class, message)
ERRCODES: dict[int, tuple[type[e.ApiError], str]] = {
    -1: (e.ApiBusyError, "WeChat is busy; retry shortly"),
    -1000: (e.ApiBusyError, "WeChat reported a system error; retry shortly"),
    40001: (e.TokenInvalidError, "The access_token is invalid or the AppSecret is wrong; refresh the token"),
    40014: (e.TokenInvalidError, "The access_token is not valid; refresh the token"),
    42001: (e.TokenInvalidError, "The access_token has expired; refresh the token"),
    40002: (e.ApiError, "grant_type must be client_credential"),
    40003: (e.ApiError, "The openid is not valid for this app"),
    40013: (e.ApiError, "The appid is invalid; check the configured appid"),
    40125: (e.ApiError, "The AppSecret is invalid; check the configured secret"),
    40164: (e.ApiError, "This server's IP is not in the account's API IP whitelist"),
    61004: (e.ApiError, "This server's IP is not in the account's API IP whitelist"),
    40243: (e.ApiError, "The AppSecret is frozen; reset it in the WeChat console"),
    45009: (e.QuotaExceededError, "The daily API quota is used up; cache tokens, or clear the quota in the console"),
    40029: (e.OAuthCodeError, "The OAuth code is invalid; send the shopper through authorization again"),
    40163: (e.OAuthCodeUsedError, "The OAuth code was already used; codes are single-use, authorize again"),
    42003: (e.OAuthCodeExpiredError, "The OAuth code expired (5 minutes); authorize again"),
    41008: (e.OAuthCodeError, "The OAuth code is missing"),
    40030: (e.RefreshTokenError, "The OAuth refresh_token is invalid; authorize again"),
    42002: (e.RefreshTokenError, "The OAuth refresh_token expired (30 days); authorize again"),
    48001: (e.ApiError, "The API is not authorized for this token (snsapi_base cannot read userinfo)"),
    45011: (e.QuotaExceededError, "API called too frequently; slow down"),
}

# sns/jscode2session (Mini Program login): what its codes mean there.
LOGIN_ERRCODES: dict[int, tuple[type[e.ApiError], str]] = {
    40029: (e.LoginCodeError, "The wx.login code is invalid, expired (5 minutes) or another Mini Program's; "
                              "call wx.login again and send the new code"),
    40163: (e.LoginCodeUsedError, "The wx.login code was already traded; codes are single-use, call wx.login again"),
    40226: (e.LoginBlockedError, "WeChat blocked this login: it rates the shopper high-risk"),
    45011: (e.LoginRateLimitedError, "This shopper logged in too often this minute (WeChat allows 100); "
                                     "retry in a minute"),
    40013: (e.ApiError, "WeChat does not know this Mini Program appid; check wechat.mini_program_appid"),
    40125: (e.ApiError, "WeChat refused the Mini Program AppSecret; check wechat.mini_program_secret"),
}


def describe_err_code(err_code: str) -> tuple[type[e.BusinessError], str]:
    if err_code in ERR_CODES:
        return ERR_CODES[err_code]
    if err_code.endswith("SYSTEMERROR"):
        return ERR_CODES["SYSTEMERROR"]
    return e.BusinessError, f"WeChat refused the request ({err_code or 'no err_code'})"


def describe_errcode(errcode: int) -> tuple[type[e.ApiError], str]:
    return ERRCODES.get(errcode, (e.ApiError, "WeChat API error"))
