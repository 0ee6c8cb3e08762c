"""A merchant who moves between APIv2 and APIv3 keeps its orders.

WeChat keeps one order book per mchid: an order placed under one version is
queried, closed, refunded and its refunds queried under the other. These
tests place and pay through one gateway and carry on through the other,
both against the same simulated WeChat over real HTTP.
"""
from __future__ import annotations

from datetime import date

import pytest

from wxpay import errors
from wxpay.gateway import OrderIdentity, PaymentNotice, ProvenPayment, RefundNotice, RefundRequest, Refusal
from tests.simulator.pay_server import MCH, OA, cert_pair, simsrv  # noqa: F401
from .gateway_sim import HMAC, delivered, inbox, order, v2_gateway_for, v3_gateway_for  # noqa: F401


@pytest.fixture
def v2(simsrv, cert_pair):  # noqa: F811
    return v2_gateway_for(simsrv, cert_pair)


@pytest.fixture
def v3(simsrv):  # noqa: F811
    return v3_gateway_for(simsrv)


async def placed_and_paid(simsrv, inbox, gateway, no: str):  # noqa: F811
    placed = await gateway.place_order(order(no, notify_url=inbox.url))
    code, reply = await simsrv.post_json("/_sim/scan", {"code_url": placed.code_url, "outcome": "ok"})
    assert code == 200 and reply["ok"], reply
    return placed, await delivered(simsrv, inbox, "pay", no)


async def test_orders_placed_under_v2_carry_on_under_v3(simsrv, inbox, v2, v3):  # noqa: F811
    placed, v2_notify = await placed_and_paid(simsrv, inbox, v2, "mig0000001")
    await v2.place_order(order("mig0000002"))  # unpaid
    assert placed.sign_type == HMAC
    # The merchant switches to APIv3.
    facts = await v3.query_order("mig0000001")
    assert (facts.state, facts.amount_fen, facts.trade_type) == ("SUCCESS", 990, "NATIVE")
    assert facts.transaction_id == (await v2.query_order("mig0000001")).transaction_id
    accepted = await v3.refund(RefundRequest("mig-r1", "mig0000001", OA, 990, 100, inbox.url))
    assert accepted.status == "SUCCESS"
    notice = await v3.read_refund_notify(*await delivered(simsrv, inbox, "refund", "mig-r1"))
    assert isinstance(notice, RefundNotice) and (notice.out_trade_no, notice.refund_fen) == ("mig0000001", 100)
    assert (await v3.query_refund("mig-r1")).status == "SUCCESS"
    await v3.close_order("mig0000002")
    assert (await v2.query_order("mig0000002")).state == "CLOSED"
    # Its stored prepay_id was signed HMAC-SHA256: APIv3 cannot sign for it.
    assert not v3.signs(placed.sign_type)
    with pytest.raises(errors.InvalidArgumentError, match="new out_trade_no"):
        v3.jsapi_payloads(appid=OA, prepay_id=placed.prepay_id, sign_type=placed.sign_type)
    # And placing it again under APIv3 is another order's content.
    await v2.place_order(order("mig0000003"))
    with pytest.raises(errors.OutTradeNoUsedError):
        await v3.place_order(order("mig0000003"))
    simsrv.clock.advance(days=1)
    bill = await v3.day_bill(date(2026, 1, 5))
    assert [(line.out_trade_no, line.is_payment, line.is_refund) for line in bill.lines] == \
        [("mig0000001", True, False), ("mig0000001", False, True)]


async def test_a_v2_notify_after_the_switch_is_refused_and_the_query_confirms(simsrv, inbox, v2, v3):  # noqa: F811
    _, (headers, body) = await placed_and_paid(simsrv, inbox, v2, "mig0000004")
    got = await v3.read_payment_notify(headers, body)  # APIv2 XML: no Wechatpay-* proof
    assert isinstance(got, Refusal) and got.verdict.code == "missing_header" and not got.proven
    assert v3.notify_reply(got.verdict).status >= 400  # WeChat retries; meanwhile the query says paid
    assert (await v3.query_order("mig0000004")).paid


async def test_orders_placed_under_v3_carry_on_after_a_switch_back(simsrv, inbox, v2, v3):  # noqa: F811
    placed, v3_notify = await placed_and_paid(simsrv, inbox, v3, "mig0000005")
    proven = await v3.read_payment_notify(*v3_notify)
    assert isinstance(proven, ProvenPayment)
    await v3.place_order(order("mig0000006"))
    # Back to APIv2.
    assert (await v2.query_order("mig0000005")).state == "SUCCESS"
    await v2.refund(RefundRequest("mig-r2", "mig0000005", OA, 990, 990, inbox.url))
    notice = await v2.read_refund_notify(*await delivered(simsrv, inbox, "refund", "mig-r2"))
    assert isinstance(notice, RefundNotice) and notice.status == "SUCCESS"
    assert (await v2.query_refund("mig-r2")).refund_fen == 990
    assert (await v3.query_refund("mig-r2")).refund_fen == 990  # and a V2 refund seen from V3
    simsrv.clock.advance(minutes=6)  # APIv2's five-minute rule
    await v2.close_order("mig0000006", appid=OA)
    assert (await v3.query_order("mig0000006")).state == "CLOSED"
    assert not v2.signs(placed.sign_type)
    with pytest.raises(errors.InvalidArgumentError):
        v2.app_payload(appid=OA, prepay_id="wx1", sign_type=placed.sign_type)
    notice = v3.judge_payment_notify(proven, OrderIdentity(OA, MCH, placed.sign_type))
    assert isinstance(notice, PaymentNotice)
