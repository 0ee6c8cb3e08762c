"""Duplicates and races: a thousand copies of one notify, concurrent prepays.

Fired from one async client with bounded concurrency (100 in flight) over
loopback, at one in-process server and at two server processes sharing one
SQLite file (the simulator in its own process). Exactly one transition to
paid, one webhook event, every reply SUCCESS.
"""
from __future__ import annotations

import asyncio
from collections import Counter

from service.models import AUDIT, CHECKOUTS, ORDERS, OUTBOX
from store.sqlite import SQLiteStore
from tests.server.browser import as_json
from tests.server.payments import Receiver, wait_for, webhook_overrides

from . import logwatch
from .harness import Client, Procs, bounded, browser, process_env, start_server
from .results import record

COPIES = 1000
IN_FLIGHT = 100


async def fire(clients: list[Client], body: bytes, copies: int = COPIES):
    """``copies`` identical notifies, spread round-robin over ``clients``."""
    return await bounded([lambda i=i: clients[i % len(clients)].notify(body) for i in range(copies)], IN_FLIGHT)


async def verdicts(store, out_trade_no: str) -> Counter:
    docs = await store.find(AUDIT, {"kind": "notify", "out_trade_no": out_trade_no}, limit=0)
    return Counter(d["verdict"] for d in docs)


async def test_a_thousand_notifies_at_one_server_pay_once(tmp_path):
    receiver = Receiver()
    running = await start_server(tmp_path, **webhook_overrides(receiver))
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(1234)
        no = paid["out_trade_no"]
        replies = await fire([client], client.signed_notify(paid["sim"]))
        codes = Counter(r.code for r in replies)
        for r in replies[:3]:
            logwatch.add_text(r.body)
        assert codes == {200: COPIES}, codes
        assert all(b"<return_code><![CDATA[SUCCESS]]>" in r.body for r in replies)
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
        record("duplicates", "1000 notifies, one server", "pass", notifies=COPIES, replies_success=codes[200],
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
