"""The whole journey over real HTTP in sandbox mode, against the mounted simulator.

checkout via the API → OAuth redirect chain → prepay → the shopper pays in
the simulator → notify → order paid → the API shows it paid; and the same
with the notify dropped, duplicated, and with a tampered amount. Each runs
under APIv2 and APIv3 (``wechat.api_version``; the simulated WeChat checks
the page's paySign as the WeChat app does, MD5 or RSA).
"""
from __future__ import annotations

import asyncio
import base64

from wxpay import signing
from wxpay.simulator import demo
from wxpay.v3.keys import load_public_key
from wxpay.v3.signing import lines_message, rsa_verify

from .browser import as_json
from .conftest import BOTH_VERSIONS
from .journey import create_checkout, pay_in_simulator, prepay, query_of, sign_in_with_wechat, wait_status
from .versions import FAULT_ENDPOINTS, payment_notify, post_notify, refused

MERCHANT_PUBLIC_KEY = load_public_key(demo.v3_pem("apiclient_pub.pem"))


def pay_sign_ok(bridge: dict, api_version: str) -> bool:
    """The bridge's paySign, checked as the WeChat app checks it."""
    if api_version == "v3":
        assert bridge["signType"] == "RSA"
        lines = lines_message(bridge["appId"], bridge["timeStamp"], bridge["nonceStr"], bridge["package"])
        return rsa_verify(MERCHANT_PUBLIC_KEY, lines, base64.b64decode(bridge["paySign"]))
    signed = {k: bridge[k] for k in ("appId", "timeStamp", "nonceStr", "package", "signType")}
    return bridge["paySign"] == signing.sign(signed, demo.API_KEY, bridge["signType"])


@BOTH_VERSIONS
async def test_full_journey_inside_wechat(running, base_url, merchant, api_version):
    checkout = await create_checkout(merchant, 1234)
    shopper, hops = await sign_in_with_wechat(base_url, checkout["pay_url"])
    # pay URL → authorize (silent snsapi_base, random state) → callback → pay URL
    authorize = query_of(hops[1])
    assert "/_wechat/connect/oauth2/authorize" in hops[1] and hops[1].endswith("#wechat_redirect")
    assert authorize["scope"] == "snsapi_base" and len(authorize["state"]) == 32
    assert "/oauth/callback?" in hops[2] and query_of(hops[2])["state"] == authorize["state"]
    assert hops[3] == checkout["pay_url"]
    assert "wx_openid" in shopper.cookies

    result = await prepay(shopper, checkout["id"])
    bridge, choose = result["bridge"], result["choose_wx_pay"]
    assert set(bridge) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert set(choose) == {"timestamp", "nonceStr", "package", "signType", "paySign"}
    assert pay_sign_ok(bridge, api_version) and bridge["paySign"] == choose["paySign"]
    assert bridge["signType"] == {"v2": "MD5", "v3": "RSA"}[api_version]

    paid = await pay_in_simulator(shopper, bridge)
    assert paid["result"] == {"err_msg": "get_brand_wcpay_request:ok"}
    await wait_status(shopper, checkout["id"], "paid")
    view = as_json(await merchant.get(f"/api/checkouts/{checkout['id']}", headers=merchant.token_headers))
    assert view["status"] == "paid" and view["paid_out_trade_no"] == result["out_trade_no"]
    assert [o["state"] for o in view["orders"]] == ["paid"]
    assert view["orders"][0]["transaction_id"].startswith("42")
    (notify,) = await running.services.audit.latest("notify")
    assert (notify["verdict"], notify["api_version"]) == ("paid", api_version)

    # The same prepay slot is not paid twice: a new prepay is refused.
    r = await shopper.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    assert r.code == 409 and as_json(r)["code"] == "checkout_paid"


@BOTH_VERSIONS
async def test_prepay_is_reused_and_amount_comes_from_the_checkout(running, base_url, merchant):
    checkout = await create_checkout(merchant, 777)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    first = await prepay(shopper, checkout["id"], amount_fen=1, total_fee=1)
    second = await prepay(shopper, checkout["id"])
    assert first["bridge"]["package"] == second["bridge"]["package"]
    assert second["reused"] is True
    sim_order = as_json(await shopper.get(f"/_wechat/_sim/orders/{first['out_trade_no']}"))["order"]
    assert sim_order["total_fee"] == 777


async def test_prepay_needs_xsrf(running, base_url, merchant):
    checkout = await create_checkout(merchant)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    r = await shopper.post(f"/pay/{checkout['id']}/prepay", json_body={})
    assert r.code == 403


@BOTH_VERSIONS
async def test_dropped_notify_is_found_by_the_reconciler(running, base_url, merchant):
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "notify", "kind": "drop", "count": None})
    checkout = await create_checkout(merchant)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    result = await prepay(shopper, checkout["id"])
    await pay_in_simulator(shopper, result["bridge"])
    status = as_json(await shopper.get(f"/pay/{checkout['id']}/status"))
    assert status["status"] == "open"
    services = running.services
    order = await services.orders.require(result["out_trade_no"])
    await services.lifecycle.touch_order(order, next_check_at=services.now())  # its check is due
    report = await services.reconciler.run_once()
    assert (report.checked, report.paid) == (1, 1)
    await wait_status(shopper, checkout["id"], "paid")
    order = await services.orders.require(result["out_trade_no"])
    assert order.paid_via == "reconciler"
    # What WxpayPaymentsOnlyByReconciler (docs/alerts.yml) watches.
    assert services.payments.confirmed == {"notify": 0, "reconciler": 1}


