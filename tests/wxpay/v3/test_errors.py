"""V3 error replies → typed errors: every code of the digest's table, both spellings, and bodies that are not errors."""
from __future__ import annotations

import json

import pytest

from wxpay import errors as e
from wxpay.v3.err_codes import V3_CODES, error_from_reply

from .vectors import by_id, load

# (status, code, class, retryable), from the protocol digest §4.
TABLE = [
    (202, "USER_PAYING", e.UserPayingError, True),
    (400, "APPID_MCHID_NOT_MATCH", e.MerchantSetupError, False),
    (400, "INVALID_REQUEST", e.InvalidRequestError, False),
    (400, "MCH_NOT_EXISTS", e.MerchantSetupError, False),
    (400, "ORDER_CLOSED", e.OrderClosedError, False),
    (400, "PARAM_ERROR", e.InvalidRequestError, False),
    (401, "SIGN_ERROR", e.MerchantSetupError, False),
    (403, "ACCOUNT_ERROR", e.BusinessError, False),
    (403, "NO_AUTH", e.MerchantSetupError, False),
    (403, "NOT_ENOUGH", e.NotEnoughError, False),
    (403, "OUT_TRADE_NO_USED", e.OutTradeNoUsedError, False),
    (403, "RULE_LIMIT", e.BusinessError, False),
    (403, "TRADE_ERROR", e.BusinessError, False),
    (403, "USER_ACCOUNT_ABNORMAL", e.BusinessError, False),
    (404, "ORDER_NOT_EXIST", e.OrderNotExistError, False),
    (404, "RESOURCE_NOT_EXISTS", e.ResourceNotExistError, False),
    (429, "FREQUENCY_LIMITED", e.RateLimitedError, True),
    (429, "RATELIMIT_EXCEEDED", e.RateLimitedError, True),
    (500, "SYSTEM_ERROR", e.RetryableBusinessError, True),
    (500, "BANK_ERROR", e.RetryableBusinessError, True),
    (500, "OPENID_MISMATCH", e.OpenidMismatchError, False),
    (500, "INVALID_TRANSACTIONID", e.InvalidRequestError, False),
    (503, "SERVICE_UNAVAILABLE", e.RetryableBusinessError, True),
]
OLD_SPELLINGS = {"ORDERNOTEXIST": "ORDER_NOT_EXIST", "SYSTEMERROR": "SYSTEM_ERROR", "NOTENOUGH": "NOT_ENOUGH",
                 "USERPAYING": "USER_PAYING", "RULELIMIT": "RULE_LIMIT"}


def _body(code: str, message: str = "微信的说明", **extra) -> bytes:
    return json.dumps({"code": code, "message": message, **extra}, ensure_ascii=False).encode()


@pytest.mark.parametrize("status, code, cls, retryable", TABLE, ids=[row[1] for row in TABLE])
def test_every_code_of_the_table(status, code, cls, retryable):
    err = error_from_reply(status, _body(code), request_id="REQ-1")
    assert type(err) is cls and isinstance(err, e.WxPayError)
    assert err.retryable is retryable
    assert (err.err_code, err.err_code_des, err.http_status, err.request_id) == (code, "微信的说明", status, "REQ-1")
    assert code in err.message and "微信的说明" in err.message and "REQ-1" in err.message
    assert err.message.split(" (WeChat")[0]  # our own words first


@pytest.mark.parametrize("old, new", sorted(OLD_SPELLINGS.items()))
def test_older_spellings_map_like_the_current_ones(old, new):
    status = next(row[0] for row in TABLE if row[1] == new)
    a, b = error_from_reply(status, _body(old)), error_from_reply(status, _body(new))
    assert type(a) is type(b) and a.message.split(" (WeChat")[0] == b.message.split(" (WeChat")[0]
    assert a.err_code == old


def test_every_table_entry_has_an_actionable_message():
    for cls, message in V3_CODES.values():
        assert issubclass(cls, e.WxPayError) and len(message) > 20


def test_v11_signed_404_vector():
    v = by_id(load("response-verification.json")["responses"])["V11_valid_error_body_4xx"]
    err = error_from_reply(v["status"], v["body"].encode(), request_id=v["headers"]["Request-ID"])
    assert isinstance(err, e.OrderNotExistError) and err.err_code_des == "订单不存在"


def test_detail_is_kept_but_never_rendered():
    detail = {"field": "signature", "issue": "sign not match",
              "sign_information": {"truncated_sign_message": "GET\n/v3/x\n1\nN\n\n"}}
    err = error_from_reply(401, _body("SIGN_ERROR", "错误的签名，验签失败", detail=detail))
    assert err.detail == detail
    assert "truncated_sign_message" not in json.dumps(err.to_dict()) and "sign not match" not in err.message


@pytest.mark.parametrize(
    "status, cls, retryable",
    [(400, e.InvalidRequestError, False), (401, e.MerchantSetupError, False), (403, e.BusinessError, False),
     (404, e.ResourceNotExistError, False), (409, e.BusinessError, False), (429, e.RateLimitedError, True),
     (500, e.RetryableBusinessError, True), (504, e.RetryableBusinessError, True)],
)
def test_unknown_codes_fall_back_on_the_status(status, cls, retryable):
    err = error_from_reply(status, _body("SOMETHING_NEW"))
    assert type(err) is cls and err.retryable is retryable and err.err_code == "SOMETHING_NEW"


@pytest.mark.parametrize(
    "status, body, cls, retryable",
    [
        (502, b"<html>Bad Gateway</html>", e.TransportError, True),
        (503, b"", e.TransportError, True),
        (500, b'{"message":"no code"}', e.TransportError, True),
        (400, b"<html>WAF</html>", e.ProtocolError, False),
        (404, b"", e.ProtocolError, False),
        (403, b'["FORBIDDEN"]', e.ProtocolError, False),
        (400, b'{"code":17}', e.ProtocolError, False),
        (400, b"\xff\xfe", e.ProtocolError, False),
    ],
    ids=["html-502", "empty-503", "no-code-500", "html-400", "empty-404", "array-403", "number-code", "not-utf8"],
)
def test_bodies_that_are_not_v3_errors(status, body, cls, retryable):
    err = error_from_reply(status, body, request_id="REQ-2")
    assert type(err) is cls and err.retryable is retryable and err.http_status == status
    assert "REQ-2" in err.message
