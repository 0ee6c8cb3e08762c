"""Our APIv3 client against the simulator over real HTTP: every call in every key mode, the notifies
read by our NotifyReader, the gray switch, and orders crossing API versions.

Both halves were written apart (``wxpay/v3/`` from the digest, ``wxpay/simulator/v3/`` from the
digest); here each is the other's counterpart, with nothing in between but loopback HTTP.
"""
from __future__ import annotations

import asyncio
from datetime import date

import pytest

from wxpay import errors as e
from wxpay.bill import NoBillError
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.merchant import Merchant
from wxpay.v3 import PaymentEvent, RefundEvent
from wxpay.v3.payloads import app_payload, jsapi_payloads, mini_program_payload

from .pay_server import KEY, cert_pair, running_sim  # noqa: F401
from .v3_ours import APP, MCH, MP, OA, PLATFORM, PUB_ID, Calls, inbox, our_client, sim_clock  # noqa: F401

SERIAL = {"public_key": PUB_ID, "platform_cert": PLATFORM, "gray": PUB_ID}  # gray: we name the public key first


async def pay_with(srv, prepay_id: str, payload: dict) -> int:
    """The shopper confirms in WeChat: the simulator checks the page's RSA paySign like the app does."""
    status, paid = await srv.post_json("/_sim/pay", {"prepay_id": prepay_id, "outcome": "ok", "payload": payload})
    assert status == 200 and paid["ok"], paid
    return paid["notify_delivery"]


async def settle(srv, delivery_id: int):
    return await srv.sim.notifier.wait(delivery_id)


