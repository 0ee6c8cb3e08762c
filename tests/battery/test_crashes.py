"""Crashes: kill -9 the server at random points while shoppers pay.

A standalone simulator (its own process, WeChat's notify retries at 1000x
speed), one server process restarted on the same SQLite file after every
kill, an in-test webhook receiver. Test pauses (service/pauses.py, sandbox
only) widen the windows: inside unifiedorder (plus simulator latency),
between the notify's verification and the state update, between the
order's move and the checkout's, and between a webhook's 2xx and its
"delivered" mark. After WeChat's retries and the reconciler: every order
paid at the simulator is paid in the store, none twice, none lost, and
every paid checkout's webhook arrived at least once (de-duplicable by id).

The CI variant pays 20 checkouts; ``-m slow`` runs 200:
``.venv/bin/python -m pytest -m slow tests/battery/test_crashes.py``.

Delays under crashes (``crash_delays``): rounds of a few payments each, and
in every round one kill -9 aimed at work held under a lease: a webhook
delivery pass (the merchant's receiver kills the server the moment a
``checkout.paid`` POST reaches it) or a reconciler pass (every notify is
lost, so only the reconciler can confirm; the kill lands once the pass holds
its lease, read from the store). It records the delay from each payment to
its webhook's first delivery, and from each kill to the first delivery after
it (median, 90th percentile, worst); the leases of the killed process hold
that work up until they expire.
"""
from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import time
from collections import Counter
from typing import Any, Callable

import pytest
from tornado.httpclient import HTTPClientError

from service.models import CHECKOUTS, ORDERS, OUTBOX
from store.sqlite import SQLiteStore
from tests.server.browser import as_json
from tests.server.payments import Receiver
from tests.server.versions import FAULT_ENDPOINTS

from .harness import Client, Procs, browser, process_env
from .results import record

PAUSES = ("prepay.before_unifiedorder=0.1,prepay.after_unifiedorder=0.15,notify.before_mark_paid=0.2,"
          "orders.before_settle=0.2,webhooks.after_delivery=0.15")


class Server:
    """One server process that can be killed and restarted on the same port and store."""

    def __init__(self, procs: Procs, env: dict[str, str]) -> None:
        self.procs, self.env = procs, env
        self.proc: Any = None
        self.port = 0
        self.up = asyncio.Event()
        self.kills: list[dict[str, Any]] = []

    async def start(self) -> None:
        self.proc, self.port = await self.procs.start_server(self.env, self.port or None)
        self.log_path = self.procs.tmp_path / f"server-{self.port}-{self.procs.counter}.log"
        self.up.set()

    def open_windows(self) -> list[str]:
        """Pauses begun and not ended in this process's log: what the kill cut."""
        text = self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""
        begun = Counter(line.split("pause ")[1].split()[0] for line in text.splitlines() if "pause " in line and line.endswith(" begin"))
        ended = Counter(line.split("pause ")[1].split()[0] for line in text.splitlines() if "pause " in line and line.endswith(" end"))
        return sorted((begun - ended).elements())

    def kill(self) -> float:
        """kill -9 now; returns when (wall clock)."""
        self.up.clear()
        windows = self.open_windows()
        os.kill(self.proc.pid, signal.SIGKILL)
        at = time.time()
        self.proc.wait()
        self.kills.append({"windows": windows, "at": at})
        return at

    async def kill_and_restart(self, down_for: float) -> None:
        self.kill()
        await asyncio.sleep(down_for)
        await self.start()


async def retrying(call, *, attempts: int = 400):
    """A shopper or merchant who retries while the server is down or busy."""
    last: Any = None
    for _ in range(attempts):
        try:
            reply = await call()
        except (OSError, HTTPClientError) as exc:
            last = exc
        else:
            if reply.code < 500:
                return reply
            last = reply.code, reply.body[:200]
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up: {last}")


async def pay_one(i: int, server: Server, env: dict[str, str], sim_base: str, run_id: str) -> dict[str, Any]:
    client = Client.remote(server.port, env, sim_base)
    r = await retrying(lambda: client.merchant.post(
        "/api/checkouts", json_body={"amount_fen": 100 + i, "description": f"crash {i}"},
        headers={**client.auth, "Idempotency-Key": f"{run_id}-{i}"}))
    assert r.code in (200, 201), r.body
    checkout = as_json(r)
    desktop = browser(client.base)

    async def prepay():
        if "_xsrf" not in desktop.cookies:
            page = await desktop.get(f"/pay/{checkout['id']}")
            if page.code != 200:
                return page
        return await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)

    reply = await retrying(prepay)
    if reply.code == 409:
        # A kill inside unifiedorder leaves that checkout's prepay lease with
        # the dead process until it lapses (6 s); a shopper who gets 409
        # meanwhile gives up; the reconciler closes the order WeChat may hold.
        return {"checkout": checkout["id"], "abandoned": as_json(reply)["code"]}
    result = as_json(reply)
    scan = await client.sim("POST", "scan", {"code_url": result["code_url"], "outcome": "ok"})
    assert scan.code == 200, scan.body
    return {"checkout": checkout["id"], "out_trade_no": result["out_trade_no"]}


