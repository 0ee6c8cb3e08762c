"""Replies judged as pure functions: the vectors V1-V11, recorded objects, every error status, the bill's two steps."""
from __future__ import annotations

import base64
import json

import pytest

from wxpay import errors as e
from wxpay.bill import BillNotReadyError, NoBillError, parse_bill
from wxpay.v3 import AppPrepay, H5Prepay, JsapiPrepay, NativePrepay, Validator, wechatpay_headers
from wxpay.v3.replies import (
    read_bill_download, read_bill_file, read_close, read_prepay, read_refund, read_refund_query, read_transaction,
    verified_body,
)

from .vectors import MCHID, NOW, PUB_KEY_ID, by_id, combined_verifier, load, public_key_verifier, wechat_key

RESPONSES = by_id(load("response-verification.json")["responses"])
PLAIN = by_id(load("notify-aes-gcm.json")["vectors"])
BILLS = load("certificates-and-bills.json")["tradebill"]
VALIDATOR = Validator(combined_verifier(), clock=lambda: NOW)
# Recorded objects: WeChat sends the same transaction / refund JSON in a query reply as in a notify.
TRANSACTION = PLAIN["A1_transaction"]["plaintext"].encode()
REFUND_SUCCESS = PLAIN["A2_refund"]["plaintext"].encode()
# A refund *reply* names its state "status" (the notify says "refund_status").
_REPLY = {k: v for k, v in json.loads(REFUND_SUCCESS).items() if k not in ("refund_status", "success_time")}
REFUND_REPLY = json.dumps({**_REPLY, "status": "PROCESSING", "create_time": "2026-01-01T12:00:00+08:00"},
                          ensure_ascii=False).encode()


def signed(body: bytes, status: int = 200, **kw) -> tuple[int, dict, bytes]:
    headers = wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=kw.pop("timestamp", NOW),
                                nonce="5" * 32, request_id="REQ-T")
    return status, headers, body


def vector(vid: str) -> tuple[int, dict, bytes]:
    v = RESPONSES[vid]
    return v["status"], v["headers"], v["body"].encode()


def test_v1_public_key_reply_to_a_jsapi_order():
    prepay = read_prepay("jsapi", *vector("V1_valid_pubkey"), VALIDATOR)
    assert prepay == JsapiPrepay("wx01120000000000000000000000000001")


def test_v2_close_answers_204_signed_over_an_empty_body():
    assert read_close(*vector("V2_valid_204_empty"), VALIDATOR) is None


def test_v3_platform_certificate_reply_in_the_gray_switch():
    assert read_prepay("native", *vector("V3_valid_platform_cert"), VALIDATOR) == NativePrepay(
        "weixin://wxpay/bizpayurl?pr=TEST0001")


@pytest.mark.parametrize("vid, code", [
    ("V4_tampered_body", "bad_signature"),
    ("V5_wrong_serial", "bad_signature"),
    ("V6_unknown_serial", "unknown_serial"),
    ("V8_window_300s", "stale_timestamp"),
    ("V9_window_future_301s", "stale_timestamp"),
    ("V10_signtest_probe", "signtest_probe"),
])
def test_replies_that_do_not_prove_themselves_are_refused_before_parsing(vid, code):
    with pytest.raises(e.VerificationError) as exc:
        read_prepay("jsapi", *vector(vid), VALIDATOR)
    assert exc.value.code == code
    assert exc.value.request_id == RESPONSES[vid]["headers"].get("Request-ID")  # to quote to WeChat support


def test_v7_just_inside_the_window():
    assert read_prepay("jsapi", *vector("V7_window_299s"), VALIDATOR).prepay_id.startswith("wx")


def test_v11_signed_404_is_mapped_not_verified():
    with pytest.raises(e.OrderNotExistError) as exc:
        read_transaction(*vector("V11_valid_error_body_4xx"), VALIDATOR, mchid=MCHID, out_trade_no="T20260101000003")
    assert exc.value.http_status == 404 and exc.value.err_code_des == "订单不存在"


