"""The gateway contract, the same behaviour tests for APIv2 and APIv3.

Each test runs against both implementations, through the simulated WeChat
over real HTTP on loopback: the payloads are checked the way the WeChat app
checks them (the simulator verifies paySign), notifies arrive at a real
receiver and are read from its raw headers and body. What only one version
has lives in test_v2_gateway.py and test_v3_gateway.py.
"""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from wxpay import errors
from wxpay.gateway import H5Site, NotifyVerdict, OrderIdentity, Outcome, PaymentNotice, ProvenPayment, \
    RefundNotice, RefundRequest, Refusal
from tests.simulator.pay_server import APP, KEY, MCH, MP, OA, START, cert_pair, simsrv  # noqa: F401
from .gateway_sim import APIV3_KEY, MERCHANT_KEY_PEM, delivered, inbox, order, v2_gateway_for, \
    v3_gateway_for  # noqa: F401

# Where each version's order and query land in the simulator (for faults).
ORDER_ENDPOINT = {"v2": "pay/unifiedorder", "v3": "v3/pay/transactions/native"}
QUERY_ENDPOINT = {"v2": "pay/orderquery", "v3": "v3/pay/transactions/out-trade-no/{out_trade_no}"}


@pytest.fixture(params=["v2", "v3"])
def gateway(request, simsrv, cert_pair):  # noqa: F811
    if request.param == "v2":
        return v2_gateway_for(simsrv, cert_pair)
    return v3_gateway_for(simsrv)


def identity(gateway, appid: str = OA) -> OrderIdentity:
    return OrderIdentity(appid, MCH, gateway.sign_type)


async def pay(simsrv, prepay_id: str, payload: dict | None = None) -> dict:  # noqa: F811
    body = {"prepay_id": prepay_id, "outcome": "ok"}
    if payload is not None:
        body["payload"] = payload
    code, paid = await simsrv.post_json("/_sim/pay", body)
    assert code == 200 and paid["ok"], paid
    await simsrv.sim.notifier.wait(paid["notify_delivery"])
    return paid


async def scan(simsrv, code_url: str) -> None:  # noqa: F811
    code, reply = await simsrv.post_json("/_sim/scan", {"code_url": code_url, "outcome": "ok"})
    assert code == 200 and reply["ok"], reply


async def test_a_jsapi_payment_end_to_end(simsrv, inbox, gateway):  # noqa: F811
    openid = simsrv.openid("alice")
    placed = await gateway.place_order(order("gw0001", "JSAPI", openid=openid, notify_url=inbox.url))
    assert placed.prepay_id and placed.sign_type == gateway.sign_type and placed.trade_type == "JSAPI"
    payloads = gateway.jsapi_payloads(appid=OA, prepay_id=placed.prepay_id, sign_type=placed.sign_type)
    bridge, choose = payloads.bridge.to_dict(), payloads.choose_wx_pay.to_dict()
    assert bridge["paySign"] == choose["paySign"] and bridge["signType"] == gateway.sign_type
    assert (await gateway.query_order("gw0001")).state == "NOTPAY"

    await pay(simsrv, placed.prepay_id, bridge)  # the simulated WeChat app checks paySign
    headers, body = inbox.last
    proven = await gateway.read_payment_notify(headers, body)
    assert isinstance(proven, ProvenPayment) and proven.out_trade_no == "gw0001"
    assert proven.signed_with == gateway.sign_type
    notice = gateway.judge_payment_notify(proven, identity(gateway))
    assert isinstance(notice, PaymentNotice)
    assert (notice.amount_fen, notice.mch_id, notice.appid, notice.payer_openid) == (990, MCH, OA, openid)
    assert (notice.event_id is not None) == (gateway.api_version == "v3")

    facts = await gateway.query_order("gw0001")
    assert facts.paid and facts.state == "SUCCESS" and facts.amount_fen == 990 and facts.payer_fen == 990
    assert facts.transaction_id == notice.transaction_id and facts.paid_at == notice.paid_at
    assert facts.paid_at.utcoffset() == timedelta(0) and facts.payer_openid == openid
    assert facts.trade_type == "JSAPI"