async def crash_battery(tmp_path, *, payments: int, kills: int, concurrency: int, seed: int,
                        api_version: str = "v2") -> dict[str, Any]:
    rng = random.Random(seed)
    receiver = Receiver()
    procs = Procs(tmp_path)
    started = time.monotonic()
    try:
        sim_base = await procs.start_simulator(time_scale=1000.0)
        env = process_env(tmp_path, sim_base, **{
            "WXPAY_RECONCILER_ENABLED": "true", "WXPAY_RECONCILER_INTERVAL_S": "0.5",
            "WXPAY_RECONCILER_QUERY_AFTER_S": "1",
            "WXPAY_WEBHOOKS_URL": receiver.url, "WXPAY_WEBHOOKS_SECRET": receiver.secret,
            "WXPAY_WEBHOOKS_POLL_INTERVAL_S": "0.05", "WXPAY_WEBHOOKS_RETRY_BASE_S": "0.05",
            "WXPAY_WEBHOOKS_MAX_ATTEMPTS": "100",
            "WXPAY_CHECKOUT_ORDERS_PER_IP": "0",  # every shopper comes from 127.0.0.1
            "WXPAY_TEST_PAUSES": PAUSES,
            "WXPAY_WECHAT_API_VERSION": api_version,
        })
        server = Server(procs, env)
        await server.start()
        client = Client.remote(server.port, env, sim_base)
        await client.fault(endpoint=FAULT_ENDPOINTS[api_version]["order_native"], kind="latency", seconds=0.1,
                           count=None)
        gate = asyncio.Semaphore(concurrency)
        done = 0

        async def worker(i: int) -> dict[str, Any]:
            nonlocal done
            async with gate:
                out = await pay_one(i, server, env, sim_base, f"crash-{seed}")
                done += 1
                return out

        async def killer() -> None:
            for k in range(kills):
                target = (k + 1) * payments // (kills + 1)
                while done < target:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(rng.uniform(0.0, 0.4))  # a random point inside the traffic
                await server.kill_and_restart(rng.uniform(0.05, 0.3))

        tasks = [asyncio.ensure_future(worker(i)) for i in range(payments)]
        killing = asyncio.ensure_future(killer())
        paid_list = await asyncio.gather(*tasks)
        await killing
        await client.clear_faults()
        traffic_s = time.monotonic() - started

        # WeChat's side of the truth.
        sim_orders = as_json(await client.sim("GET", "orders"))["orders"]
        paid_at_wechat = {o["out_trade_no"] for o in sim_orders if o["trade_state"] == "SUCCESS"}
        assert {p["out_trade_no"] for p in paid_list if "out_trade_no" in p} <= paid_at_wechat
        abandoned = Counter(p["abandoned"] for p in paid_list if "abandoned" in p)

        store = SQLiteStore(env["WXPAY_STORE_SQLITE_PATH"])
        await store.open([])
        try:
            deadline = time.monotonic() + 120
            while True:
                orders = {d["_id"]: d for d in await store.find(ORDERS, {}, limit=0)}
                checkouts = {d["_id"]: d for d in await store.find(CHECKOUTS, {}, limit=0)}
                lost = sorted(n for n in paid_at_wechat if orders.get(n, {}).get("state") != "paid")
                unsettled = sorted(n for n, d in orders.items() if d.get("state") == "paid" and d.get("settle_due_at"))
                paid_checkouts = {orders[n]["checkout_id"] for n in paid_at_wechat if n in orders}
                not_paid = sorted(c for c in paid_checkouts if checkouts[c]["status"] != "paid")
                events = {d["_id"]: d for d in await store.find(OUTBOX, {}, limit=0)}
                undelivered = sorted(e for e, d in events.items() if d["state"] != "delivered")
                got = set(receiver.successes())
                missing_hooks = sorted(c for c in paid_checkouts if f"ev_{c[3:]}_paid" not in got)
                if not (lost or unsettled or not_paid or undelivered or missing_hooks) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
        finally:
            await store.close()
        per_checkout = Counter(d["checkout_id"] for d in orders.values() if d["state"] == "paid")
        twice = sorted(c for c, n in per_checkout.items() if n > 1)
        double_flags = sorted(c for c, d in checkouts.items() if d.get("double_paid"))
        deliveries = sum(receiver.successes().values())
        windows = Counter(w for k in server.kills for w in k["windows"])
        figures = {
            "api_version": api_version, "payments": payments, "abandoned_by_shopper": dict(abandoned), "kills": len(server.kills), "seed": seed, "concurrency": concurrency,
            "paid_at_wechat": len(paid_at_wechat), "paid_in_store": sum(1 for d in orders.values() if d["state"] == "paid"),
            "lost": len(lost), "paid_twice": len(twice), "double_paid_flags": len(double_flags),
            "unsettled": len(unsettled), "checkouts_not_paid": len(not_paid),
            "paid_via": dict(Counter(d.get("paid_via") for d in orders.values() if d["state"] == "paid")),
            "webhook_events": len(events), "webhook_deliveries": deliveries,
            "webhook_redeliveries": deliveries - len(receiver.successes()), "missing_webhooks": len(missing_hooks),
            "undelivered_events": len(undelivered),
            "kills_inside_window": dict(windows), "kills_between_windows": sum(1 for k in server.kills if not k["windows"]),
            "seconds": round(time.monotonic() - started, 1), "traffic_seconds": round(traffic_s, 1),
        }
        assert not lost, lost
        assert not twice and not double_flags, (twice, double_flags)
        assert not unsettled and not not_paid, (unsettled, not_paid)
        assert not missing_hooks and not undelivered, (missing_hooks, undelivered)
        assert len(server.kills) == kills
        return figures
    finally:
        procs.stop()
        receiver.stop()