def test_a_verified_transaction_reply():
    t = read_transaction(*signed(TRANSACTION), VALIDATOR, mchid=MCHID, out_trade_no="T20260101000003")
    assert (t.trade_state, t.amount.total, t.openid, t.paid) == ("SUCCESS", 100, "oTEST0000000000000000000001", True)
    t = read_transaction(*signed(TRANSACTION), VALIDATOR, mchid=MCHID, transaction_id="4200000000202601011234567890")
    assert t.out_trade_no == "T20260101000003"


@pytest.mark.parametrize("asked", [dict(mchid="1900000999"), dict(mchid=MCHID, out_trade_no="T20260101000009"),
                                   dict(mchid=MCHID, transaction_id="4200000000202601019999999999")],
                         ids=["mchid", "out_trade_no", "transaction_id"])
def test_a_signed_reply_about_another_order_is_refused(asked):
    with pytest.raises(e.IdentityMismatchError):
        read_transaction(*signed(TRANSACTION), VALIDATOR, **asked)


def test_prepay_of_each_kind_and_malformed_ones():
    assert read_prepay("app", *signed(b'{"prepay_id":"wx1"}'), VALIDATOR) == AppPrepay("wx1")
    assert read_prepay("h5", *signed(b'{"h5_url":"https://wx.tenpay.com/x"}'), VALIDATOR) == H5Prepay(
        "https://wx.tenpay.com/x")
    for kind, body, code in [("jsapi", b"{}", "missing_field"), ("native", b'{"code_url":"javascript:x"}', "bad_field"),
                             ("jsapi", b'{"prepay_id":1}', "bad_field"), ("jsapi", b"[]", "malformed_json"),
                             ("jsapi", b'{"prepay_id":"wx1","prepay_id":"wx2"}', "malformed_json")]:
        with pytest.raises(e.ProtocolError) as exc:
            read_prepay(kind, *signed(body), VALIDATOR)
        assert exc.value.code == code, body


def test_204_where_a_body_is_due_is_refused_after_verification():
    with pytest.raises(e.ProtocolError) as exc:
        read_prepay("jsapi", *signed(b"", status=204), VALIDATOR)
    assert exc.value.code == "unexpected_status"
    # ... and an unsigned one is a verification failure first
    with pytest.raises(e.VerificationError):
        read_prepay("jsapi", 204, {}, b"", VALIDATOR)


# (status, body, class): every error status reaches its typed error, unverified (no Wechatpay-* headers).
ERRORS = [
    (202, '{"code":"USER_PAYING","message":"支付中"}'.encode(), e.UserPayingError),
    (400, b'{"code":"PARAM_ERROR","message":"x","detail":{"field":"/amount/total"}}', e.InvalidRequestError),
    (400, b'{"code":"ORDER_CLOSED","message":"x"}', e.OrderClosedError),
    (401, b'{"code":"SIGN_ERROR","message":"x"}', e.MerchantSetupError),
    (403, b'{"code":"OUT_TRADE_NO_USED","message":"x"}', e.OutTradeNoUsedError),
    (403, b'{"code":"NO_AUTH","message":"x"}', e.MerchantSetupError),
    (404, b'{"code":"ORDER_NOT_EXIST","message":"x"}', e.OrderNotExistError),
    (429, b'{"code":"FREQUENCY_LIMITED","message":"x"}', e.RateLimitedError),
    (500, b'{"code":"SYSTEM_ERROR","message":"x"}', e.RetryableBusinessError),
    (502, b"<html>bad gateway</html>", e.TransportError),
    (503, b'{"code":"SERVICE_UNAVAILABLE","message":"x"}', e.RetryableBusinessError),
]


@pytest.mark.parametrize("status, body, cls", ERRORS, ids=[f"{s}" for s, _, _ in ERRORS])
def test_every_error_status_becomes_its_typed_error(status, body, cls):
    for read in (lambda: read_prepay("jsapi", status, {"Request-ID": "REQ-E"}, body, VALIDATOR),
                 lambda: read_transaction(status, {"Request-ID": "REQ-E"}, body, VALIDATOR, mchid=MCHID),
                 lambda: read_close(status, {"Request-ID": "REQ-E"}, body, VALIDATOR)):
        with pytest.raises(cls) as exc:
            read()
        assert type(exc.value) is cls
        assert exc.value.http_status == status and exc.value.request_id == "REQ-E"