async def test_refund_its_notify_its_query_and_the_bill(simsrv, inbox, gateway):  # noqa: F811
    placed = await gateway.place_order(order("gw0002", notify_url=inbox.url))
    await scan(simsrv, placed.code_url)
    accepted = await gateway.refund(RefundRequest("gw-r1", "gw0002", OA, 990, 90, inbox.url, reason="chipped"))
    assert accepted.refund_fen == 90 and accepted.refund_id
    assert accepted.status == {"v2": None, "v3": "SUCCESS"}[gateway.api_version]  # APIv3 says at once
    notice = await gateway.read_refund_notify(*await delivered(simsrv, inbox, "refund", "gw-r1"))
    assert isinstance(notice, RefundNotice)
    assert (notice.out_refund_no, notice.out_trade_no, notice.refund_fen, notice.status, notice.mch_id) == \
        ("gw-r1", "gw0002", 90, "SUCCESS", MCH)
    assert notice.refund_id == accepted.refund_id and notice.succeeded_at.utcoffset() == timedelta(0)
    assert notice.appid == {"v2": OA, "v3": None}[gateway.api_version]  # APIv3's refund notify names none
    facts = await gateway.query_refund("gw-r1", appid=OA)
    assert (facts.status, facts.refund_fen, facts.refund_id, facts.out_trade_no) == \
        ("SUCCESS", 90, accepted.refund_id, "gw0002")
    assert facts.succeeded_at == notice.succeeded_at
    # More than is left: refused (APIv2's simulator says NOTENOUGH, APIv3 INVALID_REQUEST), nothing made.
    with pytest.raises(errors.BusinessError) as refused:
        await gateway.refund(RefundRequest("gw-r2", "gw0002", OA, 990, 901, inbox.url))
    assert type(refused.value) is {"v2": errors.NotEnoughError, "v3": errors.InvalidRequestError}[gateway.api_version]
    assert not refused.value.retryable
    with pytest.raises(errors.RefundNotExistError):
        await gateway.query_refund("gw-r2")
    # The same out_refund_no again is the same refund, not a second one.
    again = await gateway.refund(RefundRequest("gw-r1", "gw0002", OA, 990, 90, inbox.url, reason="chipped"))
    assert again.refund_id == accepted.refund_id
    assert (await gateway.query_order("gw0002")).state == "REFUND"

    simsrv.clock.advance(days=1)
    bill = await gateway.day_bill(date(2026, 1, 5))
    assert [(line.out_trade_no, line.is_payment, line.is_refund) for line in bill.lines] == \
        [("gw0002", True, False), ("gw0002", False, True)]
    refund_line = bill.lines[1]
    assert (refund_line.out_refund_no, refund_line.refund_fen, refund_line.refund_status) == ("gw-r1", 90, "SUCCESS")
    assert bill.lines[0].amount_fen == 990 and bill.lines[0].transaction_id == facts_txn(simsrv, "gw0002")
    with pytest.raises(errors.NoBillError):
        await gateway.day_bill(date(2026, 1, 4))


def facts_txn(simsrv, out_trade_no: str) -> str:  # noqa: F811
    return simsrv.sim.pay.order(MCH, out_trade_no).transaction_id


async def test_each_trade_type_gets_what_its_client_needs(simsrv, inbox, gateway):  # noqa: F811
    native = await gateway.place_order(order("gw0003", attach="batch-7", client_ip="203.0.113.9"))
    assert native.code_url and native.code_url.startswith("weixin://")
    recorded = simsrv.sim.pay.order(MCH, "gw0003")  # the order as WeChat took it
    assert (recorded.body, recorded.total_fee, recorded.attach, recorded.spbill_create_ip, recorded.time_expire) == \
        ("Demo-tea", 990, "batch-7", "203.0.113.9", START + timedelta(hours=1))
    h5 = await gateway.place_order(order("gw0004", "MWEB", h5_site=H5Site("http://127.0.0.1:8000", "Demo shop " * 9)))
    assert h5.h5_url and gateway.h5_return_url(h5.h5_url, "http://127.0.0.1:8000/pay/co_1/result").startswith(
        h5.h5_url + "&redirect_url=http%3A%2F%2F127.0.0.1")
    app = await gateway.place_order(order("gw0005", "APP", appid=APP, notify_url=inbox.url))
    payload = gateway.app_payload(appid=APP, prepay_id=app.prepay_id, sign_type=app.sign_type).to_dict()
    assert payload["partnerid"] == MCH and payload["package"] == "Sign=WXPay"
    await pay(simsrv, app.prepay_id, payload)
    mini = await gateway.place_order(order("gw0006", "JSAPI", appid=MP, openid=simsrv.openid("bob", MP),
                                           notify_url=inbox.url))
    payload = gateway.mini_program_payload(appid=MP, prepay_id=mini.prepay_id, sign_type=mini.sign_type).to_dict()
    assert payload["signType"] == gateway.sign_type
    await pay(simsrv, mini.prepay_id, payload)
    facts = [await gateway.query_order(no) for no in ("gw0003", "gw0004", "gw0005", "gw0006")]
    assert [f.state for f in facts] == ["NOTPAY", "NOTPAY", "SUCCESS", "SUCCESS"]
    assert [f.trade_type for f in facts[2:]] == ["APP", "JSAPI"]
    notice = gateway.judge_payment_notify(await gateway.read_payment_notify(*inbox.last), identity(gateway, MP))
    assert isinstance(notice, PaymentNotice) and notice.appid == MP