@BOTH_VERSIONS
async def test_duplicated_notifies_make_one_transition(running, base_url, merchant):
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "notify", "kind": "duplicate", "n": 8, "count": 1})
    checkout = await create_checkout(merchant)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    result = await prepay(shopper, checkout["id"])
    await pay_in_simulator(shopper, result["bridge"])
    await wait_status(shopper, checkout["id"], "paid")
    notifies = await running.services.audit.latest("notify", limit=50)
    for _ in range(100):
        if len(notifies) >= 8:
            break
        await asyncio.sleep(0.02)
        notifies = await running.services.audit.latest("notify", limit=50)
    verdicts = sorted(n["verdict"] for n in notifies)
    assert verdicts.count("paid") == 1
    assert all(n["ok"] for n in notifies) and len(notifies) == 8
    sim = as_json(await shopper.get(f"/_wechat/_sim/orders/{result['out_trade_no']}"))
    assert sim["order"]["trade_state"] == "SUCCESS"


@BOTH_VERSIONS
async def test_tampered_amount_is_refused_and_changes_nothing(running, base_url, merchant, api_version):
    checkout = await create_checkout(merchant, 1000)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    result = await prepay(shopper, checkout["id"])
    order = await running.services.orders.require(result["out_trade_no"])
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "notify", "kind": "drop", "count": None})
    await pay_in_simulator(shopper, result["bridge"])  # paid at WeChat for 1000 fen; its notifies are lost
    # Signed by WeChat's key but naming another amount: refused (the order says 1000).
    one_fen = {"total_fee": 1} if api_version == "v2" else {"amount": {"total": 1, "payer_total": 1, "currency": "CNY",
                                                                       "payer_currency": "CNY"}}
    r = await post_notify(merchant, "/notify/pay", payment_notify(running, api_version, order.out_trade_no, **one_fen))
    assert refused(api_version, r, 400), r.body
    # Signed by someone else: the signature does not verify.
    r = await post_notify(merchant, "/notify/pay", payment_notify(running, api_version, order.out_trade_no, forged=True))
    assert refused(api_version, r, 400), r.body
    after = await running.services.orders.require(order.out_trade_no)
    assert after.state == "prepaid" and after.transaction_id is None
    verdicts = [n["verdict"] for n in await running.services.audit.latest("notify")]
    assert sorted(verdicts) == ["amount_mismatch", "bad_signature"]


@BOTH_VERSIONS
async def test_lost_unifiedorder_reply_is_closed_not_queried_forever(running, base_url, merchant, api_version):
    """WeChat created the order but its reply never reached us (HTTP 500 after
    the fact is how the fault plays it here): the order stays "created", no
    shopper can pay it, and the reconciler closes it once WeChat allows."""
    services = running.services
    checkout = await create_checkout(merchant)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    fault = {"endpoint": FAULT_ENDPOINTS[api_version]["order_jsapi"], "kind": "malformed", "count": 1}
    assert (await merchant.post("/_wechat/_sim/faults", json_body=fault)).code == 200
    r = await shopper.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    assert r.code == 502
    (order,) = await services.orders.for_checkout(checkout["id"])
    assert order.state == "created"
    # Pretend WeChat's 5-minute minimum before closeorder has passed.
    from datetime import timedelta

    old = services.now() - timedelta(minutes=6)
    await services.store.update_if("orders", order.out_trade_no, {"state": "created"}, {"created_at": old, "next_check_at": old})
    running.simulator.pay.orders[(order.mch_id, order.out_trade_no)].created_at = old
    report = await services.reconciler.run_once()
    assert report.closed == 1
    assert (await services.orders.require(order.out_trade_no)).state == "closed"
    sim = as_json(await merchant.get(f"/_wechat/_sim/orders/{order.out_trade_no}"))
    assert sim["order"]["trade_state"] == "CLOSED"
    # The shopper can still pay: a new order is made for the checkout.
    again = await prepay(shopper, checkout["id"])
    assert again["out_trade_no"] != order.out_trade_no


@BOTH_VERSIONS
async def test_paying_one_order_closes_its_sibling(running, base_url, merchant):
    from datetime import timedelta

    from .browser import DESKTOP_UA, Browser

    services = running.services
    checkout = await create_checkout(merchant, 880)
    desktop = Browser(base_url, DESKTOP_UA)
    await desktop.get(checkout["pay_url"])
    native = as_json(await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    jsapi = await prepay(shopper, checkout["id"])
    assert native["out_trade_no"] != jsapi["out_trade_no"]
    await pay_in_simulator(shopper, jsapi["bridge"])
    await wait_status(shopper, checkout["id"], "paid")
    sibling = await services.orders.require(native["out_trade_no"])
    assert sibling.state == "prepaid" and sibling.close_requested
    # Once WeChat's 5 minutes have passed, the reconciler closes it at WeChat.
    old = services.now() - timedelta(minutes=6)
    running.simulator.pay.orders[(sibling.mch_id, sibling.out_trade_no)].created_at = old
    await services.store.update_if("orders", sibling.out_trade_no, {"state": "prepaid"}, {"created_at": old})
    report = await services.reconciler.run_once()
    assert report.closed == 1
    assert (await services.orders.require(sibling.out_trade_no)).state == "closed"
    scan = await desktop.post("/_wechat/_sim/scan", json_body={"code_url": native["code_url"], "outcome": "ok"})
    assert as_json(scan)["ok"] is False
    view = as_json(await merchant.get(f"/api/checkouts/{checkout['id']}", headers=merchant.token_headers))
    assert view["status"] == "paid" and "double_paid" not in view
