"""Faults on demand, set over HTTP (/_sim/faults) or from Python, seen through our client."""
from __future__ import annotations

import json

import pytest

from wxpay import errors
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.merchant import Merchant
from wxpay.xmlcodec import parse_xml

from .pay_server import KEY, MCH, OA, merchant, simsrv  # noqa: F401


async def no_sleep(_seconds: float) -> None:
    return None


def client_for(srv) -> WxPayClient:
    return WxPayClient(Merchant(MCH, KEY, OA), endpoints=Endpoints.single(srv.base), sleep=no_sleep)


async def native(client: WxPayClient, out_trade_no: str, notify_url: str = "http://127.0.0.1:9/n"):
    return await client.unified_order(
        trade_type="NATIVE", out_trade_no=out_trade_no, total_fee=10, body="Demo-item",
        notify_url=notify_url, spbill_create_ip="127.0.0.1", product_id="p",
    )


async def test_http500_one_shot_over_http_api(simsrv):
    code, added = await simsrv.post_json("/_sim/faults", {"endpoint": "pay/unifiedorder", "kind": "http500"})
    assert code == 200 and added["added"][0]["count"] == 1
    client = client_for(simsrv)
    with pytest.raises(errors.TransportError) as err:
        await native(client, "fault0001")
    assert err.value.status == 500
    assert (await native(client, "fault0001")).prepay_id  # one-shot: gone after firing
    assert (await simsrv.get_json("/_sim/faults"))[1]["faults"] == []


async def test_query_retry_rides_out_a_one_shot_500(simsrv):
    client = client_for(simsrv)
    await native(client, "fault0002")
    simsrv.sim.faults.add("pay/orderquery", "http500", count=1)
    assert (await client.order_query(out_trade_no="fault0002")).trade_state == "NOTPAY"


async def test_systemerror_is_signed_and_changes_nothing(simsrv):
    simsrv.sim.faults.add("pay/unifiedorder", "systemerror")
    client = client_for(simsrv)
    with pytest.raises(errors.RetryableBusinessError) as err:
        await native(client, "fault0003")
    assert err.value.err_code == "SYSTEMERROR"
    assert simsrv.sim.pay.order(MCH, "fault0003") is None


async def test_malformed_and_bad_sign_replies(simsrv):
    client = client_for(simsrv)
    simsrv.sim.faults.add("pay/unifiedorder", "malformed")
    with pytest.raises(errors.ProtocolError):
        await native(client, "fault0004")
    simsrv.sim.faults.add("pay/unifiedorder", "bad_sign")
    with pytest.raises(errors.SignatureError):
        await native(client, "fault0004")
    assert (await native(client, "fault0004")).prepay_id


async def test_sticky_until_cleared_and_latency_is_consumed(simsrv):
    code, _ = await simsrv.post_json("/_sim/faults", [
        {"endpoint": "pay/orderquery", "kind": "systemerror", "count": None},
        {"endpoint": "*", "kind": "latency", "seconds": 0.01, "count": 2},
    ])
    assert code == 200
    for _ in range(3):
        reply = await simsrv.call("/pay/orderquery", {"out_trade_no": "fault0005"})
        assert reply["err_code"] == "SYSTEMERROR"
    faults = (await simsrv.get_json("/_sim/faults"))[1]["faults"]
    assert [(f["kind"], f["fired"]) for f in faults] == [("systemerror", 3)]  # latency used up after 2
    resp = await simsrv.raw("/_sim/faults?endpoint=pay/orderquery", method="DELETE")
    assert json.loads(resp.body)["removed"] == 1
    assert (await simsrv.call("/pay/orderquery", {"out_trade_no": "fault0005"}))["err_code"] == "ORDERNOTEXIST"


async def test_bad_fault_requests_are_refused(simsrv):
    assert (await simsrv.post_json("/_sim/faults", {"endpoint": "pay/orderquery", "kind": "explode"}))[0] == 400
    assert (await simsrv.post_json("/_sim/faults", {"endpoint": "", "kind": "http500"}))[0] == 400
    code, _ = await simsrv.post_json("/_sim/faults", [{"endpoint": "x", "kind": "http500"}, {"kind": "nope"}])
    assert code == 400 and simsrv.sim.faults.list() == []  # all or nothing


async def test_dropped_and_duplicated_notifies(simsrv, merchant):
    simsrv.sim.faults.add("notify", "drop")
    simsrv.sim.faults.add("notify", "duplicate", n=3)
    client = client_for(simsrv)
    reply = await native(client, "fault0006", merchant.url)
    code, scan = await simsrv.post_json("/_sim/scan", {"code_url": reply.code_url, "outcome": "ok"})
    delivery = await simsrv.sim.notifier.wait(scan["notify_delivery"])
    assert [(a.number, a.verdict, a.copy) for a in delivery.attempts] == [
        (1, "dropped", 1), (2, "success", 1), (2, "success", 2), (2, "success", 3)]
    assert len(merchant.received) == 3
    assert len({parse_xml(b)["transaction_id"] for b in merchant.received}) == 1


async def test_notify_can_arrive_before_the_unifiedorder_reply(simsrv, merchant):
    events: list[str] = []
    merchant.on_receive = lambda body: events.append("notify:" + parse_xml(body)["out_trade_no"])
    simsrv.sim.faults.add("pay/unifiedorder", "early")
    result = await native(client_for(simsrv), "fault0007", merchant.url)
    events.append("reply")
    assert events == ["notify:fault0007", "reply"]
    assert simsrv.sim.pay.order(MCH, "fault0007").trade_state == "SUCCESS"
    assert result.prepay_id


async def test_json_endpoints_honour_systemerror(simsrv):
    simsrv.sim.faults.add("cgi-bin/token", "systemerror")
    resp = await simsrv.raw("/cgi-bin/token?grant_type=client_credential&appid=x&secret=y", method="GET")
    assert json.loads(resp.body)["errcode"] == -1


async def test_the_list_of_faults_is_bounded(simsrv):
    """Anyone who can reach a sandbox server can post faults: 20,000 of them
    once took 14 MB and every simulated WeChat call looked through them all."""
    from wxpay.simulator.faults import MAX_FAULTS

    code, _ = await simsrv.post_json("/_sim/faults", [{"endpoint": "pay/orderquery", "kind": "latency"}] * MAX_FAULTS)
    assert code == 200
    code, refused = await simsrv.post_json("/_sim/faults", {"endpoint": "pay/orderquery", "kind": "latency"})
    assert code == 400 and f"at most {MAX_FAULTS}" in refused["error"]
    code, batch = await simsrv.post_json("/_sim/faults", [{"endpoint": "x", "kind": "latency"}] * 5)
    assert code == 400
    assert len((await simsrv.get_json("/_sim/faults"))[1]["faults"]) == MAX_FAULTS
    simsrv.sim.faults.clear()
    code, refused = await simsrv.post_json("/_sim/faults", {"endpoint": "p" * 10_000, "kind": "latency"})
    assert code == 400 and simsrv.sim.faults.list() == []