async def test_a_payload_signed_for_one_app_does_not_pay_in_another(simsrv, gateway):  # noqa: F811
    placed = await gateway.place_order(order("gw0016", "JSAPI", openid=simsrv.openid("carol")))
    bridge = gateway.jsapi_payloads(appid=MP, prepay_id=placed.prepay_id, sign_type=placed.sign_type).bridge
    code, reply = await simsrv.post_json("/_sim/pay", {"prepay_id": placed.prepay_id, "outcome": "ok",
                                                       "payload": bridge.to_dict()})
    assert code == 200 and not reply["ok"] and reply["reason"] == "BAD_PAYLOAD"
    forged = {**gateway.jsapi_payloads(appid=OA, prepay_id=placed.prepay_id, sign_type=placed.sign_type)
              .bridge.to_dict(), "nonceStr": "changed"}
    code, reply = await simsrv.post_json("/_sim/pay", {"prepay_id": placed.prepay_id, "outcome": "ok",
                                                       "payload": forged})
    assert not reply["ok"] and reply["error"] == "支付验证签名失败"
    assert (await gateway.query_order("gw0016")).state == "NOTPAY"


async def test_close_and_what_wechat_says_about_orders(simsrv, inbox, gateway):  # noqa: F811
    placed = await gateway.place_order(order("gw0007"))
    simsrv.clock.advance(minutes=6)  # past APIv2's five-minute rule
    await gateway.close_order("gw0007", appid=OA)
    assert (await gateway.query_order("gw0007")).state == "CLOSED"
    with pytest.raises(errors.OrderClosedError):
        await gateway.close_order("gw0007")
    with pytest.raises(errors.OrderClosedError):
        await gateway.place_order(order("gw0007"))
    paid = await gateway.place_order(order("gw0008", notify_url=inbox.url))
    await scan(simsrv, paid.code_url)
    with pytest.raises(errors.OrderPaidError):
        await gateway.close_order("gw0008")
    with pytest.raises(errors.OrderPaidError):
        await gateway.place_order(order("gw0008", notify_url=inbox.url))
    with pytest.raises(errors.OrderNotExistError):
        await gateway.query_order("gw0009")
    await gateway.place_order(order("gw0015"))
    with pytest.raises(errors.OutTradeNoUsedError):
        await gateway.place_order(order("gw0015", amount_fen=1))
    again = await gateway.place_order(order("gw0015"))  # the same order again: its answer again
    assert placed.out_trade_no == "gw0007" and again.code_url


async def test_orders_and_refunds_are_checked_before_any_call(simsrv, gateway):  # noqa: F811
    with pytest.raises(errors.InvalidArgumentError):
        await gateway.place_order(order("gw0010", "JSAPI"))  # no openid
    with pytest.raises(errors.InvalidArgumentError):
        await gateway.place_order(order("gw0010", client_ip="not an ip"))
    with pytest.raises(errors.InvalidArgumentError):
        await gateway.refund(RefundRequest("gw-r3", "gw0010", OA, 100, 101, "http://127.0.0.1:9/n"))
    code, orders = await simsrv.get_json("/_sim/orders")
    assert code == 200 and "gw0010" not in str(orders)


