"""downloadbill text into typed rows and a summary, amounts in exact fen."""
from __future__ import annotations

import gzip
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from wxpay import errors as e
from wxpay.bill import BillError, BillNotReadyError, NoBillError, parse_bill, yuan_to_fen
from wxpay.client import WxPayClient
from wxpay.merchant import Merchant

from .replies import API_KEY, APPID, MCH_ID, FakeWeChat, Sleeps, load, xml_of


def test_current_all_bill_rows_and_summary():
    bill = parse_bill(load("bill_all.txt"))
    assert len(bill.rows) == 3
    latte, americano, refund = bill.rows
    assert latte.trade_time == datetime(2024, 3, 1, 1, 15, 2, tzinfo=timezone.utc)
    assert latte.appid == APPID and latte.mch_id == MCH_ID
    assert latte.out_trade_no == "ORD20240301A001" and latte.trade_type == "JSAPI"
    assert latte.settlement_total_fee == 12800 and latte.total_fee == 12800
    assert latte.body == "咖啡馆-拿铁,大杯"  # a comma inside a value survives
    assert latte.attach == "table=7"
    assert latte.poundage == Decimal("0.77000") and latte.rate == "0.60%"
    assert americano.total_fee == 1 and americano.attach is None
    assert refund.trade_state == "REFUND" and refund.refund_fee == 3050
    assert refund.out_refund_no == "RF20240301001" and refund.request_refund_fee == 3050
    assert refund.poundage == Decimal("-0.18000")
    s = bill.summary
    assert s.total_count == 3
    assert (s.settlement_total_fee, s.order_total_fee, s.refund_fee, s.request_refund_fee) == (12801, 12801, 3050, 3050)
    assert s.poundage == Decimal("0.59000")
    assert latte.raw["费率备注"] == ""


def test_legacy_bill_with_full_width_colons():
    bill = parse_bill(load("bill_legacy.txt"))
    assert [r.total_fee for r in bill.rows] == [1, 1]
    assert bill.rows[0].trade_time == datetime(2014, 11, 10, 8, 33, 45, tzinfo=timezone.utc)
    assert bill.rows[0].coupon_fee == 0 and bill.rows[0].trade_type == "MICROPAY"
    assert bill.summary.total_count == 2 and bill.summary.total_fee == 2
    assert bill.summary.coupon_refund_fee == 0 and bill.summary.poundage == Decimal("0")


def test_refund_bill_times():
    (row,) = parse_bill(load("bill_refund.txt")).rows
    assert row.refund_apply_time == datetime(2024, 3, 1, 2, 2, 33, tzinfo=timezone.utc)
    assert row.refund_success_time == datetime(2024, 3, 1, 2, 2, 41, tzinfo=timezone.utc)
    assert row.total_fee == 9990 and row.refund_fee == 3050


def test_gzip_bill_is_the_same_bill():
    assert parse_bill(gzip.compress(load("bill_all.txt"))) == parse_bill(load("bill_all.txt"))


@pytest.mark.parametrize("text,fen", [
    ("0.01", 1), ("0.0", 0), ("128.00", 12800), ("0.10", 10), ("1234567.89", 123456789),
    ("0.07", 7), ("-30.50", -3050), ("0.29", 29), ("2.675", None),
])
def test_yuan_to_fen_is_exact(text, fen):
    if fen is None:
        with pytest.raises(e.ProtocolError):
            yuan_to_fen(text)
    else:
        assert yuan_to_fen(text) == fen


def test_no_bill_exist_is_typed():
    with pytest.raises(NoBillError) as info:
        parse_bill(load("bill_no_bill.xml"))
    assert isinstance(info.value, BillError) and isinstance(info.value, e.ReturnFailError)
    assert info.value.return_msg == "No Bill Exist"


@pytest.mark.parametrize("msg,cls", [
    ("Bill Creating", BillNotReadyError),
    ("invalid bill_type", BillError),
    ("SYSTEMERROR", e.RetryableBusinessError),
])
def test_other_bill_failures(msg, cls):
    with pytest.raises(cls) as info:
        parse_bill(xml_of({"return_code": "FAIL", "return_msg": msg}))
    assert type(info.value) is cls


@pytest.mark.parametrize("body", [
    "交易时间,公众账号ID\n",
    "交易时间,公众账号ID\n`2024-03-01 09:15:02,`wx1,`extra\n总交易单数\n`1\n",
    "交易时间,总金额\n`2024-03-01 09:15:02,`12.345\n总交易单数\n`1\n",
    "交易时间,总金额\n`2024-03-01 09:15:02,`abc\n总交易单数\n`1\n",
    "交易时间,总金额\n`2024-03-01 09:15:02,`1.00\n总交易单数\n`1\n`2\n",
])
def test_malformed_bills_are_protocol_errors(body):
    with pytest.raises(e.ProtocolError):
        parse_bill(body.encode())


def test_truncated_gzip_is_protocol_error():
    with pytest.raises(e.ProtocolError):
        parse_bill(gzip.compress(load("bill_all.txt"))[:40])


async def test_client_downloads_and_parses_bills():
    fake = FakeWeChat(gzip.compress(load("bill_all.txt")))
    client = WxPayClient(Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID), transport=fake, sleep=Sleeps())
    bill = await client.download_bill(date(2024, 3, 1), gzip=True)
    assert bill.summary.total_count == 3
    assert fake.last.request_timeout >= 60


async def test_client_no_bill_is_not_retried():
    fake = FakeWeChat(load("bill_no_bill.xml"))
    client = WxPayClient(Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID), transport=fake, sleep=Sleeps())
    with pytest.raises(NoBillError):
        await client.download_bill(date(2024, 3, 1))
    assert len(fake.requests) == 1
