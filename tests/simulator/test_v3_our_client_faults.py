"""Every V3 fault the simulator offers, met by our client and our NotifyReader over real HTTP.

For each: the documented typed error and code, how many attempts were made (a retry only where
repeating is safe and the failure is transient), and what the simulator's order book holds after.
"""
from __future__ import annotations

import asyncio

import pytest

from wxpay import errors as e
from wxpay.simulator import demo
from wxpay.v3 import MerchantSigner, PaymentEvent, load_private_key

from .pay_server import running_sim
from .v3_ours import MCH, MP, OA, Calls, inbox, our_client, sim_clock  # noqa: F401

QUERY = "v3/pay/transactions/out-trade-no/{out_trade_no}"
NATIVE = "v3/pay/transactions/native"
ORDER = dict(description="Demo shop-tea", notify_url="http://127.0.0.1:9/notify", total=100)


@pytest.fixture
async def sim():
    async with running_sim() as srv:
        yield srv


def client_for(srv, trust: str = "public_key", **kw):
    srv.sim.v3.keyring(MCH).set_mode(trust)
    calls = Calls()
    return our_client(srv.base, sim_clock(srv), trust, calls=calls, **kw), calls


async def placed(client, no: str = "fault00001"):
    return await client.create_native_order(out_trade_no=no, **ORDER)


# --- replies that do not prove themselves: refused, never retried -----------------------------

BENT_REPLIES = [
    # fault, trust, the VerificationError code
    ("signtest", "public_key", "signtest_probe"),
    ("signtest", "platform_cert", "signtest_probe"),
    ("wrong_serial", "public_key", "unknown_serial"),  # names the platform certificate we do not hold
    ("wrong_serial", "platform_cert", "unknown_serial"),  # names the public key; a download would not help
    ("wrong_serial", "gray", "bad_signature"),  # we hold both: the named key did not sign it
    ("bad_sign", "public_key", "bad_signature"),
    ("bad_sign", "gray", "bad_signature"),
]


@pytest.mark.parametrize("kind, trust, code", BENT_REPLIES, ids=[f"{k}-{t}" for k, t, _ in BENT_REPLIES])
async def test_a_bent_reply_to_a_query_is_refused_once(sim, kind, trust, code):
    client, calls = client_for(sim, trust)
    await placed(client)
    downloads = len(client.transport.to("/v3/certificates"))
    sim.sim.faults.add(QUERY, kind)
    with pytest.raises(e.VerificationError) as exc:
        await client.query_by_out_trade_no("fault00001")
    assert exc.value.code == code and exc.value.request_id  # quotable to WeChat's support
    assert len(calls.attempts("v3/query")) == 1  # a reply that fails verification is never retried
    assert len(client.transport.to("/v3/certificates")) == downloads  # and no download storm
    assert (await client.query_by_out_trade_no("fault00001")).trade_state == "NOTPAY"  # the fault was one shot


async def test_a_probe_reply_to_an_order_is_refused_even_with_retry(sim):
    """The order exists at WeChat (the reply was bent, not the request): placing it again with the same
    out_trade_no is harmless and gives the same prepay_id."""
    client, calls = client_for(sim)
    sim.sim.faults.add("v3/pay/transactions/jsapi", "signtest")
    with pytest.raises(e.VerificationError) as exc:
        await client.create_jsapi_order(out_trade_no="fault00002", openid=sim.openid("alice"), retry=True, **ORDER)
    assert exc.value.code == "signtest_probe" and len(calls.attempts("v3/jsapi")) == 1
    order = sim.sim.pay.order(MCH, "fault00002")
    again = await client.create_jsapi_order(out_trade_no="fault00002", openid=sim.openid("alice"), **ORDER)
    assert again.prepay_id == order.prepay_id


@pytest.mark.parametrize("skew, accepted", [(-600, False), (600, False), (-299, True), (299, True), (-300, False)])
async def test_clock_skewed_replies_against_the_window(sim, skew, accepted):
    client, calls = client_for(sim)
    await placed(client)
    sim.sim.faults.add(QUERY, "clock_skew", seconds=skew)
    if accepted:
        assert (await client.query_by_out_trade_no("fault00001")).trade_state == "NOTPAY"
        return
    with pytest.raises(e.VerificationError) as exc:
        await client.query_by_out_trade_no("fault00001")
    assert exc.value.code == "stale_timestamp" and len(calls.attempts("v3/query")) == 1