async def test_an_order_is_not_retried_but_a_query_is(simsrv, gateway):  # noqa: F811
    busy = simsrv.sim.faults.add(ORDER_ENDPOINT[gateway.api_version], "systemerror", count=2)
    with pytest.raises(errors.RetryableBusinessError):
        await gateway.place_order(order("gw0017"))
    assert busy.fired == 1  # one attempt: repeating is the caller's choice
    with pytest.raises(errors.RetryableBusinessError):
        await gateway.place_order(order("gw0017"))
    placed = await gateway.place_order(order("gw0017"))
    assert placed.code_url and busy.fired == 2
    slow = simsrv.sim.faults.add(QUERY_ENDPOINT[gateway.api_version], "systemerror", count=1)
    assert (await gateway.query_order("gw0017")).state == "NOTPAY"
    assert slow.fired == 1


async def test_a_notify_for_another_order_s_app_is_refused_proven(simsrv, inbox, gateway):  # noqa: F811
    placed = await gateway.place_order(order("gw0018", notify_url=inbox.url))
    await scan(simsrv, placed.code_url)
    proven = await gateway.read_payment_notify(*await delivered(simsrv, inbox, "pay", "gw0018"))
    refusal = gateway.judge_payment_notify(proven, identity(gateway, MP))
    assert isinstance(refusal, Refusal)
    assert (refusal.verdict.code, refusal.verdict.outcome, refusal.proven, refusal.key) == \
        ("identity_mismatch", Outcome.INVALID, True, "gw0018")
    refusal = gateway.judge_payment_notify(proven, OrderIdentity(OA, "1900000999", gateway.sign_type))
    assert refusal.verdict.code == "identity_mismatch"
    assert isinstance(gateway.judge_payment_notify(proven, identity(gateway)), PaymentNotice)


async def test_what_is_not_a_notify_is_refused_unproven_and_never_raises(gateway):  # noqa: F811
    for body in (b"", b"{}", b"<xml></xml>", b"\xff\xfe", b"[1, 2]"):
        got = await gateway.read_payment_notify({}, body)
        assert isinstance(got, Refusal) and not got.proven and got.verdict.outcome is Outcome.INVALID, (body, got)
        got = await gateway.read_refund_notify({}, body)
        assert isinstance(got, Refusal) and not got.proven and got.verdict.outcome is Outcome.INVALID, (body, got)
    big = b" " * (gateway.max_notify_bytes + 1)
    for read in (gateway.read_payment_notify, gateway.read_refund_notify):
        got = await read({}, big)
        assert (got.verdict.code, got.verdict.outcome, got.proven) == ("too_large", Outcome.TOO_LARGE, False)


def test_a_failed_notify_is_answered_with_its_outcome_s_status(gateway):  # noqa: F811
    for outcome in Outcome:
        reply = gateway.notify_reply(NotifyVerdict("x", outcome, "why"))
        if outcome is Outcome.ACCEPTED:
            assert 200 <= reply.status < 300
        else:
            assert reply.status >= 400 and b"FAIL" in reply.body and b"why" in reply.body


async def test_payloads_only_for_sign_types_it_can_sign(gateway):  # noqa: F811
    own = gateway.sign_type
    other = {"v2": "RSA", "v3": "HMAC-SHA256"}[gateway.api_version]
    assert gateway.signs(own) and not gateway.signs(other) and not gateway.signs("SHA1")
    for make in (gateway.jsapi_payloads, gateway.mini_program_payload, gateway.app_payload):
        with pytest.raises(errors.InvalidArgumentError):
            make(appid=OA, prepay_id="wx1", sign_type=other)
        assert make(appid=OA, prepay_id="wx1", sign_type=own)


def test_no_key_in_its_repr_nor_in_what_it_shows(gateway):  # noqa: F811
    secrets = {"v2": [KEY], "v3": [APIV3_KEY, MERCHANT_KEY_PEM.splitlines()[1]]}[gateway.api_version]
    shown = [repr(gateway)] + [repr(v) for k, v in vars(gateway).items() if not k.startswith("_")]
    assert MCH in shown[0]
    assert not [s for s in secrets if any(s in text for text in shown)]