@pytest.mark.parametrize("trust", ["public_key", "platform_cert", "gray"])
async def test_every_call_in_each_key_mode(trust, inbox):  # noqa: F811
    async with running_sim() as srv:
        srv.sim.v3.keyring(MCH).set_mode(trust)
        calls = Calls()
        client = our_client(srv.base, sim_clock(srv), trust, calls=calls)
        inbox.client = client
        order = dict(description="Demo shop-tea", notify_url=inbox.url, total=100)

        # Orders: JSAPI (Official Account), JSAPI with the Mini Program's appid, App, Native, H5.
        jsapi = await client.create_jsapi_order(out_trade_no="ours000001", openid=srv.openid("alice"), **order)
        mini = await client.create_jsapi_order(out_trade_no="ours000002", openid=srv.openid("alice", MP), appid=MP,
                                               **order)
        app = await client.create_app_order(out_trade_no="ours000003", appid=APP, **order)
        native = await client.create_native_order(out_trade_no="ours000004", **order)
        h5 = await client.create_h5_order(out_trade_no="ours000005", payer_client_ip="127.0.0.1", **order)
        assert native.code_url.startswith("weixin://wxpay/bizpayurl?pr=")
        assert h5.h5_url.startswith(srv.base + "/_sim/mweb?prepay_id=")
        assert srv.sim.pay.order(MCH, "ours000002").appid == MP

        # The front end pays with our RSA payloads; the simulator checks each paySign with the merchant's key.
        bridge, choose = jsapi_payloads(client.signer, OA, jsapi.prepay_id)
        paid = [await pay_with(srv, jsapi.prepay_id, bridge.to_dict())]
        assert choose.to_dict()["paySign"] == bridge.to_dict()["paySign"]
        paid.append(await pay_with(srv, mini.prepay_id, mini_program_payload(client.signer, MP, mini.prepay_id).to_dict()))
        paid.append(await pay_with(srv, app.prepay_id, app_payload(client.signer, APP, app.prepay_id).to_dict()))
        for delivery_id in paid:
            assert (await settle(srv, delivery_id)).state == "delivered"
        assert [type(ev) for ev in inbox.events] == [PaymentEvent] * 3 and inbox.statuses == [204] * 3
        got = {ev.transaction.out_trade_no: ev.transaction for ev in inbox.events}
        assert set(got) == {"ours000001", "ours000002", "ours000003"}
        assert (got["ours000002"].appid, got["ours000002"].trade_type) == (MP, "JSAPI")
        assert (got["ours000003"].appid, got["ours000003"].trade_type) == (APP, "APP")
        assert all(t.amount.total == 100 and t.mchid == MCH for t in got.values())

        # Queries both ways; close; a paid order cannot be closed.
        by_no = await client.query_by_out_trade_no("ours000001")
        assert by_no.trade_state == "SUCCESS" and by_no.transaction_id == got["ours000001"].transaction_id
        by_id = await client.query_by_transaction_id(by_no.transaction_id)
        assert by_id.out_trade_no == "ours000001" and by_id.success_time == got["ours000001"].success_time
        assert (await client.query_by_out_trade_no("ours000005")).trade_state == "NOTPAY"
        assert await client.close_order("ours000004") is None
        assert (await client.query_by_out_trade_no("ours000004")).trade_state == "CLOSED"
        with pytest.raises(e.OrderPaidError):
            await client.close_order("ours000001")

        # Refund (notified to the inbox) and refund query.
        refund = await client.refund(out_refund_no="ours-r|1@a", out_trade_no="ours000001", refund=40, total=100,
                                     notify_url=inbox.url, reason="Demo refund")
        assert (refund.refund_status, refund.amount.refund, refund.out_trade_no) == ("SUCCESS", 40, "ours000001")
        [delivery] = srv.sim.notifier.list("refund", "ours-r|1@a")
        assert (await settle(srv, delivery["id"])).state == "delivered"
        event = inbox.events[-1]
        assert isinstance(event, RefundEvent) and event.event_type == "REFUND.SUCCESS"
        assert (event.refund.out_refund_no, event.refund.refund_id, event.refund.amount.refund) == \
            ("ours-r|1@a", refund.refund_id, 40)
        queried = await client.query_refund("ours-r|1@a")
        assert queried.refund_id == refund.refund_id and queried.refund_status == "SUCCESS"
        assert (await client.query_by_out_trade_no("ours000001")).trade_state == "REFUND"

        # Bills, both steps, the next day (plain and gzip; the file step is unsigned but SHA1-checked).
        srv.clock.advance(days=1)
        bill = await client.trade_bill(date(2026, 1, 5))
        assert bill.summary.total_count == 4  # three payments and the refund
        assert sorted({r.out_trade_no for r in bill.rows}) == ["ours000001", "ours000002", "ours000003"]
        gz = await client.trade_bill(date(2026, 1, 5), gzip=True)
        assert gz.rows == bill.rows
        refunds_only = await client.trade_bill(date(2026, 1, 5), "REFUND")
        assert [r.out_refund_no for r in refunds_only.rows] == ["ours-r|1@a"]
        flow = await client.fund_flow_bill(date(2026, 1, 5))
        assert flow.summary.income_fen == 300 and flow.summary.expense_fen == 40 + 3 * 1  # refund + three 0.6 % fees
        with pytest.raises(NoBillError):
            await client.trade_bill(date(2026, 1, 3))

        # What was trusted, and which key signed: every request names ours, every reply is signed with it.
        signed = [(q, r) for q, r in client.transport.exchanges if "/v3/billdownload/" not in q.url]
        named = [q.headers.get("Wechatpay-Serial") for q, _ in signed]
        if trust == "platform_cert":  # the first download names no key: none is trusted yet
            assert "/v3/certificates" in signed[0][0].url and named[0] is None
            named = named[1:]
        assert set(named) == {SERIAL[trust]}
        assert {r.header("Wechatpay-Serial") for _, r in signed} == {SERIAL[trust]}
        files = client.transport.to("/v3/billdownload/")
        assert len(files) == 4 and all(r.header("Wechatpay-Signature") is None for _, r in files)
        certificate_downloads = client.transport.to("/v3/certificates")
        if trust == "public_key":
            assert certificate_downloads == []
        else:
            # once before the first call, once more after a day (refresh_every is 12 h)
            assert len(certificate_downloads) == 2 and client.certificates.knows(PLATFORM)
            assert [c.serial_no for c in await client.download_certificates()] == [PLATFORM]
        assert [(r.endpoint, r.error_code) for r in calls.records if not r.ok] == \
            [("v3/close", "ORDERPAID"), ("v3/tradebill", "NO_STATEMENT_EXIST")]  # the two refusals asked for
        assert inbox.refused == []


