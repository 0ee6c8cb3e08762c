"""How replies are judged: check_reply alone, then each call's typed result."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from wxpay import errors as e
from wxpay.client import WxPayClient, check_reply
from wxpay.err_codes import ERR_CODES
from wxpay.merchant import Merchant
from wxpay.results import Coupon
from wxpay.signing import HMAC_SHA256
from wxpay.transport import HttpResponse
from wxpay.xmlcodec import parse_xml

from .replies import (
    API_KEY,
    APPID,
    MCH_ID,
    MINI_APPID,
    OPENID,
    FakeWeChat,
    Sleeps,
    business_fail,
    envelope,
    load,
    signed_fields,
    signed_reply,
    xml_of,
)

MERCHANT = Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID)
HMAC_MERCHANT = Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID, sign_type=HMAC_SHA256)


def ok_fields(**extra) -> dict:
    return envelope(result_code="SUCCESS", prepay_id="wx201411101639507cbf6ffd8b0779950874", trade_type="APP", **extra)


# --- check_reply on its own -------------------------------------------------


def test_verified_reply_is_returned_with_unknown_fields():
    reply = check_reply(load("orderquery_paid.xml"), MERCHANT)
    assert reply["trade_state"] == "SUCCESS"
    assert reply["promotion_flag_added_later"] == "kept"


def test_layer_one_fail_is_unsigned_return_fail_error():
    with pytest.raises(e.ReturnFailError) as info:
        check_reply(load("return_fail_sign.xml"), MERCHANT)
    err = info.value
    assert not isinstance(err, e.BusinessError)
    assert err.return_code == "FAIL" and err.return_msg == "签名错误"
    assert "API key" in err.message  # says what to check


def test_layer_two_fail_is_business_error_not_return_fail():
    with pytest.raises(e.BusinessError) as info:
        check_reply(load("result_fail_orderpaid.xml"), MERCHANT)
    assert isinstance(info.value, e.OrderPaidError)
    assert not isinstance(info.value, e.ReturnFailError)
    assert info.value.err_code == "ORDERPAID" and info.value.err_code_des == "该订单已支付"


@pytest.mark.parametrize("err_code", sorted(ERR_CODES))
def test_every_err_code_maps_to_its_class(err_code):
    cls, message = ERR_CODES[err_code]
    with pytest.raises(e.BusinessError) as info:
        check_reply(business_fail(err_code, "说明"), MERCHANT)
    assert type(info.value) is cls
    assert info.value.err_code == err_code
    assert message in info.value.message and "说明" in info.value.message
    assert info.value.retryable is (cls is e.RetryableBusinessError)


def test_unknown_err_code_is_a_plain_business_error():
    with pytest.raises(e.BusinessError) as info:
        check_reply(business_fail("SOMETHING_NEW"), MERCHANT)
    assert type(info.value) is e.BusinessError and info.value.err_code == "SOMETHING_NEW"


def _tampered(fields: dict) -> bytes:
    signed = signed_fields(fields)
    signed["prepay_id"] = "wx_attacker_controlled"
    return xml_of(signed)


@pytest.mark.parametrize("body,reason", [
    (lambda: xml_of(ok_fields()), "no signature"),
    (lambda: _tampered(ok_fields()), "does not verify"),
    (lambda: signed_reply(ok_fields(), key="0" * 32), "does not verify"),
    (lambda: signed_reply(ok_fields(), sign_type=HMAC_SHA256), "length"),
    (lambda: signed_reply(ok_fields(sign_type="HMAC-SHA256"), sign_type=HMAC_SHA256), "HMAC-SHA256"),
    (lambda: xml_of({**signed_fields(ok_fields()), "sign": ""}), "no signature"),
])
def test_success_without_good_signature_is_signature_error(body, reason):
    with pytest.raises(e.SignatureError) as info:
        check_reply(body(), MERCHANT)
    assert reason in info.value.message


def test_failure_reply_with_bad_signature_is_still_a_signature_error():
    """A forged result_code=FAIL must not be believed either (e.g. a fake ORDERPAID)."""
    fields = signed_fields(envelope(result_code="FAIL", err_code="ORDERNOTEXIST", err_code_des="x"))
    fields["err_code"] = "ORDERPAID"
    with pytest.raises(e.SignatureError):
        check_reply(xml_of(fields), MERCHANT)


def test_hmac_merchant_verifies_hmac_replies_and_refuses_md5_ones():
    assert check_reply(load("unifiedorder_jsapi_hmac.xml"), HMAC_MERCHANT)["trade_type"] == "JSAPI"
    with pytest.raises(e.SignatureError):
        check_reply(load("unifiedorder_jsapi.xml"), HMAC_MERCHANT)


@pytest.mark.parametrize("fields", [
    envelope(appid="wx0000000000000bad", result_code="SUCCESS"),
    {**envelope(result_code="SUCCESS"), "mch_id": "19999999"},
    {k: v for k, v in envelope(result_code="SUCCESS").items() if k != "appid"},
])
def test_other_appid_or_mch_id_is_identity_mismatch(fields):
    with pytest.raises(e.IdentityMismatchError):
        check_reply(signed_reply(fields), MERCHANT)


def test_appid_override_is_what_the_reply_must_name():
    body = load("unifiedorder_mini.xml")
    assert check_reply(body, MERCHANT, appid=MINI_APPID)["appid"] == MINI_APPID
    with pytest.raises(e.IdentityMismatchError):
        check_reply(body, MERCHANT)


@pytest.mark.parametrize("body", [
    b"not xml",
    b"",
    b'<!DOCTYPE x [<!ENTITY a SYSTEM "file:///etc/passwd">]><xml><return_code>&a;</return_code></xml>',
    xml_of({"return_msg": "OK"}),
    lambda: signed_reply(envelope(result_code="MAYBE")),
])
def test_malformed_replies_are_protocol_errors(body):
    with pytest.raises(e.ProtocolError):
        check_reply(body() if callable(body) else body, MERCHANT)


# --- typed results through the client ----------------------------------------


def client(*script, m: Merchant = MERCHANT) -> tuple[WxPayClient, FakeWeChat]:
    fake = FakeWeChat(*script)
    return WxPayClient(m, transport=fake, sleep=Sleeps()), fake


BASE = dict(out_trade_no="ORD20240301A001", total_fee=128, body="Shop-Latte",
            notify_url="https://shop.example.com/n", spbill_create_ip="203.0.113.9")


async def test_unified_order_results_per_trade_type():
    c, _ = client(load("unifiedorder_native.xml"))
    native = await c.unified_order(trade_type="NATIVE", product_id="SKU-42", **BASE)
    assert native.code_url.startswith("weixin://wxpay/") and native.mweb_url is None
    c, _ = client(load("unifiedorder_mweb.xml"))
    mweb = await c.unified_order(
        trade_type="MWEB", scene_info={"h5_info": {"type": "IOS", "app_name": "Shop", "bundle_id": "com.shop"}},
        **BASE,
    )
    assert mweb.mweb_url.startswith("https://wx.tenpay.com/") and mweb.trade_type == "MWEB"
    assert mweb.raw["prepay_id"] == mweb.prepay_id


async def test_signed_success_missing_prepay_id_is_protocol_error():
    c, _ = client(signed_reply(envelope(result_code="SUCCESS", trade_type="APP")))
    with pytest.raises(e.ProtocolError):
        await c.unified_order(trade_type="APP", **BASE)


async def test_order_query_paid_is_fully_typed():
    c, fake = client(load("orderquery_paid.xml"))
    r = await c.order_query(out_trade_no="1415757673")
    assert parse_xml(fake.last.body)["out_trade_no"] == "1415757673"
    assert r.paid and r.trade_state == "SUCCESS" and r.trade_state_desc == "支付成功"
    assert (r.total_fee, r.cash_fee, r.settlement_total_fee, r.coupon_fee) == (101, 100, 101, 1)
    assert r.coupons == [Coupon(type="CASH", id="10000", fee=1)]
    assert r.openid == OPENID and r.bank_type == "CMC" and r.trade_type == "JSAPI"
    assert r.attach is None  # empty in the reply
    assert r.time_end == datetime(2014, 11, 11, 9, 0, 43, tzinfo=timezone.utc)
    assert r.raw["promotion_flag_added_later"] == "kept"


async def test_order_query_notpay_has_no_payment_details():
    c, _ = client(load("orderquery_notpay.xml"))
    r = await c.order_query(transaction_id="1008450740201411110005820873")
    assert not r.paid and r.trade_state == "NOTPAY"
    assert r.time_end is None and r.coupons == [] and r.transaction_id is None


async def test_order_query_non_integer_fee_is_protocol_error():
    fields = parse_xml(load("orderquery_paid.xml"))
    fields.pop("sign")
    fields["total_fee"] = "1.01"
    c, _ = client(signed_reply(fields))
    with pytest.raises(e.ProtocolError):
        await c.order_query(out_trade_no="1415757673")


async def test_close_order_result_and_request():
    c, fake = client(load("closeorder.xml"))
    r = await c.close_order("1415757673")
    assert r.result_msg == "OK"
    assert parse_xml(fake.last.body)["out_trade_no"] == "1415757673"
    assert fake.last.url.endswith("/pay/closeorder")


async def test_close_order_already_paid_is_order_paid_error():
    c, _ = client(business_fail("ORDERPAID", "订单已支付"))
    with pytest.raises(e.OrderPaidError):
        await c.close_order("1415757673")


async def test_refund_query_refunds_from_numbered_fields():
    c, fake = client(load("refundquery.xml"))
    r = await c.refund_query(out_trade_no="1415757673", offset=0)
    sent = parse_xml(fake.last.body)
    assert sent["out_trade_no"] == "1415757673" and sent["offset"] == "0"
    assert r.refund_count == 2 and r.total_refund_count == 2
    first, second = r.refunds
    assert first.out_refund_no == "1415701182" and first.refund_fee == 1 and first.succeeded
    assert first.refund_recv_account == "支付用户的零钱"
    assert first.success_time == datetime(2014, 11, 11, 9, 10, 6, tzinfo=timezone.utc)
    assert second.refund_status == "PROCESSING" and second.success_time is None and second.refund_fee == 50


async def test_refund_query_without_refunds_is_refund_not_exist():
    c, _ = client(business_fail("REFUNDNOTEXIST", "not exist"))
    with pytest.raises(e.RefundNotExistError):
        await c.refund_query(out_refund_no="RF-1")


async def test_http_500_from_fake_transport_is_transport_error():
    c, _ = client(HttpResponse(500, {}, b"busy"))
    with pytest.raises(e.TransportError) as info:
        await c.close_order("1415757673")
    assert info.value.status == 500
