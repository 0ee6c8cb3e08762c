"""Which calls repeat, how often, how long they wait; what the observer sees."""
from __future__ import annotations

import logging
from datetime import date

import pytest

from wxpay import errors as e
from wxpay.client import WxPayClient
from wxpay.merchant import Merchant
from wxpay.retry import RetryPolicy, run_with_retry
from wxpay.transport import CallRecord, HttpResponse
from wxpay.xmlcodec import parse_xml

from .replies import API_KEY, APPID, MCH_ID, FakeWeChat, Sleeps, business_fail, load

MERCHANT = Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID)
BASE = dict(trade_type="APP", out_trade_no="ORD20240301A001", total_fee=128, body="Shop-Latte",
            notify_url="https://shop.example.com/n", spbill_create_ip="203.0.113.9")


def make(*script, policy: RetryPolicy | None = None, observer=None):
    fake, sleeps = FakeWeChat(*script), Sleeps()
    c = WxPayClient(MERCHANT, transport=fake, retry=policy or RetryPolicy(), sleep=sleeps, observer=observer)
    return c, fake, sleeps


async def test_order_query_retried_on_systemerror_then_succeeds():
    c, fake, sleeps = make(business_fail("SYSTEMERROR"), business_fail("SYSTEMERROR"), load("orderquery_paid.xml"))
    r = await c.order_query(out_trade_no="1415757673")
    assert r.paid
    assert len(fake.requests) == 3 and len(sleeps.delays) == 2
    # the repeat is the very same request
    assert len({req.body for req in fake.requests}) == 1


async def test_order_query_gives_up_at_the_cap():
    c, fake, sleeps = make(e.TransportError("connection reset"), policy=RetryPolicy(max_attempts=4))
    with pytest.raises(e.TransportError):
        await c.order_query(out_trade_no="1415757673")
    assert len(fake.requests) == 4 and len(sleeps.delays) == 3


@pytest.mark.parametrize("failure", [
    e.WxTimeoutError("timed out"),
    HttpResponse(502, {}, b"bad gateway"),
])
async def test_close_refund_query_and_bill_retry_transport_failures(failure):
    for call in (
        lambda c: c.close_order("1415757673"),
        lambda c: c.refund_query(out_refund_no="RF-1"),
        lambda c: c.download_bill(date(2024, 3, 1)),
    ):
        c, fake, _ = make(failure)
        with pytest.raises(e.TransportError):
            await call(c)
        assert len(fake.requests) == 3


@pytest.mark.parametrize("failure", [
    business_fail("ORDERNOTEXIST"),
    business_fail("FREQUENCY_LIMITED"),  # WeChat asks for a minute's pause, not a quick retry
    load("return_fail_sign.xml"),
    HttpResponse(404, {}, b"not found"),
])
async def test_permanent_failures_are_not_retried(failure):
    c, fake, sleeps = make(failure)
    with pytest.raises(e.WxPayError):
        await c.order_query(out_trade_no="1415757673")
    assert len(fake.requests) == 1 and sleeps.delays == []


async def test_unified_order_is_not_retried_by_default():
    c, fake, sleeps = make(business_fail("SYSTEMERROR"), load("unifiedorder_app.xml"))
    with pytest.raises(e.RetryableBusinessError):
        await c.unified_order(**BASE)
    assert len(fake.requests) == 1 and sleeps.delays == []


async def test_unified_order_retried_with_same_out_trade_no_when_asked():
    c, fake, _ = make(e.TransportError("reset"), load("unifiedorder_app.xml"))
    r = await c.unified_order(**BASE, retry=True)
    assert r.prepay_id
    numbers = {parse_xml(req.body)["out_trade_no"] for req in fake.requests}
    assert len(fake.requests) == 2 and numbers == {"ORD20240301A001"}


async def test_refund_not_retried_unless_asked(tmp_path):
    cert = tmp_path / "apiclient_cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    m = Merchant(mch_id=MCH_ID, api_key=API_KEY, appid=APPID, cert_path=str(cert))
    for retry, expected in ((False, 1), (True, 3)):
        fake = FakeWeChat(business_fail("BIZERR_NEED_RETRY"))
        c = WxPayClient(m, transport=fake, sleep=Sleeps())
        with pytest.raises(e.RetryableBusinessError):
            await c.refund(out_refund_no="RF-1", out_trade_no="ORD20240301A001", total_fee=10, refund_fee=5,
                           retry=retry)
        assert len(fake.requests) == expected


def test_backoff_grows_and_stays_bounded():
    policy = RetryPolicy(max_attempts=10, base_delay=0.2, max_delay=2.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 7)] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    jittery = RetryPolicy(base_delay=0.2, max_delay=2.0, jitter=True)
    for n in range(1, 12):
        ceiling = min(2.0, 0.2 * 2 ** (n - 1))
        for _ in range(50):
            assert ceiling / 2 <= jittery.delay(n) <= ceiling


async def test_client_sleeps_are_the_policy_delays():
    policy = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=1.5, jitter=False)
    c, _, sleeps = make(e.TransportError("reset"), policy=policy)
    with pytest.raises(e.TransportError):
        await c.order_query(out_trade_no="1415757673")
    assert sleeps.delays == [0.5, 1.0, 1.5]


async def test_run_with_retry_does_not_retry_plain_exceptions():
    calls = []

    async def attempt():
        calls.append(1)
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await run_with_retry(attempt, policy=RetryPolicy(), sleep=Sleeps())
    assert len(calls) == 1


def test_policy_rejects_nonsense():
    with pytest.raises(e.ConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(e.ConfigError):
        RetryPolicy(base_delay=-1)


# --- observer and logs ---------------------------------------------------------


async def test_observer_gets_one_record_per_attempt():
    records: list[CallRecord] = []
    c, _, _ = make(business_fail("SYSTEMERROR"), e.TransportError("reset"), load("orderquery_paid.xml"),
                   observer=records.append)
    await c.order_query(out_trade_no="1415757673")
    assert [(r.endpoint, r.ok, r.error_code) for r in records] == [
        ("orderquery", False, "SYSTEMERROR"),
        ("orderquery", False, "wechat_unreachable"),
        ("orderquery", True, None),
    ]
    assert all(r.latency_s >= 0 for r in records)


async def test_a_failing_observer_does_not_break_the_call():
    def broken(record):
        raise RuntimeError("dashboard down")

    c, _, _ = make(load("closeorder.xml"), observer=broken)
    assert (await c.close_order("1415757673")).result_msg == "OK"


async def test_logs_never_hold_the_key_or_the_bodies(caplog):
    caplog.set_level(logging.DEBUG, logger="wxpay")
    c, _, _ = make(business_fail("SYSTEMERROR"), load("unifiedorder_app.xml"))
    await c.unified_order(**BASE, retry=True)
    text = caplog.text
    assert "unifiedorder" in text and "SYSTEMERROR" in text
    assert API_KEY not in text
    assert "ORD20240301A001" not in text and "<xml>" not in text
