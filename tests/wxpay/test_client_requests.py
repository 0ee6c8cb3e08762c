"""What WxPayClient puts on the wire, and what it refuses before any I/O."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from wxpay.client import WxPayClient, sign_request
from wxpay.endpoints import Endpoints
from wxpay.errors import ConfigError, InvalidArgumentError
from wxpay.merchant import Merchant
from wxpay.signing import HMAC_SHA256, MD5, verify
from wxpay.xmlcodec import parse_xml

from .replies import API_KEY, APPID, MCH_ID, MINI_APPID, OPENID, FakeWeChat, load, signed_reply

NOTIFY = "https://shop.example.com/wechat/notify"
MWEB_SCENE = {"h5_info": {"type": "Wap", "wap_url": "https://shop.example.com", "wap_name": "Shop"}}


def merchant(sign_type: str = MD5) -> Merchant:
    return Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID, sign_type=sign_type)


def client(fake: FakeWeChat, sign_type: str = MD5, **kw) -> WxPayClient:
    return WxPayClient(merchant(sign_type), transport=fake, **kw)


def sent(fake: FakeWeChat) -> dict[str, str]:
    return parse_xml(fake.last.body)


def independent_sign(fields: dict[str, str], key: str, sign_type: str) -> str:
    """The V2 algorithm written out again here, not via wxpay.signing."""
    string_a = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] != "")
    temp = f"{string_a}&key={key}".encode()
    if sign_type == MD5:
        return hashlib.md5(temp).hexdigest().upper()
    return hmac.new(key.encode(), temp, hashlib.sha256).hexdigest().upper()


BASE = dict(out_trade_no="ORD20240301A001", total_fee=128, body="咖啡馆-拿铁", notify_url=NOTIFY,
            spbill_create_ip="203.0.113.9")

TRADE_CASES = [
    ("JSAPI", {"openid": OPENID}, "unifiedorder_jsapi.xml"),
    ("NATIVE", {"product_id": "SKU-42"}, "unifiedorder_native.xml"),
    ("APP", {}, "unifiedorder_app.xml"),
    ("MWEB", {"scene_info": MWEB_SCENE}, "unifiedorder_mweb.xml"),
]


@pytest.mark.parametrize("sign_type", [MD5, HMAC_SHA256])
@pytest.mark.parametrize("trade_type,extra,reply", TRADE_CASES)
async def test_unified_order_request_fields_and_signature(trade_type, extra, reply, sign_type):
    body = load(reply) if sign_type == MD5 else signed_reply(
        {k: v for k, v in parse_xml(load(reply)).items() if k != "sign"}, sign_type=sign_type
    )
    fake = FakeWeChat(body)
    await client(fake, sign_type).unified_order(trade_type=trade_type, **BASE, **extra)

    request = fake.last
    assert request.method == "POST"
    assert request.url == "https://api.mch.weixin.qq.com/pay/unifiedorder"
    assert request.client_cert is None
    fields = sent(fake)
    assert fields["appid"] == APPID and fields["mch_id"] == MCH_ID
    assert fields["trade_type"] == trade_type
    assert fields["total_fee"] == "128"
    assert b"<total_fee>128</total_fee>" in request.body  # bare integer on the wire
    assert fields["body"] == "咖啡馆-拿铁"
    assert fields["sign_type"] == sign_type
    assert 1 <= len(fields["nonce_str"]) <= 32
    assert fields["sign"] == independent_sign(fields, API_KEY, sign_type)
    assert len(fields["sign"]) == (32 if sign_type == MD5 else 64)
    for key, value in extra.items():
        if key == "scene_info":
            assert json.loads(fields["scene_info"]) == MWEB_SCENE
        else:
            assert fields[key] == value
    if trade_type != "JSAPI":
        assert "openid" not in fields


async def test_nonces_differ_between_calls():
    fake = FakeWeChat(load("unifiedorder_app.xml"))
    c = client(fake)
    await c.unified_order(trade_type="APP", **BASE)
    await c.unified_order(trade_type="APP", **BASE)
    first, second = (parse_xml(r.body)["nonce_str"] for r in fake.requests)
    assert first != second


async def test_mini_program_is_jsapi_with_its_own_appid():
    fake = FakeWeChat(load("unifiedorder_mini.xml"))
    result = await client(fake).unified_order(trade_type="JSAPI", openid=OPENID, appid=MINI_APPID, **BASE)
    assert sent(fake)["appid"] == MINI_APPID
    verify(sent(fake), API_KEY, MD5)
    assert result.prepay_id == "wx0619282175165730d350e33679fc5f0000"


async def test_optional_fields_and_time_expire_in_china_time():
    fake = FakeWeChat(load("unifiedorder_jsapi.xml"))
    expire = datetime(2024, 3, 1, 1, 30, tzinfo=timezone.utc)
    await client(fake).unified_order(
        trade_type="JSAPI", openid=OPENID, attach="table=7", time_expire=expire,
        time_start=expire - timedelta(minutes=30), detail={"goods_detail": [{"goods_id": "1"}]},
        goods_tag="WXG", limit_pay="no_credit", device_info="WEB", **BASE,
    )
    fields = sent(fake)
    assert fields["time_expire"] == "20240301093000"
    assert fields["time_start"] == "20240301090000"
    assert fields["attach"] == "table=7"
    assert json.loads(fields["detail"]) == {"goods_detail": [{"goods_id": "1"}]}
    assert fields["limit_pay"] == "no_credit" and fields["goods_tag"] == "WXG"
    assert fields["sign"] == independent_sign(fields, API_KEY, MD5)


async def test_single_base_url_serves_every_path():
    fake = FakeWeChat(load("unifiedorder_app.xml"))
    c = client(fake, endpoints=Endpoints.single("http://127.0.0.1:8000/_wechat/"))
    await c.unified_order(trade_type="APP", **BASE)
    assert fake.last.url == "http://127.0.0.1:8000/_wechat/pay/unifiedorder"


def test_sign_request_uses_given_nonce_and_skips_empty_values():
    body = sign_request(merchant(), {"out_trade_no": "ORD123456", "attach": "", "x": None}, nonce="abc")
    fields = parse_xml(body)
    assert fields["nonce_str"] == "abc"
    assert "attach" not in fields and "x" not in fields
    verify(fields, API_KEY, MD5)


# --- local validation: nothing reaches the transport ------------------------

INVALID = [
    ({"trade_type": "JSAPI"}, "openid"),
    ({"trade_type": "NATIVE"}, "product_id"),
    ({"trade_type": "MWEB"}, "scene_info"),
    ({"trade_type": "MWEB", "scene_info": {"h5_info": {"type": "Wap", "wap_url": "https://x"}}}, "wap_name"),
    ({"trade_type": "MWEB", "scene_info": MWEB_SCENE, "spbill_create_ip": "0.0.0.0"}, "real IP"),
    ({"trade_type": "MWEB", "scene_info": MWEB_SCENE, "spbill_create_ip": "shopper"}, "IPv4 or IPv6"),
    ({"trade_type": "MICROPAY"}, "trade_type"),
    ({"trade_type": "APP", "total_fee": 0}, "greater than 0"),
    ({"trade_type": "APP", "total_fee": -5}, "greater than 0"),
    ({"trade_type": "APP", "total_fee": 1.5}, "int number of fen"),
    ({"trade_type": "APP", "total_fee": "100"}, "int number of fen"),
    ({"trade_type": "APP", "total_fee": True}, "int number of fen"),
    ({"trade_type": "APP", "out_trade_no": "short"}, "6..32"),
    ({"trade_type": "APP", "out_trade_no": "A" * 33}, "6..32"),
    ({"trade_type": "APP", "out_trade_no": "ORD 12345"}, "letters, digits"),
    ({"trade_type": "APP", "out_trade_no": "订单12345678"}, "letters, digits"),
    ({"trade_type": "APP", "notify_url": "https://shop.example.com/n?x=1"}, "query string"),
    ({"trade_type": "APP", "notify_url": "/wechat/notify"}, "absolute"),
    ({"trade_type": "APP", "notify_url": "ftp://shop.example.com/n"}, "absolute"),
    ({"trade_type": "APP", "body": "咖" * 43}, "127"),  # 129 UTF-8 bytes
    ({"trade_type": "APP", "body": ""}, "non-empty"),
    ({"trade_type": "APP", "body": " padded"}, "whitespace"),
    ({"trade_type": "APP", "time_expire": datetime(2024, 3, 1, 9, 30)}, "timezone-aware"),
    ({"trade_type": "APP", "limit_pay": "no_debit"}, "no_credit"),
    ({"trade_type": "APP", "attach": "x" * 128}, "127"),
]


@pytest.mark.parametrize("change,words", INVALID)
async def test_invalid_unified_order_is_refused_before_io(change, words):
    fake = FakeWeChat(load("unifiedorder_app.xml"))
    args = {**BASE, **change}
    with pytest.raises(InvalidArgumentError) as info:
        await client(fake).unified_order(**args)
    assert words in info.value.message
    assert isinstance(info.value, ValueError)
    assert fake.requests == []


async def test_body_of_exactly_127_bytes_is_accepted():
    fake = FakeWeChat(load("unifiedorder_app.xml"))
    await client(fake).unified_order(trade_type="APP", **{**BASE, "body": "咖" * 42 + "a"})
    assert len(sent(fake)["body"].encode()) == 127


@pytest.mark.parametrize("kwargs", [
    {},
    {"out_trade_no": "bad no"},
])
async def test_order_query_needs_a_valid_number(kwargs):
    fake = FakeWeChat(load("orderquery_paid.xml"))
    with pytest.raises(InvalidArgumentError):
        await client(fake).order_query(**kwargs)
    assert fake.requests == []


@pytest.mark.parametrize("kwargs", [
    {},
    {"out_refund_no": "RF1", "offset": 10},
    {"out_trade_no": "ORD20240301A001", "offset": -1},
])
async def test_refund_query_argument_rules(kwargs):
    fake = FakeWeChat(load("refundquery.xml"))
    with pytest.raises(InvalidArgumentError):
        await client(fake).refund_query(**kwargs)
    assert fake.requests == []


async def test_download_bill_arguments():
    fake = FakeWeChat(load("bill_legacy.txt"))
    c = client(fake)
    with pytest.raises(InvalidArgumentError):
        await c.download_bill(datetime(2024, 3, 1, tzinfo=timezone.utc))
    with pytest.raises(InvalidArgumentError):
        await c.download_bill(date(2024, 3, 1), bill_type="EVERYTHING")
    assert fake.requests == []
    await c.download_bill(date(2024, 3, 1), "SUCCESS", gzip=True)
    fields = sent(fake)
    assert fields["bill_date"] == "20240301" and fields["bill_type"] == "SUCCESS"
    assert fields["tar_type"] == "GZIP"
    assert fake.last.url.endswith("/pay/downloadbill")
    verify(fields, API_KEY, MD5)


def test_merchant_repr_masks_key_and_checks_sign_type():
    m = merchant()
    assert API_KEY not in repr(m) and API_KEY not in str(m)
    assert "***" in repr(m)
    with pytest.raises(ConfigError):
        Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID, sign_type="SHA1")
    with pytest.raises(ConfigError):
        Merchant(mch_id=MCH_ID, api_key="", appid=APPID)


def test_endpoints_reject_relative_bases():
    with pytest.raises(ConfigError):
        Endpoints.single("127.0.0.1:8000")
    e = Endpoints()
    assert e.pay("pay/orderquery") == "https://api.mch.weixin.qq.com/pay/orderquery"
    assert e.open("connect/oauth2/authorize").startswith("https://open.weixin.qq.com/")
