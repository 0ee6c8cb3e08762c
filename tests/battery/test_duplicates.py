"""Duplicates and races: a thousand copies of one notify, concurrent prepays,
a flood of new orders on one pay link, a cancel racing unifiedorder.

Fired from one async client with bounded concurrency (100 in flight) over
loopback, at one in-process server and at two server processes sharing one
SQLite file (the simulator in its own process). Exactly one transition to
paid, one webhook event, every reply SUCCESS; at most the configured number
of WeChat orders per pay link and per source.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from service import pauses
from service.models import AUDIT, CHECKOUTS, ORDERS, OUTBOX
from store.sqlite import SQLiteStore
from tests.server.browser import MOBILE_UA, as_json
from wxpay.simulator import demo
from tests.server.payments import Receiver, wait_for, webhook_overrides
from tests.server.versions import accepted, payment_notify
from wxpay.gateway import RefundRequest

from . import logwatch
from .harness import Client, Procs, bounded, browser, process_env, start_server
from .results import record

COPIES = 1000
IN_FLIGHT = 100


async def fire(clients: list[Client], body: bytes, copies: int = COPIES, headers: dict[str, str] | None = None):
    """``copies`` identical notifies, spread round-robin over ``clients``."""
    return await bounded([lambda i=i: clients[i % len(clients)].notify(body, headers=headers) for i in range(copies)],
                         IN_FLIGHT)


async def verdicts(store, out_trade_no: str) -> Counter:
    docs = await store.find(AUDIT, {"kind": "notify", "out_trade_no": out_trade_no}, limit=0)
    return Counter(d["verdict"] for d in docs)


@pytest.mark.parametrize("api_version", ["v2", "v3"])
async def test_a_thousand_notifies_at_one_server_pay_once(tmp_path, api_version):
    """APIv3: a thousand copies of one notify WeChat signed (the same body and
    headers: a replay inside the 5-minute window is a duplicate, not a forgery)."""
    receiver = Receiver()
    running = await start_server(tmp_path, **webhook_overrides(receiver, **{"wechat.api_version": api_version}))
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(1234)
        no = paid["out_trade_no"]
        if api_version == "v3":
            headers, body = payment_notify(running, "v3", no)
            replies = await fire([client], body, headers=headers)
        else:
            replies = await fire([client], client.signed_notify(paid["sim"]))
        codes = Counter(r.code for r in replies)
        for r in replies[:3]:
            logwatch.add_text(r.body)
        ok = {"v2": 200, "v3": 204}[api_version]
        assert codes == {ok: COPIES}, codes
        assert all(accepted(api_version, r) for r in replies)
        seen = await verdicts(client.store, no)
        assert seen == {"paid": 1, "duplicate": COPIES - 1}, seen
        order = await client.store.get(ORDERS, no)
        stored = await client.store.get(CHECKOUTS, checkout["id"])
        assert order["state"] == "paid" and stored["status"] == "paid"
        assert await client.store.count(OUTBOX, {"checkout_id": checkout["id"]}) == 1

        async def delivered():
            return bool(receiver.successes())

        await wait_for(delivered)
        assert receiver.successes() == {f"ev_{checkout['id'][3:]}_paid": 1}
        record("duplicates", "1000 notifies, one server" + (" (APIv3)" if api_version == "v3" else ""), "pass",
               notifies=COPIES, replies_success=codes[ok],
               transitions_to_paid=seen["paid"], duplicates=seen["duplicate"], webhook_events=1,
               webhook_deliveries=sum(receiver.successes().values()))
    finally:
        await running.stop(grace=1)
        receiver.stop()


async def test_concurrent_prepays_make_one_unifiedorder(tmp_path):
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        checkout = await client.checkout(800)
        desktop = browser(client.base)
        await desktop.get(f"/pay/{checkout['id']}")
        replies = await bounded(
            [lambda: desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True) for _ in range(200)], 100
        )
        assert Counter(r.code for r in replies) == {200: 200}
        numbers = {as_json(r)["out_trade_no"] for r in replies}
        assert len(numbers) == 1, numbers
        sim_orders = as_json(await client.sim("GET", "orders"))["orders"]
        made = [o for o in sim_orders if o["product_id"] == checkout["id"]]
        assert len(made) == 1, made
        record("duplicates", "200 concurrent prepays, one server", "pass", prepays=200, unifiedorders=len(made),
               distinct_out_trade_nos=len(numbers))
    finally:
        await running.stop(grace=1)


async def test_two_processes_on_one_store(tmp_path):
    """Both halves of the race in separate processes: prepays and notifies."""
    receiver = Receiver()
    procs = Procs(tmp_path)
    try:
        sim_base = await procs.start_simulator()
        env = process_env(tmp_path, sim_base, **{
            "WXPAY_WEBHOOKS_URL": receiver.url, "WXPAY_WEBHOOKS_SECRET": receiver.secret,
            "WXPAY_WEBHOOKS_POLL_INTERVAL_S": "0.05", "WXPAY_WEBHOOKS_RETRY_BASE_S": "0.05",
        })
        (_p1, port1), (_p2, port2) = await asyncio.gather(procs.start_server(env), procs.start_server(env))
        one, two = Client.remote(port1, env, sim_base), Client.remote(port2, env, sim_base)

        # Concurrent prepays for one checkout, half through each process.
        checkout = await one.checkout(900)
        shoppers = []
        for c in (one, two):
            b = browser(c.base)
            await b.get(f"/pay/{checkout['id']}")
            shoppers.append(b)
        replies = await bounded(
            [lambda i=i: shoppers[i % 2].post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
             for i in range(100)], 100
        )
        assert Counter(r.code for r in replies) == {200: 100}, [r.body for r in replies if r.code != 200][:3]
        numbers = {as_json(r)["out_trade_no"] for r in replies}
        made = [o for o in as_json(await one.sim("GET", "orders"))["orders"] if o["product_id"] == checkout["id"]]
        assert len(numbers) == 1 and len(made) == 1, (numbers, made)
        record("duplicates", "100 concurrent prepays, two processes", "pass", prepays=100, unifiedorders=len(made))

        # A thousand copies of one notify, alternating between the processes.
        paid_checkout, paid = await one.paid_at_wechat_only(4321)
        no = paid["out_trade_no"]
        notify_replies = await fire([one, two], one.signed_notify(paid["sim"]))
        codes = Counter(r.code for r in notify_replies)
        assert codes == {200: COPIES}, (codes, [r.body for r in notify_replies if r.code != 200][:3])
        assert all(b"SUCCESS" in r.body for r in notify_replies)

        async def delivered():
            return bool(receiver.successes())

        await wait_for(delivered, tries=500)
        store = SQLiteStore(env["WXPAY_STORE_SQLITE_PATH"])
        await store.open([])
        try:
            seen = await verdicts(store, no)
            order = await store.get(ORDERS, no)
            events = await store.count(OUTBOX, {"checkout_id": paid_checkout["id"]})
        finally:
            await store.close()
        assert seen == {"paid": 1, "duplicate": COPIES - 1}, seen
        assert order["state"] == "paid" and events == 1
        await asyncio.sleep(0.3)  # a second delivery, if any, would arrive by now; none may
        assert receiver.successes() == {f"ev_{paid_checkout['id'][3:]}_paid": 1}
        record("duplicates", "1000 notifies, two processes on one SQLite file", "pass", notifies=COPIES,
               replies_success=codes[200], transitions_to_paid=seen["paid"], duplicates=seen["duplicate"],
               webhook_events=events, webhook_deliveries=sum(receiver.successes().values()))
    finally:
        procs.stop()
        receiver.stop()


FLOOD = 100
MAX_ORDERS = 5
PER_IP = 8


async def test_a_pay_link_flood_and_one_source_across_two_processes(tmp_path):
    """An attacker holding one pay link varies the H5 client IP (a trusted
    proxy's X-Forwarded-For) to make a new WeChat order per request, spread
    over two server processes on one SQLite file; then one IP walks through
    fresh pay links. The standalone simulator counts what reached WeChat."""
    procs = Procs(tmp_path)
    try:
        sim_base = await procs.start_simulator()
        env = process_env(tmp_path, sim_base, **{
            "WXPAY_SERVER_TRUSTED_PROXIES": "127.0.0.1/32",
            "WXPAY_CHECKOUT_MAX_ORDERS": str(MAX_ORDERS), "WXPAY_CHECKOUT_ORDERS_PER_IP": str(PER_IP),
        })
        (_p1, port1), (_p2, port2) = await asyncio.gather(procs.start_server(env), procs.start_server(env))
        clients = [Client.remote(port, env, sim_base) for port in (port1, port2)]
        checkout = await clients[0].checkout(990)
        attackers = []
        for c in clients:
            b = browser(c.base, MOBILE_UA)
            await b.get(f"/pay/{checkout['id']}")
            attackers.append(b)
        replies = await bounded([
            lambda i=i: attackers[i % 2].post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True,
                                              headers={"X-Forwarded-For": f"10.{i // 250}.{i % 250}.9"})
            for i in range(FLOOD)], 20)
        codes = Counter((r.code, as_json(r).get("code")) for r in replies)
        assert codes == {(200, None): MAX_ORDERS, (409, "too_many_orders"): FLOOD - MAX_ORDERS}, codes
        at_wechat = as_json(await clients[0].sim("GET", "orders"))["orders"]
        assert len(at_wechat) == MAX_ORDERS, len(at_wechat)

        # The shopper pays one of them: every sibling is handed to the reconciler to close.
        made = [as_json(r)["out_trade_no"] for r in replies if r.code == 200]
        store = SQLiteStore(env["WXPAY_STORE_SQLITE_PATH"])
        await store.open([])
        try:
            prepay_id = (await store.get(ORDERS, made[0]))["prepay_id"]
            paid = await clients[1].sim("POST", "pay", {"prepay_id": prepay_id, "outcome": "ok"})
            assert as_json(paid)["ok"], paid.body

            async def settled() -> bool:
                docs = [await store.get(ORDERS, no) for no in made]
                return docs[0]["state"] == "paid" and all(d.get("close_requested") for d in docs[1:])

            await wait_for(settled, tries=500)
        finally:
            await store.close()

        # One source across fresh pay links, alternating processes: PER_IP orders, then 429.
        source_replies = []
        for i in range(3 * PER_IP):
            c = clients[i % 2]
            fresh = await c.checkout(100 + i)
            desktop = browser(c.base)
            await desktop.get(f"/pay/{fresh['id']}")
            source_replies.append(await desktop.post(f"/pay/{fresh['id']}/prepay", json_body={}, xsrf=True,
                                                     headers={"X-Forwarded-For": "198.51.100.20"}))
        source_codes = Counter((r.code, as_json(r).get("code")) for r in source_replies)
        assert source_codes == {(200, None): PER_IP, (429, "too_many_requests"): 2 * PER_IP}, source_codes
        assert all(r.headers.get("Retry-After") for r in source_replies if r.code == 429)
        total = len(as_json(await clients[0].sim("GET", "orders"))["orders"])
        assert total == MAX_ORDERS + PER_IP, total
        record("duplicates", "pay-link flood and one source, two processes", "pass",
               prepays_on_one_link=FLOOD, distinct_client_ips=FLOOD, max_orders=MAX_ORDERS,
               unifiedorders_for_the_link=len(at_wechat), refused_too_many_orders=codes[(409, "too_many_orders")],
               siblings_closed_after_payment=len(made) - 1, prepays_from_one_ip=3 * PER_IP, orders_per_ip=PER_IP,
               unifiedorders_for_the_ip=total - len(at_wechat),
               refused_too_many_requests=source_codes[(429, "too_many_requests")])
    finally:
        procs.stop()


async def test_a_cancel_racing_unifiedorder(tmp_path):
    """The prepay is held (a test gate) after its order is stored and before
    WeChat is asked; the merchant cancels; then WeChat answers. The order is
    closed too, its prepay_id never leaves, and when it is paid anyway the
    money goes back and the checkout stays closed."""
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        services = running.services
        results: dict[str, object] = {}
        for paid_anyway in (False, True):
            checkout = await client.checkout(640 + paid_anyway)
            desktop = browser(client.base)
            await desktop.get(f"/pay/{checkout['id']}")
            held = pauses.gate("prepay.before_unifiedorder")
            paying = asyncio.ensure_future(desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
            await held.reached()
            cancelled = await client.merchant.post(f"/api/checkouts/{checkout['id']}/cancel", headers=client.auth)
            assert cancelled.code == 200 and as_json(cancelled)["status"] == "closed", cancelled.body
            held.release()
            prepaid = await paying
            pauses.release_gates()
            assert prepaid.code == 409 and as_json(prepaid)["code"] == "checkout_closed", prepaid.body
            (order,) = await services.orders.for_checkout(checkout["id"])
            assert order.close_requested
            if paid_anyway:  # as a shopper holding the prepay_id would
                r = await client.sim("POST", "pay", {"prepay_id": order.prepay_id, "outcome": "ok"})
                assert as_json(r)["ok"], r.body

                async def refunded() -> bool:
                    refund = await services.refunds.get("D" + order.out_trade_no)
                    return refund is not None and refund.state == "succeeded"

                await wait_for(refunded)
            # WeChat's five minutes pass; one reconciler pass.
            old = services.now() - timedelta(minutes=6)
            await services.store.update_if(ORDERS, order.out_trade_no, {}, {"created_at": old, "next_check_at": services.now()})
            running.simulator.pay.orders[(demo.MCH_ID, order.out_trade_no)].created_at = old
            await services.reconciler.run_once()
            at_wechat = as_json(await client.sim("GET", f"orders/{order.out_trade_no}"))["order"]["trade_state"]
            view = await client.store.get(CHECKOUTS, checkout["id"])
            assert view["status"] == "closed" and bool(view.get("double_paid")) == paid_anyway
            assert at_wechat == ("REFUND" if paid_anyway else "CLOSED"), at_wechat
            key = "paid_anyway" if paid_anyway else "unpaid"
            results[f"{key}_cancel_reply"] = cancelled.code
            results[f"{key}_prepay_reply"] = f"{prepaid.code} {as_json(prepaid)['code']}"
            results[f"{key}_at_wechat_after"] = at_wechat
            results[f"{key}_checkout"] = view["status"] + (" (double_paid, refunded)" if paid_anyway else "")
        record("duplicates", "a cancel racing unifiedorder", "pass", **results)
    finally:
        pauses.release_gates()
        await running.stop(grace=1)


async def test_a_notify_for_a_payment_refunded_before_it_arrived(tmp_path):
    """WeChat's notifies were lost, and the merchant refunded the payment in the
    merchant platform before a retry came: orderquery says REFUND, which is a
    payment (the money moved, then went back), so the notify is confirmed, not
    refused on every retry."""
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(1840)
        no = paid["out_trade_no"]
        await running.services.gateway.refund(RefundRequest("platform-1", no, demo.OFFICIAL_ACCOUNT_APPID, 1840, 1840))
        assert as_json(await client.sim("GET", f"orders/{no}"))["order"]["trade_state"] == "REFUND"
        reply = await client.notify(client.signed_notify(paid["sim"]))
        logwatch.add_text(reply.body)
        assert reply.code == 200 and b"<return_code><![CDATA[SUCCESS]]>" in reply.body, reply.body
        order = await client.store.get(ORDERS, no)
        assert order["state"] == "paid" and order["paid_via"] == "notify"
        assert (await client.store.get(CHECKOUTS, checkout["id"]))["status"] == "paid"
        record("duplicates", "a notify for a payment refunded at WeChat before it arrived", "pass",
               reply=reply.code, order_state=order["state"])
    finally:
        await running.stop(grace=1)