async def test_crashes_ci_variant(tmp_path):
    figures = await crash_battery(tmp_path, payments=20, kills=4, concurrency=4, seed=20260101)
    record("crashes", "kill -9 across 20 payments (CI variant)", "pass", **figures)


async def test_crashes_ci_variant_on_apiv3(tmp_path):
    """The same kills on APIv3: its notifies (signed, encrypted, answered 204) are
    retried by WeChat across each restart, and the reconciler's queries are APIv3's."""
    figures = await crash_battery(tmp_path, payments=20, kills=4, concurrency=4, seed=20260101, api_version="v3")
    record("crashes", "kill -9 across 20 payments on APIv3 (CI variant)", "pass", **figures)


@pytest.mark.slow
async def test_crashes_200_payments(tmp_path):
    seed = int(os.environ.get("WXPAY_CRASH_SEED", "7"))
    figures = await crash_battery(tmp_path, payments=200, kills=25, concurrency=8, seed=seed)
    record("crashes", "kill -9 across 200 payments", "pass", **figures)


# -- delays under crashes aimed at leased work ------------------------------------------------

DELAY_PAUSES = "reconciler.before_check=0.2,webhooks.after_delivery=0.05"


class TimedReceiver(Receiver):
    """The merchant's endpoint: when each event was first accepted, and a
    trigger that kills the server while its delivery pass is in a POST."""

    def __init__(self) -> None:
        super().__init__()
        self.first_ok: dict[str, float] = {}
        self.kill_on_paid: Callable[[], None] | None = None

    def _receive(self, handler) -> None:
        event_id = handler.request.headers.get("Wxpay-Event-Id", "")
        if self.kill_on_paid is not None and event_id.endswith("_paid"):
            kill, self.kill_on_paid = self.kill_on_paid, None
            kill()  # the delivery pass holding the webhook lease dies mid-POST
            handler.set_status(500)
            handler.finish("killed")
            return
        super()._receive(handler)
        if self.seen[-1]["status"] == 200:
            self.first_ok.setdefault(event_id, time.time())


def spread(values: list[float]) -> dict[str, float]:
    """Median, 90th percentile (nearest rank) and worst, in seconds."""
    ordered = sorted(values)
    if not ordered:
        return {}
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return {"median": round(median, 1), "p90": round(ordered[math.ceil(0.9 * n) - 1], 1),
            "worst": round(ordered[-1], 1), "n": n}


