"""Rewrite the recorded XML replies: python -m tests.wxpay.replies.make_fixtures"""
from __future__ import annotations

from wxpay.signing import HMAC_SHA256

from . import HERE, MINI_APPID, OPENID, envelope, signed_reply, xml_of

FIXTURES = {
    "unifiedorder_jsapi.xml": signed_reply(envelope(
        device_info="WEB", result_code="SUCCESS", prepay_id="wx201411101639507cbf6ffd8b0779950874",
        trade_type="JSAPI")),
    "unifiedorder_jsapi_hmac.xml": signed_reply(envelope(
        device_info="WEB", result_code="SUCCESS", prepay_id="wx2014111016395084d6a3c8b5ae3b9c0001",
        trade_type="JSAPI"), sign_type=HMAC_SHA256),
    "unifiedorder_mini.xml": signed_reply(envelope(
        appid=MINI_APPID, result_code="SUCCESS", prepay_id="wx0619282175165730d350e33679fc5f0000",
        trade_type="JSAPI")),
    "unifiedorder_native.xml": signed_reply(envelope(
        result_code="SUCCESS", prepay_id="wx2014111104090763d31a4b2b3c8e8d4e0001", trade_type="NATIVE",
        code_url="weixin://wxpay/bizpayurl/up?pr=NwY5Mz9&groupid=00")),
    "unifiedorder_app.xml": signed_reply(envelope(
        result_code="SUCCESS", prepay_id="wx20141111040907e6b15f7d8a63cb190002", trade_type="APP")),
    "unifiedorder_mweb.xml": signed_reply(envelope(
        result_code="SUCCESS", prepay_id="wx2016121516420242444321ca0631331346", trade_type="MWEB",
        mweb_url="https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016121516420242444321ca0631331346&package=1405458241")),
    "orderquery_paid.xml": signed_reply(envelope(
        device_info="", result_code="SUCCESS", openid=OPENID, is_subscribe="Y", trade_type="JSAPI",
        bank_type="CMC", total_fee=101, fee_type="CNY", cash_fee=100, cash_fee_type="CNY",
        settlement_total_fee=101, coupon_fee=1, coupon_count=1, coupon_type_0="CASH",
        coupon_id_0="10000", coupon_fee_0=1,
        transaction_id="1008450740201411110005820873", out_trade_no="1415757673", attach="",
        time_end="20141111170043", trade_state="SUCCESS", trade_state_desc="支付成功",
        promotion_flag_added_later="kept")),
    "orderquery_notpay.xml": signed_reply(envelope(
        device_info="", result_code="SUCCESS", out_trade_no="1415757673", total_fee=101,
        trade_state="NOTPAY", trade_state_desc="订单未支付")),
    "closeorder.xml": signed_reply(envelope(result_code="SUCCESS", result_msg="OK")),
    "refund.xml": signed_reply(envelope(
        result_code="SUCCESS", transaction_id="1008450740201411110005820873",
        out_trade_no="1415757673", out_refund_no="1415701182", refund_id="2008450740201411110000174436",
        refund_fee=1, total_fee=101, cash_fee=100, cash_refund_fee=1, coupon_refund_fee=0)),
    "refundquery.xml": signed_reply(envelope(
        result_code="SUCCESS", transaction_id="1008450740201411110005820873",
        out_trade_no="1415757673", total_fee=101, cash_fee=100, refund_count=2, total_refund_count=2,
        out_refund_no_0="1415701182", refund_id_0="2008450740201411110000174436",
        refund_channel_0="ORIGINAL", refund_fee_0=1, settlement_refund_fee_0=1, refund_status_0="SUCCESS",
        refund_account_0="REFUND_SOURCE_UNSETTLED_FUNDS", refund_recv_accout_0="支付用户的零钱",
        refund_success_time_0="2014-11-11 17:10:06",
        out_refund_no_1="1415701183", refund_id_1="2008450740201411110000174437",
        refund_channel_1="ORIGINAL", refund_fee_1=50, refund_status_1="PROCESSING")),
    "return_fail_sign.xml": xml_of({"return_code": "FAIL", "return_msg": "签名错误"}),
    "result_fail_orderpaid.xml": signed_reply(envelope(
        result_code="FAIL", err_code="ORDERPAID", err_code_des="该订单已支付")),
    "bill_no_bill.xml": xml_of({"return_code": "FAIL", "return_msg": "No Bill Exist", "error_code": "20002"}),
}


def main() -> None:
    for name, body in FIXTURES.items():
        (HERE / name).write_bytes(body + b"\n")


if __name__ == "__main__":
    main()
