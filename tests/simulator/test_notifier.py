"""Notify delivery at a compressed time scale: WeChat's schedule, stop on SUCCESS, give up."""
from __future__ import annotations

from wxpay.simulator.notifier import RETRY_INTERVALS, is_success_reply
from wxpay.xmlcodec import parse_xml

from .pay_server import SUCCESS_XML, merchant, simsrv  # noqa: F401

FAIL_XML = b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[busy]]></return_msg></xml>"


async def pay_native(srv, out_trade_no: str, notify_url: str) -> int:
    reply = await srv.unified(out_trade_no, notify_url=notify_url)
    code, scan = await srv.post_json("/_sim/scan", {"code_url": reply["code_url"], "outcome": "ok"})
    assert scan["ok"], scan
    return scan["notify_delivery"]


def test_schedule_is_wechats_current_one():
    assert RETRY_INTERVALS == (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
    assert sum(RETRY_INTERVALS) == 86640  # 24 h 4 min


def test_only_the_success_xml_counts():
    assert is_success_reply(200, SUCCESS_XML)
    assert not is_success_reply(200, b"success")
    assert not is_success_reply(200, b'{"return_code": "SUCCESS"}')
    assert not is_success_reply(200, b"<html><body>SUCCESS</body></html>")
    assert not is_success_reply(200, FAIL_XML)
    assert not is_success_reply(500, SUCCESS_XML)


async def test_retries_until_success_then_stops(simsrv, merchant):
    merchant.replies = [(200, b"success"), (500, b"oops"), (200, FAIL_XML), (200, b"<html>ok</html>")]
    delivery = await simsrv.sim.notifier.wait(await pay_native(simsrv, "notify001", merchant.url))
    assert delivery.state == "delivered"
    assert [a.verdict for a in delivery.attempts] == ["fail", "fail", "fail", "fail", "success"]
    assert [a.delay_before for a in delivery.attempts] == [0, 15, 15, 30, 180]
    assert [a.status for a in delivery.attempts] == [200, 500, 200, 200, 200]
    assert delivery.attempts[0].excerpt == "success"
    assert len(merchant.received) == 5
    assert len({parse_xml(b)["nonce_str"] for b in merchant.received}) == 5  # fresh nonce per attempt
    code, view = await simsrv.get_json("/_sim/notifies?kind=pay&key=notify001")
    assert view["deliveries"][0]["state"] == "delivered" and len(view["deliveries"][0]["attempts"]) == 5


async def test_gives_up_after_the_last_interval(simsrv, merchant):
    merchant.default = (200, FAIL_XML)
    delivery = await simsrv.sim.notifier.wait(await pay_native(simsrv, "notify002", merchant.url))
    assert delivery.state == "gave_up"
    assert len(delivery.attempts) == len(RETRY_INTERVALS) + 1 == 16
    assert [a.delay_before for a in delivery.attempts] == [0, *RETRY_INTERVALS]
    assert len(merchant.received) == 16


async def test_unreachable_notify_url_is_an_error_attempt(simsrv):
    from tornado.testing import bind_unused_port

    sock, port = bind_unused_port()
    sock.close()  # nothing listens there any more: connection refused
    delivery = await simsrv.sim.notifier.wait(await pay_native(simsrv, "notify003", f"http://127.0.0.1:{port}/n"))
    assert delivery.state == "gave_up" and len(delivery.attempts) == 16
    assert {a.verdict for a in delivery.attempts} == {"error"} and delivery.attempts[0].status is None


async def test_refund_notify_is_encrypted_and_unsigned(simsrv, merchant):
    from wxpay.simulator.crypto import decrypt_req_info
    from wxpay.xmlcodec import parse_xml as parse

    reply = await simsrv.unified("notify004", notify_url=merchant.url, total_fee=50)
    await simsrv.post_json("/_sim/scan", {"code_url": reply["code_url"], "outcome": "ok"})
    await simsrv.call("/secapi/pay/refund", {"out_trade_no": "notify004", "out_refund_no": "nr1", "total_fee": 50,
                                             "refund_fee": 50, "notify_url": merchant.url})
    [delivery] = simsrv.sim.notifier.list("refund", "nr1")
    await simsrv.sim.notifier.wait(delivery["id"])
    outer = parse_xml(merchant.received[-1])
    assert set(outer) == {"return_code", "appid", "mch_id", "nonce_str", "req_info"}
    inner = parse(decrypt_req_info(outer["req_info"], simsrv.sim.config.merchants[0].api_key), root="root")
    assert inner["out_refund_no"] == "nr1" and inner["refund_status"] == "SUCCESS" and inner["refund_fee"] == "50"
    assert len(inner["success_time"]) == 19  # yyyy-MM-dd HH:mm:ss


async def test_manual_refund_settlement_notifies_change(simsrv, merchant):
    simsrv.sim.pay.auto_settle_refunds = False
    reply = await simsrv.unified("notify005", notify_url=merchant.url, total_fee=50)
    await simsrv.post_json("/_sim/scan", {"code_url": reply["code_url"], "outcome": "ok"})
    await simsrv.call("/secapi/pay/refund", {"out_trade_no": "notify005", "out_refund_no": "nr2", "total_fee": 50,
                                             "refund_fee": 20, "notify_url": merchant.url})
    assert (await simsrv.call("/pay/refundquery", {"out_refund_no": "nr2"}))["refund_status_0"] == "PROCESSING"
    assert simsrv.sim.notifier.list("refund", "nr2") == []
    code, settled = await simsrv.post_json("/_sim/refunds/nr2/settle", {"status": "CHANGE"})
    assert code == 200 and settled["refund"]["refund_status"] == "CHANGE"
    await simsrv.sim.notifier.wait(settled["notify_delivery"])
    assert (await simsrv.call("/pay/refundquery", {"out_refund_no": "nr2"}))["refund_status_0"] == "CHANGE"
    code, again = await simsrv.post_json("/_sim/refunds/nr2/settle", {"status": "SUCCESS"})
    assert code == 409


def test_only_finished_deliveries_are_forgotten_oldest_first(monkeypatch):
    """Past the cap the oldest finished delivery goes; pending ones (all of them
    while notifies are dropped) are kept, however many there are."""
    from wxpay.simulator import notifier as notifier_module
    from wxpay.simulator.clock import FakeClock
    from wxpay.simulator.faults import Faults

    monkeypatch.setattr(notifier_module, "MAX_DELIVERIES", 3)
    n = notifier_module.Notifier(lambda d: b"", clock=FakeClock(), faults=Faults())
    first = [n.enqueue("pay", "m", f"o{i}", "http://x/n", start=False) for i in range(5)]
    assert len(n.deliveries) == 5  # all pending: nothing may go
    n._finish(first[3], "delivered")
    n._finish(first[1], "gave_up")
    n.enqueue("pay", "m", "o5", "http://x/n", start=False)
    assert [d.key for d in n.deliveries.values()] == ["o0", "o2", "o4", "o5"]  # o1 then o3 went, oldest first
    n._finish(first[2], "delivered")
    again = notifier_module.Notifier(lambda d: b"", clock=FakeClock(), faults=Faults())
    again.load_json(n.to_json())  # a restart: o2 is known to be finished
    again._finish(again.deliveries[first[0].id], "delivered")
    again.enqueue("pay", "m", "o6", "http://x/n", start=False)
    assert [d.key for d in again.deliveries.values()] == ["o4", "o5", "o6"]