async def test_our_own_clock_skew_is_wechats_sign_error(sim):
    """Our clock 10 minutes off: WeChat refuses the request timestamp (401 SIGN_ERROR), our message says why."""
    sim.sim.v3.keyring(MCH).set_mode("public_key")
    client = our_client(sim.base, lambda: sim.clock.now().timestamp() + 600)
    with pytest.raises(e.MerchantSetupError) as exc:
        await placed(client)
    assert (exc.value.http_status, exc.value.err_code) == (401, "SIGN_ERROR")
    assert "clock" in exc.value.message and "5分钟" in exc.value.err_code_des
    assert sim.sim.pay.order(MCH, "fault00001") is None


async def test_tampered_certificates_are_never_trusted(sim):
    client, calls = client_for(sim, "platform_cert")
    sim.sim.faults.add("v3/certificates", "tampered_ciphertext")
    with pytest.raises(e.DecryptError) as exc:
        await placed(client)
    assert exc.value.code == "undecryptable"
    assert client.certificates.certificates == () and sim.sim.pay.order(MCH, "fault00001") is None
    assert len(calls.attempts("v3/certificates")) == 1  # not a transient failure: not retried


async def test_tampered_certificates_during_the_gray_switch_keep_the_public_key(sim):
    """A refresh that fails keeps what is trusted: with the public key the call goes on."""
    client, calls = client_for(sim, "gray")
    sim.sim.faults.add("v3/certificates", "tampered_ciphertext")
    assert (await placed(client)).code_url
    assert client.certificates.certificates == ()
    assert [r.error_code for r in calls.attempts("v3/certificates")] == ["undecryptable"]


# --- malformed replies ----------------------------------------------------------------------------


async def test_a_malformed_signed_reply_is_a_protocol_error(sim):
    client, calls = client_for(sim)
    await placed(client)
    sim.sim.faults.add(QUERY, "malformed")
    with pytest.raises(e.ProtocolError) as exc:
        await client.query_by_out_trade_no("fault00001")
    assert exc.value.code == "malformed_json" and len(calls.attempts("v3/query")) == 1


async def test_a_malformed_error_reply_is_a_protocol_error(sim):
    client, calls = client_for(sim)
    sim.sim.faults.add(QUERY, "malformed")
    with pytest.raises(e.ProtocolError) as exc:
        await client.query_by_out_trade_no("nosuch0001")  # a 404 whose JSON is cut short
    assert (exc.value.code, exc.value.http_status) == ("malformed_error_reply", 404)


# --- transient failures: retried only where safe ---------------------------------------------------


@pytest.mark.parametrize("kind, cls, code", [
    ("http500", e.TransportError, None),
    ("systemerror", e.RetryableBusinessError, "SYSTEM_ERROR"),
])
async def test_a_transient_failure_of_a_query_is_retried(sim, kind, cls, code):
    client, calls = client_for(sim)
    await placed(client)
    sim.sim.faults.add(QUERY, kind)
    assert (await client.query_by_out_trade_no("fault00001")).trade_state == "NOTPAY"
    assert [r.ok for r in calls.attempts("v3/query")] == [False, True]
    sim.sim.faults.add(QUERY, kind, count=None)  # sticky: the cap holds
    with pytest.raises(cls) as exc:
        await client.query_by_out_trade_no("fault00001")
    assert len(calls.attempts("v3/query")) == 2 + 3 and exc.value.retryable
    if code:
        assert (exc.value.http_status, exc.value.err_code) == (500, code)
    else:
        assert exc.value.http_status == 500


