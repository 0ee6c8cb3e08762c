"""The /_sim/ JSON views, and pending notifies surviving a restart through to_json/load_json."""
from __future__ import annotations

import asyncio
import json

from wxpay.simulator import demo
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.core import Simulator

from .pay_server import KEY, MCH, START, make_config, merchant, simsrv  # noqa: F401


async def test_views_show_what_wechat_saw_and_never_the_key(simsrv, merchant):
    reply = await simsrv.unified("view00001", notify_url=merchant.url, total_fee=70)
    await simsrv.post_json("/_sim/scan", {"code_url": reply["code_url"], "outcome": "ok"})
    await simsrv.call("/secapi/pay/refund", {"out_trade_no": "view00001", "out_refund_no": "vr1", "total_fee": 70,
                                             "refund_fee": 7, "notify_url": merchant.url})
    for d in simsrv.sim.notifier.list():
        await simsrv.sim.notifier.wait(d["id"])
    code, orders = await simsrv.get_json("/_sim/orders")
    assert code == 200 and [o["out_trade_no"] for o in orders["orders"]] == ["view00001"]
    assert orders["orders"][0]["trade_state"] == "REFUND" and orders["orders"][0]["refunded_fee"] == 7
    code, one = await simsrv.get_json("/_sim/orders/view00001")
    assert [r["out_refund_no"] for r in one["refunds"]] == ["vr1"]
    assert sorted(d["kind"] for d in one["notifies"]) == ["pay", "refund"]
    assert all(d["state"] == "delivered" for d in one["notifies"])
    assert (await simsrv.get_json("/_sim/orders/nope00001"))[0] == 404
    code, refunds = await simsrv.get_json("/_sim/refunds")
    assert refunds["refunds"][0]["client_cert"].startswith("emulated")
    code, notifies = await simsrv.get_json("/_sim/notifies?kind=refund")
    assert [d["key"] for d in notifies["deliveries"]] == ["vr1"]
    attempt = notifies["deliveries"][0]["attempts"][0]
    assert attempt["verdict"] == "success" and attempt["status"] == 200 and "SUCCESS" in attempt["excerpt"]
    code, index = await simsrv.get_json("/_sim/")
    assert index["merchants"] == [{"mch_id": MCH, "appids": list(simsrv.sim.config.merchants[0].appids),
                                   "apiv3": True}]
    for path in ("/_sim/", "/_sim/orders", "/_sim/refunds", "/_sim/notifies", "/_sim/orders/view00001", "/_sim/tokens",
                 "/_sim/v3/merchants", f"/_sim/v3/merchants/{MCH}"):
        resp = await simsrv.raw(path, method="GET")
        assert resp.code == 200 and KEY.encode() not in resp.body, path
        assert demo.APIV3_KEY.encode() not in resp.body and b"PRIVATE KEY" not in resp.body, path


async def test_pending_notify_resumes_after_restart(merchant):
    merchant.replies = [(500, b"down")]
    slow = Simulator(make_config(notify_time_scale=1.0), clock=FakeClock(START))  # next try in 15 real seconds
    await slow.start()
    reply = slow.pay.unified_order(
        {"appid": slow.config.apps[0].appid, "mch_id": MCH, "nonce_str": "n", "body": "b-c", "out_trade_no": "resume001",
         "total_fee": "5", "spbill_create_ip": "127.0.0.1", "notify_url": merchant.url, "trade_type": "NATIVE",
         "product_id": "p"}, slow.config.merchants[0], "MD5")
    order = slow.pay.order_by_prepay(reply["prepay_id"])
    slow.pay.pay(order, "ok")
    delivery = slow.paid(order)
    while not delivery.attempts:  # the first attempt runs at once
        await asyncio.sleep(0.01)
    await slow.stop()
    assert delivery.state == "pending" and [a.verdict for a in delivery.attempts] == ["fail"]

    saved = json.loads(json.dumps(slow.to_json()))
    fresh = Simulator(make_config(), clock=FakeClock(START))
    fresh.load_json(saved)
    await fresh.start()
    try:
        done = await fresh.notifier.wait(delivery.id)
    finally:
        await fresh.stop()
    assert done.state == "delivered" and [a.number for a in done.attempts] == [1, 2]
    assert fresh.pay.order(MCH, "resume001").transaction_id == order.transaction_id



async def test_calls_counts_each_wechat_call_by_endpoint_and_never_the_sim_pages(simsrv):
    """/_sim/calls lets a benchmark prove each request made the upstream call it claims."""
    from .v3_server import V3Merchant

    await simsrv.unified("calls0001")
    await simsrv.call("/pay/orderquery", {"out_trade_no": "calls0001"})
    await simsrv.call("/pay/orderquery", {"out_trade_no": "nosuch001"})  # a FAIL reply is still a call
    await simsrv.post_json("/_sim/faults", {"endpoint": "pay/orderquery", "kind": "http500"})
    assert (await simsrv.raw("/pay/orderquery", b"<xml></xml>")).code == 500  # counted before faults apply
    v3 = V3Merchant(simsrv.base, lambda: simsrv.clock.now().timestamp())
    assert (await v3.order("native", "calls0002")).status == 200
    assert (await v3.call("GET", f"/v3/pay/transactions/out-trade-no/calls0002?mchid={MCH}")).status == 200
    await simsrv.get_json("/_sim/orders")
    code, calls = await simsrv.get_json("/_sim/calls")
    assert code == 200
    assert calls == {"calls": {"pay/orderquery": 3, "pay/unifiedorder": 1, "v3/pay/transactions/native": 1,
                               "v3/pay/transactions/out-trade-no/{out_trade_no}": 1}}
