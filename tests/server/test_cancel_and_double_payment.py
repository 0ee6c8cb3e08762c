"""Cancelling a checkout (closeorder and WeChat's five-minute rule; a payment
that wins the race is confirmed, not lost) and the automatic refund of a
double payment (one checkout paid by NATIVE scan and by JSAPI). Under both
API versions (APIv3 itself has no five-minute rule; the server keeps it for
every order, which is harmless)."""
from __future__ import annotations

from datetime import timedelta

from wxpay.simulator import demo

from .browser import as_json
from .conftest import BOTH_VERSIONS
from .journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status
from .payments import get_checkout, native_prepay, paid_checkout, scan_and_pay, wait_for, wait_refund
from .versions import FAULT_ENDPOINTS

ADMIN = {"Authorization": "Basic YWRtaW46c2FuZGJveC1hZG1pbg=="}  # admin:sandbox-admin


async def cancel(merchant, checkout_id: str):
    return await merchant.post(f"/api/checkouts/{checkout_id}/cancel", headers=merchant.token_headers)


@BOTH_VERSIONS
async def test_cancel_closes_and_a_late_payment_is_refunded_not_kept(running, base_url, merchant, api_version):
    checkout = await create_checkout(merchant, 420)
    desktop, result = await native_prepay(base_url, checkout["id"])
    r = await cancel(merchant, checkout["id"])
    assert r.code == 200, r.body
    view = as_json(r)
    assert view["status"] == "closed" and view["closed_at"]
    # WeChat refuses closeorder within 5 minutes of creation: the order waits for the reconciler.
    order = await running.services.orders.require(result["out_trade_no"])
    assert order.state == "prepaid" and order.close_requested
    assert order.next_check_at >= order.created_at + timedelta(minutes=5) - timedelta(seconds=1)
    sim = as_json(await merchant.get(f"/_wechat/_sim/orders/{result['out_trade_no']}"))["order"]
    assert sim["trade_state"] == "NOTPAY"
    assert (await cancel(merchant, checkout["id"])).code == 200  # repeating is harmless
    # No new payment can start ...
    r = await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    assert r.code == 409 and as_json(r)["code"] == "checkout_closed"
    # ... but the shopper who still had the QR code pays within those 5 minutes. The merchant
    # was told "closed": the payment is confirmed on the order, refunded and flagged.
    await scan_and_pay(desktop, result["code_url"])
    extra = "D" + result["out_trade_no"]
    refunded = await wait_refund(merchant, checkout["id"], extra, "succeeded")
    assert refunded["kind"] == "double_payment" and refunded["amount_fen"] == 420
    view = await get_checkout(merchant, checkout["id"])
    assert view["status"] == "closed" and view["double_paid"] is True and view["paid_out_trade_no"] is None
    assert view["orders"][0]["state"] == "paid"
    assert as_json(await desktop.get(f"/pay/{checkout['id']}/status"))["status"] == "closed"
    r = await cancel(merchant, checkout["id"])
    assert r.code == 200 and as_json(r)["status"] == "closed"
    flagged = await running.services.audit.latest("double_payment")
    assert [(a["reason"], a["out_trade_no"]) for a in flagged] == [("paid_after_close", result["out_trade_no"])]


@BOTH_VERSIONS
async def test_cancel_calls_closeorder_once_the_order_is_old_enough(running, base_url, merchant, api_version):
    checkout = await create_checkout(merchant, 430)
    _, result = await native_prepay(base_url, checkout["id"])
    no = result["out_trade_no"]
    # Six minutes pass, on both sides.
    services = running.services
    old = services.now() - timedelta(minutes=6)
    await services.store.update_if("orders", no, {}, {"created_at": old})
    running.simulator.pay.order(demo.MCH_ID, no).created_at = old
    r = await cancel(merchant, checkout["id"])
    assert r.code == 200 and as_json(r)["orders"][0]["state"] == "closed"
    sim = as_json(await merchant.get(f"/_wechat/_sim/orders/{no}"))["order"]
    assert sim["trade_state"] == "CLOSED"
    closes = [c for c in running.services.call_stats.snapshot() if "close" in c["endpoint"]]
    assert [c["calls_total"] for c in closes] == [1] and (api_version == "v3") == closes[0]["endpoint"].startswith("v3")
    # The close is in the audit trail under its order (the checkout's timeline shows it).
    calls = await services.audit.latest("wechat_call", limit=50)
    assert [(c["endpoint"], c["verdict"], c["api_version"]) for c in calls if c.get("out_trade_no") == no
            and c["endpoint"] == "close_order"] == [("close_order", "ok", api_version)]


