"""Bounds on the WeChat orders a pay link (and a source) can cause.

An attacker holding a pay link varies what makes a new order (the H5 client's
IP here, through a trusted proxy's X-Forwarded-For) in a bounded loop against
a real server; the simulator's inspect API counts the unifiedorder calls that
reached WeChat. A checkout at its cap, once paid, gets every sibling closed.
"""
from __future__ import annotations

from datetime import timedelta

from wxpay.simulator import demo

from .browser import DESKTOP_UA, MOBILE_UA, Browser, as_json
from .conftest import start_server
from .journey import create_checkout
from .payments import get_checkout, wait_for

LOOPBACK_PROXY = {"server.trusted_proxies": ["127.0.0.1/32"]}


async def sim_orders(merchant: Browser) -> list[dict]:
    return as_json(await merchant.get("/_wechat/_sim/orders"))["orders"]


async def opened(base_url: str, checkout_id: str, user_agent: str) -> Browser:
    browser = Browser(base_url, user_agent)
    page = await browser.get(f"/pay/{checkout_id}")
    assert page.code == 200, page.body
    return browser


async def prepay_from(browser: Browser, checkout_id: str, ip: str):
    return await browser.post(
        f"/pay/{checkout_id}/prepay", json_body={}, xsrf=True, headers={"X-Forwarded-For": ip}
    )


def merchant_for(running) -> Browser:
    b = Browser(f"http://127.0.0.1:{running.port}")
    b.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]
    return b


async def test_an_attacker_varying_the_client_ip_gets_at_most_max_orders(tmp_path):
    running = await start_server(tmp_path, **LOOPBACK_PROXY, **{"checkout.max_orders": 5, "checkout.orders_per_ip": 0})
    try:
        merchant = merchant_for(running)
        checkout = await create_checkout(merchant, 990)
        attacker = await opened(merchant.base, checkout["id"], MOBILE_UA)
        answers = []
        for i in range(30):  # bounded: each new IP would be a new H5 order without the cap
            r = await prepay_from(attacker, checkout["id"], f"203.0.113.{i + 1}")
            answers.append((r.code, as_json(r).get("code") or as_json(r).get("trade_type")))
        assert answers[:5] == [(200, "MWEB")] * 5
        assert answers[5:] == [(409, "too_many_orders")] * 25
        r = await prepay_from(attacker, checkout["id"], "203.0.113.99")
        assert "new payment link" in as_json(r)["message"] and as_json(r)["details"] == {"max_orders": 5}
        # What reached WeChat: five unifiedorder calls, no more.
        assert len(await sim_orders(merchant)) == 5
        assert len((await get_checkout(merchant, checkout["id"]))["orders"]) == 5
        # A shopper already holding an order of the checkout still gets it back (reused, not counted).
        again = await prepay_from(attacker, checkout["id"], "203.0.113.3")
        assert again.code == 200 and as_json(again)["reused"] is True
        assert len(await sim_orders(merchant)) == 5
    finally:
        await running.stop(grace=2)


async def test_one_source_is_bounded_across_checkouts_and_others_are_not(tmp_path):
    running = await start_server(
        tmp_path, **LOOPBACK_PROXY, **{"checkout.orders_per_ip": 3, "checkout.orders_per_ip_window_s": 600}
    )
    try:
        merchant = merchant_for(running)
        answers, first = [], None
        for i in range(8):  # bounded: a fresh pay link each time, from one IP
            checkout = await create_checkout(merchant, 100 + i)
            desktop = await opened(merchant.base, checkout["id"], DESKTOP_UA)
            r = await prepay_from(desktop, checkout["id"], "198.51.100.7")
            answers.append((r.code, as_json(r).get("code")))
            if i == 0:
                first = (desktop, checkout["id"])
            if r.code == 429:
                assert 1 <= int(r.headers["Retry-After"]) <= 600
                assert as_json(r)["message"].startswith("Too many payment attempts")
        assert answers == [(200, None)] * 3 + [(429, "too_many_requests")] * 5
        assert len(await sim_orders(merchant)) == 3
        # The same IPv6 /64 is one source; another source is not held back.
        other = await create_checkout(merchant, 200)
        desktop = await opened(merchant.base, other["id"], DESKTOP_UA)
        assert (await prepay_from(desktop, other["id"], "2001:db8:1:2::10")).code == 200
        more = [await create_checkout(merchant, 201 + i) for i in range(3)]
        codes = []
        for i, c in enumerate(more):
            browser = await opened(merchant.base, c["id"], DESKTOP_UA)
            codes.append((await prepay_from(browser, c["id"], f"2001:db8:1:2::{i + 20}")).code)
        assert codes == [200, 200, 429]
        assert len(await sim_orders(merchant)) == 6
        # Reusing an order already made costs the limited source nothing.
        desktop, checkout_id = first
        again = await prepay_from(desktop, checkout_id, "198.51.100.7")
        assert again.code == 200 and as_json(again)["reused"] is True
    finally:
        await running.stop(grace=2)


async def test_a_paid_checkout_with_the_most_siblings_gets_every_one_closed(tmp_path):
    running = await start_server(tmp_path, **LOOPBACK_PROXY)  # defaults: max_orders 10
    try:
        services = running.services
        max_orders = running.settings.checkout.max_orders
        merchant = merchant_for(running)
        checkout = await create_checkout(merchant, 777)
        shopper = await opened(merchant.base, checkout["id"], MOBILE_UA)
        made = []
        for i in range(max_orders + 2):
            r = await prepay_from(shopper, checkout["id"], f"192.0.2.{i + 1}")
            if r.code == 200:
                made.append(as_json(r)["out_trade_no"])
        assert len(made) == max_orders
        # The shopper pays the last one; the notify confirms it.
        paid = await services.orders.require(made[-1])
        r = await merchant.post("/_wechat/_sim/pay", json_body={"prepay_id": paid.prepay_id, "outcome": "ok"})
        assert r.code == 200 and as_json(r)["ok"], r.body

        async def paid_checkout() -> bool:
            return (await get_checkout(merchant, checkout["id"]))["status"] == "paid"

        await wait_for(paid_checkout)
        siblings = [await services.orders.require(no) for no in made[:-1]]
        assert all(o.close_requested and o.state == "prepaid" for o in siblings)
        # Six minutes pass on both sides; one reconciler pass closes every sibling at WeChat.
        await age_orders(running, made)
        report = await services.reconciler.run_once()
        assert report.closed == max_orders - 1
        states = {o["out_trade_no"]: o["trade_state"] for o in await sim_orders(merchant)}
        assert states == {**{no: "CLOSED" for no in made[:-1]}, made[-1]: "SUCCESS"}
    finally:
        await running.stop(grace=2)


async def age_orders(running, out_trade_nos: list[str], by: timedelta = timedelta(minutes=6)) -> None:
    """Time passes for these orders, in the store and at the simulator (WeChat
    refuses closeorder within five minutes of an order's creation)."""
    services = running.services
    now = services.now()
    for no in out_trade_nos:
        order = await services.orders.require(no)
        await services.store.update_if("orders", no, {}, {"created_at": order.created_at - by, "next_check_at": now})
        sim_order = running.simulator.pay.orders.get((demo.MCH_ID, no))
        if sim_order is not None:
            sim_order.created_at -= by