async def test_a_public_key_merchant_configured_with_certificates_is_told_to_use_the_public_key():
    async with running_sim() as srv:  # the demo merchant is in public_key mode
        client = our_client(srv.base, sim_clock(srv), "platform_cert")
        with pytest.raises(e.PlatformCertificatesUnavailableError) as exc:
            await client.query_by_out_trade_no("ours000001")
        assert (exc.value.http_status, exc.value.err_code) == (404, "RESOURCE_NOT_EXISTS")
        assert "public key" in exc.value.message
        assert len(client.transport.exchanges) == 1  # the download was the only request: nothing unverifiable sent


async def test_a_client_that_holds_only_the_public_key_refuses_replies_it_cannot_check():
    """A certificate-mode merchant whose client knows only the public key: WeChat's reply to a request that
    names the public key is refused as 400 INVALID_REQUEST (W19), never trusted."""
    async with running_sim() as srv:
        srv.sim.v3.keyring(MCH).set_mode("platform_cert")
        client = our_client(srv.base, sim_clock(srv), "public_key")
        with pytest.raises(e.InvalidRequestError) as exc:
            await client.query_by_out_trade_no("ours000001")
        assert (exc.value.http_status, exc.value.err_code) == (400, "INVALID_REQUEST")


# --- the gray switch ----------------------------------------------------------------------


async def gray_notifies(share: float, seed: int, count: int, inbox, trust: str = "gray"):  # noqa: F811
    """``count`` payment notifies of one paid order under the gray switch at ``share``; what our reader saw."""
    async with running_sim() as srv:
        srv.sim.v3.keyring(MCH).set_mode("gray", share, seed)
        client = our_client(srv.base, sim_clock(srv), trust)
        inbox.client = client
        await client.create_native_order(out_trade_no="gray000001", description="Demo shop-tea",
                                         notify_url=inbox.url, total=100)
        order = srv.sim.pay.order(MCH, "gray000001")
        assert srv.sim.pay.pay(order, "ok")
        for _ in range(count):
            await srv.sim.notifier.wait(srv.sim.paid(order).id)
        return srv, client


@pytest.mark.parametrize("share, serials", [(0.0, {PLATFORM}), (1.0, {PUB_ID})])
async def test_gray_share_zero_and_one(share, serials, inbox):  # noqa: F811
    srv, client = await gray_notifies(share, 3, 8, inbox)
    assert {ev.serial for ev in inbox.events} == serials and len(inbox.events) == 8
    assert inbox.refused == [] and inbox.statuses == [204] * 8
    assert all(ev.transaction.out_trade_no == "gray000001" for ev in inbox.events)


async def test_gray_share_fraction_every_notify_verified_under_the_key_it_names(inbox):  # noqa: F811
    srv, client = await gray_notifies(0.3, 7, 40, inbox)
    serials = [ev.serial for ev in inbox.events]
    assert inbox.refused == [] and len(serials) == 40
    assert set(serials) == {PUB_ID, PLATFORM}  # both keys, each verified with itself
    assert serials == [h["Wechatpay-Serial"] for h in inbox.headers]
    # One download of the platform certificates, however many notifies named them.
    assert len(client.transport.to("/v3/certificates")) == 1


async def test_gray_notifies_learnt_before_any_call(inbox):  # noqa: F811
    """A platform-signed notify that arrives before the client ever called WeChat: the reader downloads the
    certificates once (bounded), then verifies."""
    async with running_sim() as srv:
        srv.sim.v3.keyring(MCH).set_mode("gray", 0.0, 1)
        client = our_client(srv.base, sim_clock(srv), "gray")
        inbox.client = client
        placer = our_client(srv.base, sim_clock(srv), "public_key")  # another process placed the order
        await placer.create_native_order(out_trade_no="gray000002", description="Demo shop-tea",
                                         notify_url=inbox.url, total=100)
        assert srv.sim.pay.pay(srv.sim.pay.order(MCH, "gray000002"), "ok")
        await srv.sim.notifier.wait(srv.sim.paid(srv.sim.pay.order(MCH, "gray000002")).id)
        assert [ev.serial for ev in inbox.events] == [PLATFORM]
        assert len(client.transport.to("/v3/certificates")) == 1