@pytest.mark.parametrize("kind", ["http500", "systemerror"])
async def test_a_transient_failure_of_an_order_is_retried_only_when_asked(sim, kind):
    client, calls = client_for(sim)
    sim.sim.faults.add(NATIVE, kind)
    with pytest.raises(e.WxPayError) as exc:
        await placed(client)
    assert exc.value.retryable and len(calls.attempts("v3/native")) == 1
    assert sim.sim.pay.order(MCH, "fault00001") is None  # the fault came before the order was made
    sim.sim.faults.add(NATIVE, kind)
    assert (await client.create_native_order(out_trade_no="fault00001", retry=True, **ORDER)).code_url
    assert len(calls.attempts("v3/native")) == 3


async def test_a_close_retries_through_a_system_error(sim):
    client, calls = client_for(sim)
    await placed(client)
    sim.sim.faults.add("v3/pay/transactions/out-trade-no/{out_trade_no}/close", "systemerror")
    assert await client.close_order("fault00001") is None
    assert [r.ok for r in calls.attempts("v3/close")] == [False, True]
    assert sim.sim.pay.order(MCH, "fault00001").trade_state == "CLOSED"


async def test_latency_beyond_the_timeout(sim):
    """A slow WeChat: the query times out and is retried; an order times out once (it may exist at WeChat:
    placing it again with the same out_trade_no returns it)."""
    client, calls = client_for(sim, request_timeout=0.3)
    await placed(client)
    sim.sim.faults.add(QUERY, "latency", seconds=0.6)
    assert (await client.query_by_out_trade_no("fault00001")).trade_state == "NOTPAY"
    assert [r.error_code for r in calls.attempts("v3/query")] == ["wechat_timeout", None]
    sim.sim.faults.add(NATIVE, "latency", seconds=0.6)
    with pytest.raises(e.WxTimeoutError):
        await placed(client, "fault00003")
    assert len(calls.attempts("v3/native")) == 2
    again = await placed(client, "fault00003")  # the slow attempt did create it
    assert again.code_url == sim.sim.pay.order(MCH, "fault00003").code_url


async def test_rate_limited_is_never_retried(sim):
    client, calls = client_for(sim)
    await placed(client)
    sim.sim.faults.add(QUERY, "frequency_limited", count=None)
    with pytest.raises(e.RateLimitedError) as exc:
        await client.query_by_out_trade_no("fault00001")
    assert (exc.value.http_status, exc.value.err_code) == (429, "FREQUENCY_LIMITED")
    assert len(calls.attempts("v3/query")) == 1  # WeChat asks for a pause, which is the caller's to take


async def test_not_enough_refuses_a_refund_and_changes_nothing(sim):
    client, calls = client_for(sim)
    await placed(client)
    order = sim.sim.pay.order(MCH, "fault00001")
    assert sim.sim.pay.pay(order, "ok")
    sim.sim.faults.add("v3/refund/domestic/refunds", "not_enough")
    with pytest.raises(e.NotEnoughError) as exc:
        await client.refund(out_refund_no="fault-r1", out_trade_no="fault00001", refund=10, total=100, retry=True)
    assert (exc.value.http_status, exc.value.err_code) == (403, "NOT_ENOUGH")
    assert len(calls.attempts("v3/refund")) == 1
    with pytest.raises(e.RefundNotExistError):
        await client.query_refund("fault-r1")
    assert (await client.refund(out_refund_no="fault-r1", out_trade_no="fault00001", refund=10, total=100)).amount.refund == 10


# --- business refusals: the typed error for each code ----------------------------------------------


