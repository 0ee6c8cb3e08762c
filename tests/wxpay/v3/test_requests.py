"""Requests as pure values: the vectors' bytes, null never sent, 4-byte characters and bad arguments refused locally."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from wxpay.endpoints import Endpoints
from wxpay.errors import InvalidArgumentError, ProtocolError
from wxpay.timeutil import parse_rfc3339
from wxpay.v3 import MerchantSigner, V3Endpoints, json_body, parse_authorization
from wxpay.v3.requests import (
    build_bill_file, build_close, build_fund_flow_bill, build_order, build_query_by_out_trade_no,
    build_query_by_transaction_id, build_refund, build_refund_query, build_trade_bill, request_headers,
)

from .vectors import MCHID, MERCHANT_SERIAL, by_id, load, merchant_key

SIGNER = MerchantSigner(MCHID, MERCHANT_SERIAL, merchant_key())
VECTORS = by_id(load("request-signing.json")["vectors"])
APPID = "wx0000000000test1"
NOTIFY = "https://merchant.example.com/wxpay/v3/notify"
ORDER = dict(appid=APPID, mchid=MCHID, description="Test goods", out_trade_no="T20260101000002",
             notify_url=NOTIFY, total=1)

BUILT = {
    "R1_get_query": lambda: build_query_by_out_trade_no(MCHID, "T20260101000001"),
    "R2_get_bill_query": lambda: build_trade_bill(date(2025, 12, 31), "ALL", gzip=True),
    "R3_post_json_ascii": lambda: build_order("native", **ORDER),
    "R4_post_json_utf8": lambda: build_order(
        "jsapi", appid=APPID, mchid=MCHID, description="形象店-深圳腾大-QQ公仔", out_trade_no="T20260101000003",
        time_expire=parse_rfc3339("2026-01-01T14:00:00+08:00"), attach="自定义数据 ✓", notify_url=NOTIFY,
        total=100, openid="oTEST0000000000000000000001"),
    "R5_post_close_204": lambda: build_close(MCHID, "T20260101000001"),
}


@pytest.mark.parametrize("vid", sorted(BUILT))
def test_the_builders_reproduce_the_vectors_byte_for_byte(vid):
    v = VECTORS[vid]
    request = BUILT[vid]()
    assert (request.method, request.path) == (v["method"], v["path_with_query"])
    assert request.body == v.get("body", "").encode("utf-8")
    headers = request_headers(SIGNER, request.method, request.path, request.body, wechatpay_serial=None,
                              timestamp=int(v["timestamp"]), nonce=v["nonce_str"])
    assert headers["Authorization"] == v["authorization"]
    assert "Wechatpay-Serial" not in headers
    assert ("Content-Type" in headers) == bool(request.body)


def test_wechatpay_serial_names_the_key_we_verify_with():
    request = BUILT["R1_get_query"]()
    headers = request_headers(SIGNER, "GET", request.path, b"", wechatpay_serial="PUB_KEY_ID_01")
    assert headers["Wechatpay-Serial"] == "PUB_KEY_ID_01"
    assert parse_authorization(headers["Authorization"]).serial_no == MERCHANT_SERIAL


def test_absent_fields_are_omitted_never_null():
    request = build_order("native", **ORDER, attach=None, goods_tag=None, time_expire=None,
                          detail={"cost_price": 1, "invoice_id": None, "goods_detail": [{"merchant_goods_id": "A",
                                                                                          "goods_name": None,
                                                                                          "quantity": 1,
                                                                                          "unit_price": 1}]})
    assert b"null" not in request.body
    assert json.loads(request.body)["detail"] == {"cost_price": 1, "goods_detail": [
        {"merchant_goods_id": "A", "quantity": 1, "unit_price": 1}]}
    assert json_body({"a": None, "b": {"c": None}}) == b'{"b":{}}'
    with pytest.raises(InvalidArgumentError, match=r"goods\[0\] is None"):
        json_body({"goods": [None]})


@pytest.mark.parametrize("field, value", [
    ("description", "Tea 🍵"),
    ("attach", "ok 𠀀"),  # a CJK Extension B ideograph: 4 bytes too
])
def test_four_byte_characters_are_refused_before_any_call(field, value):
    with pytest.raises(InvalidArgumentError) as exc:
        build_order("native", **{**ORDER, field: value})
    assert exc.value.code == "unsupported_character"
    assert field in exc.value.message and "4-byte" in exc.value.message


def test_four_byte_characters_are_refused_in_nested_objects_and_keys_too():
    with pytest.raises(InvalidArgumentError, match=r"scene_info.store_info.name"):
        build_order("native", **ORDER, scene_info={"store_info": {"name": "店😀"}})
    with pytest.raises(InvalidArgumentError, match="4-byte"):
        json_body({"😀": 1})
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        json_body({"a": "\ud800"})
    # three-byte characters (✓, CJK) are fine
    assert "✓".encode() in build_order("native", **{**ORDER, "description": "茶 ✓"}).body


@pytest.mark.parametrize("kind, extra, message", [
    ("jsapi", {}, "openid"),
    ("native", {"openid": "o1"}, "openid belongs to JSAPI"),
    ("h5", {}, "payer_client_ip"),
    ("h5", {"payer_client_ip": "0.0.0.0"}, "real IP"),
    ("h5", {"payer_client_ip": "203.0.113.9", "h5_type": "IOS"}, "h5_type"),
    ("pc", {}, "kind must be"),
    ("native", {"total": 0}, "greater than 0"),
    ("native", {"total": 1.5}, "int number of fen"),
    ("native", {"total": True}, "int number of fen"),
    ("native", {"out_trade_no": "T1"}, "out_trade_no"),
    ("native", {"out_trade_no": "T2026|0101"}, "out_trade_no"),
    ("native", {"description": "x" * 128}, "127"),
    ("native", {"description": " padded"}, "whitespace"),
    ("native", {"notify_url": "https://shop.example/n?x=1"}, "query"),
    ("native", {"notify_url": "ftp://shop.example/n"}, "http"),
    ("native", {"time_expire": datetime(2026, 1, 1)}, "timezone-aware"),
    ("native", {"currency": "cny"}, "currency"),
    ("native", {"appid": "wx 1"}, "appid"),
    ("native", {"support_fapiao": "yes"}, "support_fapiao"),
    ("native", {"detail": [1]}, "detail"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_order_arguments_are_refused(kind, extra, message):
    with pytest.raises(InvalidArgumentError, match=message):
        build_order(kind, **{**ORDER, **extra})


def test_h5_scene_info_gets_the_ip_and_a_wap_type():
    body = json.loads(build_order("h5", **ORDER, payer_client_ip="203.0.113.9").body)
    assert body["scene_info"] == {"payer_client_ip": "203.0.113.9", "h5_info": {"type": "Wap"}}
    body = json.loads(build_order("h5", **ORDER, payer_client_ip="2001:db8::1", h5_type="iOS",
                                  scene_info={"device_id": "D1", "h5_info": {"app_name": "Shop"}}).body)
    assert body["scene_info"] == {"device_id": "D1", "h5_info": {"app_name": "Shop", "type": "iOS"},
                                  "payer_client_ip": "2001:db8::1"}


def test_time_expire_goes_out_in_china_time():
    when = datetime(2026, 1, 1, 6, 0, tzinfo=timezone.utc)
    assert json.loads(build_order("native", **ORDER, time_expire=when).body)["time_expire"] == "2026-01-01T14:00:00+08:00"


def test_queries_close_refunds_and_bills():
    assert build_query_by_transaction_id(MCHID, "4200000000202601010000000001").path == \
        "/v3/pay/transactions/id/4200000000202601010000000001?mchid=1900000109"
    assert build_refund_query("R|1@x*").path == "/v3/refund/domestic/refunds/R%7C1@x*"
    refund = build_refund(out_refund_no="R1", refund=40, total=100, out_trade_no="T20260101000001", reason="破损")
    assert json.loads(refund.body) == {"out_trade_no": "T20260101000001", "out_refund_no": "R1", "reason": "破损",
                                       "amount": {"refund": 40, "total": 100, "currency": "CNY"}}
    assert build_fund_flow_bill(date(2025, 12, 31), "FEES").path == \
        "/v3/bill/fundflowbill?bill_date=2025-12-31&account_type=FEES"
    assert build_trade_bill(date(2025, 12, 31)).path == "/v3/bill/tradebill?bill_date=2025-12-31&bill_type=ALL"
    assert [r.safe for r in (refund, build_refund_query("R1"), build_close(MCHID, "T20260101000001"),
                             build_order("native", **ORDER), build_trade_bill(date(2025, 1, 1)))] == \
        [False, True, True, False, True]


@pytest.mark.parametrize("call, message", [
    (lambda: build_refund(out_refund_no="R1", refund=101, total=100, out_trade_no="T20260101000001"), "exceeds"),
    (lambda: build_refund(out_refund_no="R1", refund=1, total=100), "exactly one"),
    (lambda: build_refund(out_refund_no="R1", refund=1, total=100, out_trade_no="T20260101000001",
                          transaction_id="4200"), "exactly one"),
    (lambda: build_refund(out_refund_no="R 1", refund=1, total=100, out_trade_no="T20260101000001"), "out_refund_no"),
    (lambda: build_refund(out_refund_no="R1", refund=1, total=100, out_trade_no="T20260101000001",
                          reason="x" * 81), "80"),
    (lambda: build_refund(out_refund_no="R1", refund=1, total=100, out_trade_no="T20260101000001",
                          funds_account="BASIC"), "AVAILABLE"),
    (lambda: build_query_by_out_trade_no(MCHID, "../../v3/certificates"), "out_trade_no"),
    (lambda: build_query_by_transaction_id(MCHID, "42/00"), "transaction_id"),
    (lambda: build_query_by_out_trade_no("1900 0109", "T20260101000001"), "mchid"),
    (lambda: build_trade_bill(datetime(2025, 12, 31)), "bill_date"),
    (lambda: build_trade_bill(date(2025, 12, 31), "EVERYTHING"), "bill_type"),
    (lambda: build_fund_flow_bill(date(2025, 12, 31), "MAIN"), "account_type"),
    (lambda: build_bill_file("https://evil.example/v3/x"), "/v3/"),
])
def test_bad_arguments_of_other_calls_are_refused(call, message):
    with pytest.raises(InvalidArgumentError, match=message):
        call()


def test_endpoints_share_v2_pay_base_and_keep_our_authorization_home():
    v3 = V3Endpoints.from_endpoints(Endpoints.single("http://127.0.0.1:9000/_wechat"))
    assert v3.path("/v3/certificates") == "/_wechat/v3/certificates"
    assert v3.url(v3.path("/v3/certificates")) == "http://127.0.0.1:9000/_wechat/v3/certificates"
    assert V3Endpoints().base == Endpoints().pay_base == "https://api.mch.weixin.qq.com"
    assert v3.api_path_of("http://127.0.0.1:9000/_wechat/v3/billdownload/file?token=T1") == \
        "/v3/billdownload/file?token=T1"
    real = V3Endpoints()
    assert real.api_path_of("https://api.mch.weixin.qq.com/v3/billdownload/file?token=T") == "/v3/billdownload/file?token=T"
    for foreign in ("https://api.mch.weixin.qq.com.evil.example/v3/billdownload/file?token=T",
                    "http://api.mch.weixin.qq.com/v3/billdownload/file?token=T",
                    "https://user@api.mch.weixin.qq.com/v3/billdownload/file?token=T",
                    "https://evil.example/v3/billdownload/file?token=T",
                    "https://api.mch.weixin.qq.com/other/file?token=T"):
        with pytest.raises(ProtocolError) as exc:
            real.api_path_of(foreign)
        assert exc.value.code == "foreign_download_url"
    with pytest.raises(ProtocolError):
        v3.api_path_of("http://127.0.0.1:9000/v3/billdownload/file?token=T1")  # outside the prefix