async def test_a_receiver_holding_one_key_refuses_the_other_until_a_retry_uses_its_key(inbox):  # noqa: F811
    """Mid-switch with only the public key configured: a notify signed by the platform certificate is refused
    (unknown_serial, 500); WeChat retries with a fresh draw until one is signed with the public key."""
    srv, client = await gray_notifies(0.5, 2, 1, inbox, trust="public_key")  # seed 2 draws 0.96, 0.95, 0.06
    assert inbox.refused_codes == ["unknown_serial", "unknown_serial"]
    assert [h["Wechatpay-Serial"] for h in inbox.headers] == [PLATFORM, PLATFORM, PUB_ID]
    assert [ev.serial for ev in inbox.events] == [PUB_ID] and inbox.statuses == [500, 500, 204]


# --- orders crossing versions ----------------------------------------------------------------


async def test_a_v2_order_queried_closed_and_refunded_through_v3(inbox, cert_pair):  # noqa: F811
    async with running_sim() as srv:
        v2 = WxPayClient(Merchant(MCH, KEY, OA, cert_path=cert_pair[0], key_path=cert_pair[1]),
                         endpoints=Endpoints.single(srv.base))
        v3 = our_client(srv.base, sim_clock(srv))
        inbox.client = v3
        common = dict(total_fee=100, body="Demo-tea", notify_url="http://127.0.0.1:9/v2notify",
                      spbill_create_ip="127.0.0.1")
        await v2.unified_order(trade_type="NATIVE", out_trade_no="cross2v301", product_id="tea", **common)
        await v2.unified_order(trade_type="JSAPI", out_trade_no="cross2v302", openid=srv.openid("bob"), **common)

        unpaid = await v3.query_by_out_trade_no("cross2v301")
        assert (unpaid.trade_state, unpaid.amount.total, unpaid.appid) == ("NOTPAY", 100, OA)
        await v3.close_order("cross2v301")
        assert (await v2.order_query(out_trade_no="cross2v301")).trade_state == "CLOSED"

        order = srv.sim.pay.order(MCH, "cross2v302")
        assert srv.sim.pay.pay(order, "ok", openid=srv.openid("bob"))
        paid = await v3.query_by_transaction_id(order.transaction_id)
        assert (paid.out_trade_no, paid.trade_type, paid.openid) == ("cross2v302", "JSAPI", srv.openid("bob"))
        refund = await v3.refund(out_refund_no="cross2v3-r1", transaction_id=order.transaction_id, refund=30,
                                 total=100, notify_url=inbox.url)
        assert refund.amount.refund == 30
        await srv.sim.notifier.wait(srv.sim.notifier.list("refund", "cross2v3-r1")[0]["id"])
        assert inbox.events[-1].refund.out_refund_no == "cross2v3-r1"  # a V3 refund notifies in V3 form
        v2_view = await v2.refund_query(out_trade_no="cross2v302")
        assert [r.out_refund_no for r in v2_view.refunds] == ["cross2v3-r1"] and v2_view.refunds[0].refund_fee == 30
        with pytest.raises(e.InvalidRequestError) as over:
            await v3.refund(out_refund_no="cross2v3-r2", out_trade_no="cross2v302", refund=71, total=100)
        assert over.value.err_code == "INVALID_REQUEST"