def test_refund_reply_and_query():
    refund = read_refund(*signed(REFUND_REPLY), VALIDATOR, out_refund_no="R20260101000001")
    assert (refund.refund_status, refund.amount.refund) == ("PROCESSING", 40)
    assert read_refund_query(*signed(REFUND_SUCCESS), VALIDATOR, out_refund_no="R20260101000001").refund_status == "SUCCESS"
    with pytest.raises(e.IdentityMismatchError):
        read_refund_query(*signed(REFUND_SUCCESS), VALIDATOR, out_refund_no="R20260101000002")


def test_refund_query_404_is_refund_not_exist():
    body = '{"code":"RESOURCE_NOT_EXISTS","message":"退款单不存在"}'.encode()
    with pytest.raises(e.RefundNotExistError) as exc:
        read_refund_query(404, {"Request-ID": "REQ-R"}, body, VALIDATOR, out_refund_no="R404")
    err = exc.value
    assert (err.code, err.err_code, err.http_status, err.request_id) == ("refund_not_exist", "RESOURCE_NOT_EXISTS", 404, "REQ-R")
    assert "R404" in err.message and "退款单不存在" in err.message
    # other 404s keep their own type
    with pytest.raises(e.OrderNotExistError):
        read_refund_query(404, {}, b'{"code":"ORDER_NOT_EXIST","message":"x"}', VALIDATOR, out_refund_no="R1")


def test_refunding_an_unknown_order_is_order_not_exist():
    with pytest.raises(e.OrderNotExistError) as exc:
        read_refund(404, {}, b'{"code":"RESOURCE_NOT_EXISTS","message":"x"}', VALIDATOR, out_refund_no="R1")
    assert "out_trade_no" in exc.value.message and exc.value.http_status == 404


def test_bill_step_one_vector_then_the_file_plain_and_gzip():
    step1 = BILLS["step1_response"]
    download = read_bill_download(step1["status"], step1["headers"], step1["body"].encode(),
                                  Validator(public_key_verifier(), clock=lambda: NOW))
    assert download.hash_value == BILLS["file_plain_sha1"]
    plain = BILLS["file_plain_utf8"].encode()
    for data in (plain, base64.b64decode(BILLS["file_gzip_base64"])):
        assert read_bill_file(200, {}, data, download) == plain  # unsigned: no headers needed
    bill = parse_bill(plain)
    assert [r.out_trade_no for r in bill.rows] == ["T20251231000001"] and bill.rows[0].total_fee == 100


def test_a_tampered_bill_file_is_refused():
    step1 = BILLS["step1_response"]
    download = read_bill_download(step1["status"], step1["headers"], step1["body"].encode(),
                                  Validator(public_key_verifier(), clock=lambda: NOW))
    with pytest.raises(e.ProtocolError) as exc:
        read_bill_file(200, {}, BILLS["tampered_case"]["file_plain_utf8"].encode(), download)
    assert exc.value.code == "bill_hash_mismatch"


@pytest.mark.parametrize("status, code, cls", [
    (400, "NO_STATEMENT_EXIST", NoBillError),
    (400, "STATEMENT_CREATING", BillNotReadyError),
    (400, "INVALID_REQUEST", e.InvalidRequestError),  # step 2: the token expired, redo step 1
    (403, "NO_AUTH", e.MerchantSetupError),
])
def test_bill_errors(status, code, cls):
    body = json.dumps({"code": code, "message": "说明"}).encode()
    with pytest.raises(cls) as exc:
        read_bill_download(status, {}, body, VALIDATOR)
    assert exc.value.err_code == code and exc.value.http_status == status
    with pytest.raises(cls):
        read_bill_file(status, {}, body, None)


def test_verified_body_wants_bytes():
    with pytest.raises(TypeError):
        verified_body(200, {}, "{}", VALIDATOR)