@BOTH_VERSIONS
async def test_cancel_of_an_order_paid_without_notify_confirms_it(running, base_url, merchant, api_version):
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "notify", "kind": "drop", "count": None})
    checkout = await create_checkout(merchant, 440)
    desktop, result = await native_prepay(base_url, checkout["id"])
    await scan_and_pay(desktop, result["code_url"])
    assert (await get_checkout(merchant, checkout["id"]))["status"] == "open"  # the notify was lost
    r = await cancel(merchant, checkout["id"])
    assert r.code == 409 and as_json(r)["code"] == "checkout_paid"
    view = await get_checkout(merchant, checkout["id"])
    assert view["status"] == "paid" and view["orders"][0]["state"] == "paid"
    r = await cancel(merchant, "co_" + "0" * 24)
    assert r.code == 404


@BOTH_VERSIONS
async def test_a_double_payment_is_refunded_automatically(running, base_url, merchant, api_version):
    checkout = await create_checkout(merchant, 660)
    cid = checkout["id"]
    desktop, native = await native_prepay(base_url, cid)          # order 1: the QR code on a desktop
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    jsapi = await prepay(shopper, cid)                             # order 2: inside WeChat
    assert native["out_trade_no"] != jsapi["out_trade_no"]
    await scan_and_pay(desktop, native["code_url"])
    await wait_status(desktop, cid, "paid")
    # The sibling could not be closed yet (5 minutes), and the shopper pays it too.
    await pay_in_simulator(shopper, jsapi["bridge"])

    async def double_flagged() -> bool:
        return (await get_checkout(merchant, cid)).get("double_paid", False)

    await wait_for(double_flagged)
    extra = "D" + jsapi["out_trade_no"]
    refunded = await wait_refund(merchant, cid, extra, "succeeded")
    assert refunded["kind"] == "double_payment" and refunded["amount_fen"] == 660
    assert refunded["out_trade_no"] == jsapi["out_trade_no"]
    view = await get_checkout(merchant, cid)
    assert view["status"] == "paid" and view["paid_out_trade_no"] == native["out_trade_no"]
    assert view["refunded_fen"] == 0  # the merchant's own sale is untouched
    sim = as_json(await merchant.get("/_wechat/_sim/refunds"))
    assert [(x["out_trade_no"], x["refund_fee"]) for x in sim["refunds"]] == [(jsapi["out_trade_no"], 660)]
    # Recorded, and shown to the admin.
    audit = running.services.audit
    assert [a["out_trade_no"] for a in await audit.latest("double_payment")] == [jsapi["out_trade_no"]]
    assert [a["out_refund_no"] for a in await audit.latest("double_payment_refund")] == [extra]
    status = as_json(await merchant.get("/status.json", headers=ADMIN))
    assert status["double_payments"]["count"] == 1
    assert status["double_payments"]["latest"][0]["checkout_id"] == cid
    assert any(r["out_refund_no"] == extra for r in status["refunds"]["latest"])
    page = await merchant.get("/status", headers=ADMIN)
    assert page.code == 200 and b"1 double payment(s), refunded automatically" in page.body
    # Seeing the extra payment again (a late notify, the reconciler) refunds nothing more.
    again = await running.services.orders.require(jsapi["out_trade_no"])
    await running.services.refunds.refund_double_payment(again)
    assert len(as_json(await merchant.get("/_wechat/_sim/refunds"))["refunds"]) == 1


async def test_a_paid_checkout_cannot_be_cancelled(running, base_url, merchant):
    checkout = await paid_checkout(merchant, base_url, 300)
    r = await cancel(merchant, checkout["id"])
    assert r.code == 409 and as_json(r)["code"] == "checkout_paid"


@BOTH_VERSIONS
async def test_a_double_payment_refund_refused_for_now_is_retried_by_the_reconciler(running, base_url, merchant, api_version):
    fault = {"endpoint": FAULT_ENDPOINTS[api_version]["refund"], "kind": "http500", "count": 3}
    assert (await merchant.post("/_wechat/_sim/faults", json_body=fault)).code == 200
    checkout = await create_checkout(merchant, 330)
    desktop, native = await native_prepay(base_url, checkout["id"])
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    jsapi = await prepay(shopper, checkout["id"])
    await scan_and_pay(desktop, native["code_url"])
    await wait_status(desktop, checkout["id"], "paid")
    await pay_in_simulator(shopper, jsapi["bridge"])
    extra = "D" + jsapi["out_trade_no"]
    services = running.services

    async def tried() -> bool:  # the automatic attempt is over (recorded in the audit trail)
        calls = await services.audit.latest("refund_call")
        return any(c["out_refund_no"] == extra and c["verdict"] == "unknown" for c in calls)

    await wait_for(tried)
    refund = await services.refunds.get(extra)
    assert refund.state == "pending" and not refund.submitted  # WeChat answered 500 to every retry
    await services.store.update_if("refunds", extra, {}, {"next_check_at": services.now()})
    report = await services.reconciler.run_once()
    assert report.refunds_checked == 1
    await wait_refund(merchant, checkout["id"], extra, "succeeded")
    assert len(as_json(await merchant.get("/_wechat/_sim/refunds"))["refunds"]) == 1