async def test_a_v3_order_queried_closed_and_refunded_through_v2(inbox, cert_pair):  # noqa: F811
    async with running_sim() as srv:
        v2 = WxPayClient(Merchant(MCH, KEY, OA, cert_path=cert_pair[0], key_path=cert_pair[1]),
                         endpoints=Endpoints.single(srv.base))
        v3 = our_client(srv.base, sim_clock(srv))
        inbox.client = v3
        await v3.create_native_order(out_trade_no="cross3v201", description="Demo-tea", notify_url=inbox.url,
                                     total=100)
        jsapi = await v3.create_jsapi_order(out_trade_no="cross3v202", description="Demo-tea", notify_url=inbox.url,
                                            total=100, openid=srv.openid("bob"))
        assert (await v2.order_query(out_trade_no="cross3v201")).trade_state == "NOTPAY"
        srv.clock.advance(minutes=6)  # V2's closeorder keeps its five-minute rule
        await v2.close_order("cross3v201")
        assert (await v3.query_by_out_trade_no("cross3v201")).trade_state == "CLOSED"

        bridge, _ = jsapi_payloads(v3.signer, OA, jsapi.prepay_id)
        await settle(srv, await pay_with(srv, jsapi.prepay_id, bridge.to_dict()))
        [event] = inbox.events  # placed through V3: notified in V3 form
        queried = await v2.order_query(transaction_id=event.transaction.transaction_id)
        assert (queried.out_trade_no, queried.total_fee, queried.trade_state) == ("cross3v202", 100, "SUCCESS")
        refund = await v2.refund(out_refund_no="cross3v2-r1", out_trade_no="cross3v202", total_fee=100, refund_fee=25)
        assert refund.refund_fee == 25
        through_v3 = await v3.query_refund("cross3v2-r1")
        assert (through_v3.refund_status, through_v3.amount.refund, through_v3.refund_id) == \
            ("SUCCESS", 25, refund.refund_id)
        assert (await v3.query_by_out_trade_no("cross3v202")).trade_state == "REFUND"


async def test_concurrent_calls_share_one_certificate_download():
    async with running_sim() as srv:
        srv.sim.v3.keyring(MCH).set_mode("platform_cert")
        placer = our_client(srv.base, sim_clock(srv), "platform_cert")
        await placer.create_native_order(out_trade_no="conc000001", description="Demo shop-tea",
                                         notify_url="http://127.0.0.1:9/n", total=100)
        client = our_client(srv.base, sim_clock(srv), "platform_cert")  # nothing trusted yet
        results = await asyncio.gather(*(client.query_by_out_trade_no("conc000001") for _ in range(6)))
        assert {r.trade_state for r in results} == {"NOTPAY"}
        assert len(client.transport.to("/v3/certificates")) == 1



# --- what the first pass did not cover: refund outcomes, echoed fields, every bill type --------------


@pytest.mark.parametrize("outcome, event_type", [("SUCCESS", "REFUND.SUCCESS"), ("CLOSED", "REFUND.CLOSED"),
                                                 ("ABNORMAL", "REFUND.ABNORMAL")])
async def test_a_processing_refund_and_each_outcome_notified(outcome, event_type, inbox):  # noqa: F811
    async with running_sim() as srv:
        srv.sim.pay.auto_settle_refunds = False
        client = our_client(srv.base, sim_clock(srv))
        inbox.client = client
        await client.create_native_order(out_trade_no="rfout00001", description="Demo shop-tea",
                                         notify_url="http://127.0.0.1:9/n", total=100)
        assert srv.sim.pay.pay(srv.sim.pay.order(MCH, "rfout00001"), "ok")
        accepted = await client.refund(out_refund_no="rfout-1", out_trade_no="rfout00001", refund=60, total=100,
                                       notify_url=inbox.url)
        assert accepted.refund_status == "PROCESSING" and accepted.success_time is None
        again = await client.refund(out_refund_no="rfout-1", out_trade_no="rfout00001", refund=60, total=100)
        assert again.refund_id == accepted.refund_id  # the same out_refund_no is the same refund
        assert (await client.query_refund("rfout-1")).refund_status == "PROCESSING"
        delivery = srv.sim.settle_refund(srv.sim.pay.refund_by_no(MCH, "rfout-1"), outcome)
        await srv.sim.notifier.wait(delivery.id)
        [event] = inbox.events
        assert isinstance(event, RefundEvent) and event.event_type == event_type
        assert (event.refund.refund_status, event.refund.refund_id) == (outcome, accepted.refund_id)
        assert (event.refund.success_time is not None) == (outcome == "SUCCESS")
        assert (await client.query_refund("rfout-1")).refund_status == outcome


