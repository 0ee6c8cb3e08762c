"""Refunds: mutual TLS with the merchant certificate, or no refund at all."""
from __future__ import annotations

import pytest

from wxpay import errors as e
from wxpay.client import WxPayClient
from wxpay.merchant import Merchant
from wxpay.signing import verify
from wxpay.xmlcodec import parse_xml

from .replies import API_KEY, APPID, MCH_ID, FakeWeChat, Sleeps, load


@pytest.fixture
def cert_files(tmp_path):
    cert, key = tmp_path / "apiclient_cert.pem", tmp_path / "apiclient_key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    return str(cert), str(key)


def merchant(cert_files=(None, None)) -> Merchant:
    return Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID, cert_path=cert_files[0], key_path=cert_files[1])


ARGS = dict(out_refund_no="1415701182", out_trade_no="1415757673", total_fee=101, refund_fee=1)


async def test_refund_sends_cert_paths_and_returns_typed_result(cert_files):
    fake = FakeWeChat(load("refund.xml"))
    r = await WxPayClient(merchant(cert_files), transport=fake).refund(
        **ARGS, refund_desc="商品缺货", notify_url="https://shop.example.com/refund-notify"
    )
    req = fake.last
    assert req.url == "https://api.mch.weixin.qq.com/secapi/pay/refund"
    assert (req.client_cert, req.client_key) == cert_files
    fields = parse_xml(req.body)
    verify(fields, API_KEY)
    assert (fields["total_fee"], fields["refund_fee"], fields["out_refund_no"]) == ("101", "1", "1415701182")
    assert fields["refund_desc"] == "商品缺货"
    assert fields["notify_url"] == "https://shop.example.com/refund-notify"
    assert (r.refund_id, r.refund_fee, r.total_fee, r.cash_refund_fee) == ("2008450740201411110000174436", 1, 101, 1)
    assert "cert" in repr(req) or "client_cert" in repr(req)


async def test_refund_without_certificate_is_config_error_before_io():
    fake = FakeWeChat(load("refund.xml"))
    with pytest.raises(e.ConfigError) as info:
        await WxPayClient(merchant(), transport=fake).refund(**ARGS)
    assert "cert" in info.value.message
    assert fake.requests == []


async def test_other_calls_never_send_the_certificate(cert_files):
    fake = FakeWeChat(load("orderquery_paid.xml"))
    await WxPayClient(merchant(cert_files), transport=fake).order_query(out_trade_no="1415757673")
    assert fake.last.client_cert is None and fake.last.client_key is None


@pytest.mark.parametrize("change,words", [
    ({"refund_fee": 102}, "exceeds"),
    ({"refund_fee": 0}, "greater than 0"),
    ({"total_fee": 1.01}, "int number of fen"),
    ({"out_refund_no": "RF 1"}, "letters, digits"),
    ({"out_refund_no": "R" * 65}, "1..64"),
    ({"out_trade_no": None}, "transaction_id, out_trade_no"),
    ({"refund_desc": "x" * 81}, "80"),
    ({"notify_url": "https://shop.example.com/r?x=1"}, "query string"),
])
async def test_refund_argument_rules(cert_files, change, words):
    fake = FakeWeChat(load("refund.xml"))
    with pytest.raises(e.InvalidArgumentError) as info:
        await WxPayClient(merchant(cert_files), transport=fake).refund(**{**ARGS, **change})
    assert words in info.value.message
    assert fake.requests == []


@pytest.mark.parametrize("err_code,cls", [
    ("NOTENOUGH", e.NotEnoughError),
    ("TRADE_OVERDUE", e.BusinessError),
    ("ORDERNOTEXIST", e.OrderNotExistError),
])
async def test_refund_business_failures(cert_files, err_code, cls):
    from .replies import business_fail

    fake = FakeWeChat(business_fail(err_code))
    with pytest.raises(cls) as info:
        await WxPayClient(merchant(cert_files), transport=fake, sleep=Sleeps()).refund(**ARGS)
    assert info.value.err_code == err_code