async def test_business_refusals_are_typed(sim):
    client, _ = client_for(sim)
    await placed(client)
    paid = await client.create_jsapi_order(out_trade_no="fault00004", openid=sim.openid("alice"), **ORDER)
    assert sim.sim.pay.pay(sim.sim.pay.order_by_prepay(paid.prepay_id), "ok")
    cases = [
        (client.query_by_out_trade_no("nosuch0001"), e.OrderNotExistError, 404, "ORDER_NOT_EXIST"),
        (client.query_by_transaction_id("4200000000000000000000000000"), e.OrderNotExistError, 404,
         "ORDER_NOT_EXIST"),
        (client.close_order("nosuch0001"), e.OrderNotExistError, 404, "ORDER_NOT_EXIST"),
        (client.create_native_order(out_trade_no="fault00001", description="Other tea",
                                    notify_url="http://127.0.0.1:9/notify", total=100),
         e.OutTradeNoUsedError, 403, "OUT_TRADE_NO_USED"),
        (client.create_jsapi_order(out_trade_no="fault00004", openid=sim.openid("alice"), **ORDER),
         e.OrderPaidError, 403, "ORDERPAID"),
        (client.create_jsapi_order(out_trade_no="fault00005", openid=sim.openid("alice", MP), **ORDER),
         e.OpenidMismatchError, 400, "PARAM_ERROR"),  # an openid of another appid
        (client.create_native_order(out_trade_no="fault00006", appid="wx00000000unbound", **ORDER),
         e.MerchantSetupError, 400, "APPID_MCHID_NOT_MATCH"),
        (client.create_app_order(out_trade_no="fault00007", appid=OA, **ORDER), e.InvalidRequestError, 400,
         "INVALID_REQUEST"),  # an Official Account appid on /app
        (client.refund(out_refund_no="fault-r2", out_trade_no="nosuch0001", refund=1, total=100),
         e.OrderNotExistError, 404, "RESOURCE_NOT_EXISTS"),
        (client.refund(out_refund_no="fault-r3", out_trade_no="fault00004", refund=1, total=99),
         e.InvalidRequestError, 400, "INVALID_REQUEST"),  # total is not the order's
        (client.query_refund("nosuch-r1"), e.RefundNotExistError, 404, "RESOURCE_NOT_EXISTS"),
    ]
    for call, cls, status, code in cases:
        with pytest.raises(cls) as exc:
            await call
        assert (type(exc.value), exc.value.http_status, exc.value.err_code) == (cls, status, code), exc.value
        assert exc.value.err_code_des and exc.value.request_id
    await client.close_order("fault00001")
    with pytest.raises(e.OrderClosedError) as exc:
        await client.close_order("fault00001")
    assert (exc.value.http_status, exc.value.err_code) == (400, "ORDER_CLOSED")


async def test_a_request_signed_with_another_key_or_serial_is_sign_error(sim):
    client, _ = client_for(sim)
    wrong_key = load_private_key(demo.v3_pem("wechatpay_pub_key_PRIVATE_TEST_ONLY.pem"))  # WeChat's, not ours
    our_key = load_private_key(demo.v3_pem("apiclient_key.pem"))
    for signer in (MerchantSigner(MCH, demo.MERCHANT_SERIAL_NO, wrong_key, clock=sim_clock(sim)),
                   MerchantSigner(MCH, "5" * 40, our_key, clock=sim_clock(sim))):
        client.signer = signer
        with pytest.raises(e.MerchantSetupError) as exc:
            await placed(client)
        assert (exc.value.http_status, exc.value.err_code) == (401, "SIGN_ERROR")
    assert sim.sim.pay.order(MCH, "fault00001") is None


# --- notifies -----------------------------------------------------------------------------------------


async def paid_notify(srv, client, inbox, no: str = "notif00001"):  # noqa: F811
    inbox.client = client
    await client.create_native_order(out_trade_no=no, description="Demo shop-tea", notify_url=inbox.url, total=100)
    order = srv.sim.pay.order(MCH, no)
    assert srv.sim.pay.pay(order, "ok")
    return await srv.sim.notifier.wait(srv.sim.paid(order).id)


async def test_a_probe_notify_is_refused_and_the_real_one_read(sim, inbox):  # noqa: F811
    client, _ = client_for(sim)
    sim.sim.faults.add("notify", "signtest")
    delivery = await paid_notify(sim, client, inbox)
    assert [(a.verdict, a.status) for a in delivery.attempts] == [("probe_rejected", 500), ("success", 204)]
    assert inbox.refused_codes == ["signtest_probe"]
    [event] = inbox.events
    assert isinstance(event, PaymentEvent) and event.transaction.out_trade_no == "notif00001"


NOTIFY_FAULTS = [
    ("wrong_serial", "public_key", "unknown_serial"),
    ("wrong_serial", "gray", "bad_signature"),
    ("bad_sign", "public_key", "bad_signature"),
    ("tampered_ciphertext", "public_key", "undecryptable"),
    ("tampered_ciphertext", "platform_cert", "undecryptable"),
]