async def test_attach_and_time_expire_travel_both_ways(inbox):  # noqa: F811
    from datetime import timedelta
    async with running_sim() as srv:
        client = our_client(srv.base, sim_clock(srv))
        inbox.client = client
        expire = srv.clock.now() + timedelta(minutes=30)
        jsapi = await client.create_jsapi_order(out_trade_no="echo000001", description="形象店-深圳腾大-QQ公仔",
                                                notify_url=inbox.url, total=1, openid=srv.openid("carol"),
                                                attach="ref-7 ✓", time_expire=expire)
        order = srv.sim.pay.order(MCH, "echo000001")
        assert order.time_expire == expire and order.body == "形象店-深圳腾大-QQ公仔"
        assert (await client.query_by_out_trade_no("echo000001")).attach == "ref-7 ✓"
        bridge, _ = jsapi_payloads(client.signer, OA, jsapi.prepay_id)
        await settle(srv, await pay_with(srv, jsapi.prepay_id, bridge.to_dict()))
        [event] = inbox.events
        assert (event.transaction.attach, event.transaction.openid) == ("ref-7 ✓", srv.openid("carol"))


@pytest.mark.parametrize("bill_type", ["ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND", "ALL_SPECIAL", "SUC_SPECIAL",
                                       "REF_SPECIAL"])
async def test_every_trade_bill_type_our_client_may_ask_for(bill_type):
    async with running_sim() as srv:
        client = our_client(srv.base, sim_clock(srv))
        await client.create_native_order(out_trade_no="bill000001", description="Demo shop-tea",
                                         notify_url="http://127.0.0.1:9/n", total=100)
        assert srv.sim.pay.pay(srv.sim.pay.order(MCH, "bill000001"), "ok")
        await client.refund(out_refund_no="bill-r1", out_trade_no="bill000001", refund=10, total=100)
        srv.clock.advance(days=1)
        if bill_type == "RECHARGE_REFUND":  # refunds of recharge coupons: none that day
            with pytest.raises(NoBillError):
                await client.trade_bill(date(2026, 1, 5), bill_type)
            return
        bill = await client.trade_bill(date(2026, 1, 5), bill_type)
        assert [r.out_refund_no or None for r in bill.rows] == (
            ["bill-r1"] if bill_type in ("REFUND", "REF_SPECIAL") else [None] if bill_type in ("SUCCESS", "SUC_SPECIAL")
            else [None, "bill-r1"])


async def test_a_payment_notify_delivered_after_a_refund_still_says_success(inbox):  # noqa: F811
    """WeChat retries a payment notify for a day; the merchant may refund meanwhile (having confirmed
    the payment by a query). The retried TRANSACTION.SUCCESS is the payment as it succeeded, so our
    reader, which refuses a TRANSACTION.SUCCESS whose trade_state is not SUCCESS, still accepts it."""
    async with running_sim() as srv:
        client = our_client(srv.base, sim_clock(srv))
        inbox.client = client
        await client.create_native_order(out_trade_no="late000001", description="Demo shop-tea",
                                         notify_url=inbox.url, total=100)
        order = srv.sim.pay.order(MCH, "late000001")
        assert srv.sim.pay.pay(order, "ok")
        delivery = srv.sim.paid(order, start=False)  # its first attempt has not gone out yet
        await client.refund(out_refund_no="late-r1", out_trade_no="late000001", refund=30, total=100)
        assert (await client.query_by_out_trade_no("late000001")).trade_state == "REFUND"
        await srv.sim.notifier.deliver_first_now(delivery)
        assert inbox.refused == [] and inbox.statuses == [204]
        [event] = inbox.events
        assert (event.transaction.trade_state, event.transaction.amount.total) == ("SUCCESS", 100)