async def crash_delays(tmp_path, *, rounds: int, per_round: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    receiver = TimedReceiver()
    procs = Procs(tmp_path)
    started = time.monotonic()
    store = None
    try:
        sim_base = await procs.start_simulator(time_scale=1000.0)
        env = process_env(tmp_path, sim_base, **{
            "WXPAY_RECONCILER_ENABLED": "true", "WXPAY_RECONCILER_INTERVAL_S": "0.5",
            "WXPAY_RECONCILER_QUERY_AFTER_S": "1",
            "WXPAY_WEBHOOKS_URL": receiver.url, "WXPAY_WEBHOOKS_SECRET": receiver.secret,
            "WXPAY_WEBHOOKS_POLL_INTERVAL_S": "0.05", "WXPAY_WEBHOOKS_RETRY_BASE_S": "0.05",
            "WXPAY_WEBHOOKS_MAX_ATTEMPTS": "100", "WXPAY_CHECKOUT_ORDERS_PER_IP": "0",
            "WXPAY_TEST_PAUSES": DELAY_PAUSES,
        })
        server = Server(procs, env)
        await server.start()
        store = SQLiteStore(env["WXPAY_STORE_SQLITE_PATH"])
        await store.open([])
        client = Client.remote(server.port, env, sim_base)
        paid_at: dict[str, float] = {}  # event id -> when WeChat took the money
        by_mode: dict[str, list[str]] = {"webhook": [], "reconciler": []}
        kills: list[tuple[str, float]] = []
        for r in range(rounds):
            mode = "webhook" if r % 2 == 0 else "reconciler"
            if mode == "reconciler":
                await client.fault(endpoint="notify", kind="drop", count=None)  # only the reconciler can confirm
            ready = []
            for i in range(per_round):
                checkout = await client.checkout(300 + r * per_round + i)
                _, result = await client.native_prepay(checkout["id"])
                ready.append((checkout["id"], result["code_url"]))
            killed = asyncio.Event()
            if mode == "webhook":
                def kill_now() -> None:
                    kills.append(("webhook", server.kill()))
                    killed.set()
                receiver.kill_on_paid = kill_now
            for checkout_id, code_url in ready:
                scan = await client.sim("POST", "scan", {"code_url": code_url, "outcome": "ok"})
                assert scan.code == 200 and as_json(scan)["ok"], scan.body
                event = f"ev_{checkout_id[3:]}_paid"
                paid_at[event] = time.time()
                by_mode[mode].append(event)
            if mode == "webhook":
                await asyncio.wait_for(killed.wait(), 60)
            else:
                await asyncio.sleep(1.0)  # the orders fall due (query_after_s)
                for _ in range(3000):  # bounded: until a pass holds the reconciler lease
                    lease = await store.get("leases", "reconciler")
                    if lease and f"-{server.proc.pid}-" in lease["holder"]:
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("no reconciler pass seen")
                kills.append(("reconciler", server.kill()))
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            await server.start()
            deadline = time.monotonic() + 120
            while not all(e in receiver.first_ok for e in paid_at) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await client.clear_faults()
        missing = sorted(e for e in paid_at if e not in receiver.first_ok)
        delays = {m: [receiver.first_ok[e] - paid_at[e] for e in events if e in receiver.first_ok]
                  for m, events in by_mode.items()}
        resumed = {m: [min(t for t in receiver.first_ok.values() if t > at) - at for mode, at in kills
                       if mode == m and any(t > at for t in receiver.first_ok.values())] for m in by_mode}
        figures = {
            "rounds": rounds, "payments": len(paid_at), "kills": len(kills),
            "kills_in_webhook_pass": sum(1 for m, _ in kills if m == "webhook"),
            "kills_in_reconciler_pass": sum(1 for m, _ in kills if m == "reconciler"),
            "lost_webhooks": len(missing), "seed": seed,
            "payment_to_webhook_s": spread(delays["webhook"] + delays["reconciler"]),
            "payment_to_webhook_s_webhook_pass_killed": spread(delays["webhook"]),
            "payment_to_webhook_s_reconciler_pass_killed": spread(delays["reconciler"]),
            "kill_to_first_delivery_s": spread(resumed["webhook"] + resumed["reconciler"]),
            "seconds": round(time.monotonic() - started, 1),
        }
        assert not missing, missing
        assert len(kills) == rounds
        return figures
    finally:
        if store is not None:
            await store.close()
        procs.stop()
        receiver.stop()


async def test_crash_delays_ci_variant(tmp_path):
    figures = await crash_delays(tmp_path, rounds=4, per_round=3, seed=20260102)
    record("crashes", "payment to webhook under kill -9 of leased passes (CI variant)", "pass", **figures)


@pytest.mark.slow
async def test_crash_delays_20_rounds(tmp_path):
    seed = int(os.environ.get("WXPAY_CRASH_SEED", "11"))
    figures = await crash_delays(tmp_path, rounds=20, per_round=4, seed=seed)
    record("crashes", "payment to webhook under kill -9 of leased passes", "pass", **figures)