@pytest.mark.parametrize("kind, trust, code", NOTIFY_FAULTS, ids=[f"{k}-{t}" for k, t, _ in NOTIFY_FAULTS])
async def test_a_bent_notify_is_refused_then_the_retry_read(sim, inbox, kind, trust, code):  # noqa: F811
    client, _ = client_for(sim, trust)
    sim.sim.faults.add("notify", kind)
    delivery = await paid_notify(sim, client, inbox)
    assert [(a.verdict, a.status) for a in delivery.attempts] == [("fail", 500), ("success", 204)]
    assert inbox.refused_codes == [code]
    assert [ev.transaction.out_trade_no for ev in inbox.events] == ["notif00001"]


@pytest.mark.parametrize("skew, refused", [(3600, True), (-400, True), (-250, False)])
async def test_a_clock_skewed_notify(sim, inbox, skew, refused):  # noqa: F811
    client, _ = client_for(sim)
    sim.sim.faults.add("notify", "clock_skew", seconds=skew)
    await paid_notify(sim, client, inbox)
    assert inbox.refused_codes == (["stale_timestamp"] if refused else [])
    assert len(inbox.events) == 1


async def test_a_tampered_refund_notify(sim, inbox):  # noqa: F811
    client, _ = client_for(sim)
    await paid_notify(sim, client, inbox)
    sim.sim.faults.add("refund_notify", "tampered_ciphertext")
    await client.refund(out_refund_no="notif-r1", out_trade_no="notif00001", refund=50, total=100,
                        notify_url=inbox.url)
    await sim.sim.notifier.wait(sim.sim.notifier.list("refund", "notif-r1")[0]["id"])
    assert inbox.refused_codes == ["undecryptable"]
    assert inbox.events[-1].refund.out_refund_no == "notif-r1" and inbox.events[-1].event_type == "REFUND.SUCCESS"


async def test_dropped_and_duplicated_notifies(sim, inbox):  # noqa: F811
    """A lost attempt is retried; a burst of copies is read copy by copy, each with the same event id
    (the receiver dedupes by it), each verified on its own."""
    client, _ = client_for(sim)
    sim.sim.faults.add("notify", "drop")
    sim.sim.faults.add("notify", "duplicate", n=3)
    delivery = await paid_notify(sim, client, inbox)
    assert [a.verdict for a in delivery.attempts] == ["dropped", "success", "success", "success"]
    assert len(inbox.events) == 3 and len({ev.id for ev in inbox.events}) == 1
    assert len({ev.transaction for ev in inbox.events}) == 1 and inbox.refused == []


async def test_an_early_notify_lands_before_the_order_reply(sim, inbox):  # noqa: F811
    client, _ = client_for(sim)
    inbox.client = client
    sim.sim.faults.add(NATIVE, "early")
    reply = await client.create_native_order(out_trade_no="early00001", description="Demo shop-tea",
                                             notify_url=inbox.url, total=100)
    assert reply.code_url and [ev.transaction.out_trade_no for ev in inbox.events] == ["early00001"]
    assert (await client.query_by_out_trade_no("early00001")).trade_state == "SUCCESS"


async def test_a_refund_retried_after_a_timeout_is_one_refund(sim):
    """retry=True on a refund is safe because the same out_refund_no is the same refund: the second
    attempt and the first one (still running at WeChat when we gave up on it) make one refund together,
    and the money goes back once."""
    client, calls = client_for(sim, request_timeout=0.3)
    await placed(client)
    assert sim.sim.pay.pay(sim.sim.pay.order(MCH, "fault00001"), "ok")
    sim.sim.faults.add("v3/refund/domestic/refunds", "latency", seconds=0.6)
    refund = await client.refund(out_refund_no="fault-r9", out_trade_no="fault00001", refund=40, total=100,
                                 retry=True)
    assert [r.error_code for r in calls.attempts("v3/refund")] == ["wechat_timeout", None]
    await asyncio.sleep(0.5)  # until the abandoned first attempt has run at the simulator too
    assert refund.amount.refund == 40 and len(sim.sim.pay.refunds) == 1
    assert sim.sim.pay.order(MCH, "fault00001").refunded_fee == 40
