"""A bounded soak of mixed traffic against one sandbox server process.

``python -m tests.battery.soak --minutes 10`` (``make soak``). Loopback only:
the server runs ``server.py`` in sandbox mode on a fresh SQLite file, its
simulated WeChat in a process of its own (``--in-process-simulator`` mounts
it inside, where its ever-growing order book, about 3 KB per order, would
count in the server's RSS); virtual shoppers and a merchant
create checkouts, view pages, sign in through OAuth, prepay (Native QR and
JSAPI), pay through the simulator, poll the status, get duplicated notifies
(a simulator fault now and then) and some refunds. The server's RSS is
sampled; at the end the reconciler is given time and the store must hold
no pending order. Writes its figures to the battery results (section
``soak``); exits 1 if a bound was broken.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from service.models import CHECKOUTS, ORDERS, OUTBOX
from store.sqlite import SQLiteStore
from tests.server.browser import DESKTOP_UA, WECHAT_UA, Browser, as_json
from tests.server.payments import Receiver
from tests.server.processes import free_port, spawn, stop, wait_http

from . import results

RSS_GROWTH_BOUND_MB = 40.0  # after warm-up; SQLite's page cache and Python's arenas settle early


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Soak:
    def __init__(self, base: str, token: str, rng: random.Random, sim: str) -> None:
        self.base = base
        self.sim = sim  # the simulator's base URL (its /_sim/ side plays the shopper)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.rng = rng
        self.http = AsyncHTTPClient(force_instance=True, max_clients=100)
        self.counts: Counter = Counter()
        self.errors: list[str] = []

    def browser(self, ua: str = DESKTOP_UA) -> Browser:
        b = Browser(self.base, ua)
        b.client = self.http
        return b

    def check(self, what: str, reply, *ok: int) -> Any:
        self.counts[what] += 1
        if reply.code not in ok:
            self.errors.append(f"{what}: HTTP {reply.code} {reply.body[:160]!r}")
            raise RuntimeError(what)
        return reply

    async def journey(self) -> None:
        merchant = self.browser()
        amount = self.rng.randint(1, 50_000)
        r = self.check("create checkout", await merchant.post(
            "/api/checkouts", json_body={"amount_fen": amount, "description": "Soak tea"}, headers=self.auth), 201)
        checkout = as_json(r)
        cid = checkout["id"]
        if self.rng.random() < 0.35:  # inside WeChat: silent OAuth, JSAPI
            shopper = self.browser(WECHAT_UA)
            page, _hops = await shopper.follow(checkout["pay_url"])
            self.check("page view (wechat, oauth)", page, 200)
            r = self.check("prepay JSAPI", await shopper.post(f"/pay/{cid}/prepay", json_body={}, xsrf=True), 200)
            bridge = as_json(r)["bridge"]
            prepay_id = bridge["package"].split("=", 1)[1]
            pay = {"prepay_id": prepay_id, "outcome": "ok", "payload": bridge}
            pay_path = f"{self.sim}/_sim/pay"
        else:
            shopper = self.browser()
            self.check("page view", await shopper.get(f"/pay/{cid}"), 200)
            r = self.check("prepay NATIVE", await shopper.post(f"/pay/{cid}/prepay", json_body={}, xsrf=True), 200)
            if self.rng.random() < 0.2:  # a second tap: the same prepay_id comes back
                again = self.check("prepay repeat", await shopper.post(f"/pay/{cid}/prepay", json_body={}, xsrf=True), 200)
                if as_json(again)["out_trade_no"] != as_json(r)["out_trade_no"]:
                    self.errors.append("prepay repeat made a second order")
            pay = {"code_url": as_json(r)["code_url"], "outcome": "ok"}
            pay_path = f"{self.sim}/_sim/scan"
        self.check("status poll", await shopper.get(f"/pay/{cid}/status"), 200)
        if self.rng.random() < 0.1:
            self.check("fault: duplicate notify", await merchant.post(
                f"{self.sim}/_sim/faults", json_body={"endpoint": "notify", "kind": "duplicate", "n": 3, "count": 1}), 200)
        self.check("pay at simulator", await shopper.post(pay_path, json_body=pay), 200)
        for _ in range(400):
            status = as_json(self.check("status poll", await shopper.get(f"/pay/{cid}/status"), 200))
            if status["paid"]:
                break
            await asyncio.sleep(0.05)
        else:
            self.errors.append(f"{cid} not paid after polling")
            return
        self.counts["paid"] += 1
        if self.rng.random() < 0.15:
            part = self.rng.randint(1, amount)
            self.check("refund", await merchant.post(
                f"/api/checkouts/{cid}/refunds", json_body={"amount_fen": part, "reason": "soak"}, headers=self.auth), 200, 201)
        if self.rng.random() < 0.3:
            self.check("merchant read", await merchant.get(f"/api/checkouts/{cid}", headers=self.auth), 200)


async def run(minutes: float, concurrency: int, seed: int, workdir: Path, external: bool = True) -> dict[str, Any]:
    rng = random.Random(seed)
    port = free_port()
    receiver = Receiver()
    token = "soak-" + str(seed) + "-merchant-token-0123456789"
    env = {
        "WXPAY_STORE_SQLITE_PATH": str(workdir / "soak.sqlite3"),
        "WXPAY_MERCHANT_API_TOKENS": token,
        "WXPAY_SIMULATOR_NOTIFY_TIME_SCALE": "100",
        "WXPAY_RECONCILER_INTERVAL_S": "2", "WXPAY_RECONCILER_QUERY_AFTER_S": "5",
        "WXPAY_WEBHOOKS_URL": receiver.url, "WXPAY_WEBHOOKS_SECRET": receiver.secret,
        "WXPAY_WEBHOOKS_POLL_INTERVAL_S": "0.2", "WXPAY_WEBHOOKS_RETRY_BASE_S": "0.5",
        "WXPAY_LOG_LEVEL": "WARNING",
        "WXPAY_CHECKOUT_ORDERS_PER_IP": "0",  # every virtual shopper comes from 127.0.0.1
        "WXPAY_OAUTH_SIGN_INS_PER_IP": "0",  # likewise: the sign-in quota per source would refuse them
    }
    sim_proc = None
    base = f"http://127.0.0.1:{port}"
    sim_base = f"{base}/_wechat"
    if external:
        # WeChat in its own process, so the server's RSS is the server's own
        # (the simulator keeps every order in memory, as WeChat keeps them).
        sim_port = free_port()
        sim_base = f"http://127.0.0.1:{sim_port}"
        sim_proc = spawn(["-m", "wxpay.simulator", "--port", str(sim_port), "--notify-time-scale", "100"],
                         log_path=workdir / "sim.log")
        env.update({"WXPAY_WECHAT_PAY_BASE": sim_base, "WXPAY_WECHAT_API_BASE": sim_base,
                    "WXPAY_WECHAT_OPEN_BASE": sim_base})
    proc = spawn(["server.py", "--port", str(port)], env, log_path=workdir / "server.log")
    soak = Soak(base, token, rng, sim_base)
    samples: list[tuple[float, float]] = []
    sim_start = 0.0
    try:
        if sim_proc is not None:
            await wait_http(f"{sim_base}/_sim/", sim_proc)
            sim_start = rss_mb(sim_proc.pid)
        await wait_http(f"{base}/healthz", proc, tries=300)
        started = time.monotonic()
        deadline = started + minutes * 60
        warmup = started + min(60.0, minutes * 60 / 5)

        async def shopper() -> None:
            while time.monotonic() < deadline:
                try:
                    await soak.journey()
                except RuntimeError:
                    pass
                except Exception as exc:  # a transport error is an error reply too
                    soak.errors.append(f"{exc.__class__.__name__}: {exc}"[:200])

        async def sampler() -> None:
            while time.monotonic() < deadline:
                samples.append((round(time.monotonic() - started, 1), round(rss_mb(proc.pid), 1)))
                await asyncio.sleep(5)

        await asyncio.gather(sampler(), *(shopper() for _ in range(concurrency)))
        traffic_s = time.monotonic() - started
        end_rss = rss_mb(proc.pid)
        sim_end = rss_mb(sim_proc.pid) if sim_proc is not None else 0.0
        # Let the reconciler and the webhook task finish what is due.
        store = SQLiteStore(env["WXPAY_STORE_SQLITE_PATH"])
        await store.open([])
        try:
            for _ in range(120):
                pending = await store.count(ORDERS, {"state": {"$in": ["created", "prepaid"]}})
                unsettled = await store.count(ORDERS, {"state": "paid", "settle_due_at": {"$ne": None}})
                hooks_pending = await store.count(OUTBOX, {"state": "pending"})
                if not (pending or unsettled or hooks_pending):
                    break
                await asyncio.sleep(1)
            orders = await store.count(ORDERS, {})
            paid_orders = await store.count(ORDERS, {"state": "paid"})
            checkouts = await store.count(CHECKOUTS, {})
            events = await store.count(OUTBOX, {})
        finally:
            await store.close()
    finally:
        stop(proc, *([sim_proc] if sim_proc is not None else []))
        receiver.stop()
    warm = [rss for at, rss in samples if at >= warmup - started] or [samples[-1][1]]
    baseline = warm[0]
    figures = {
        "minutes": minutes, "concurrency": concurrency,
        "simulator": "own process" if external else "in the server process (sandbox default)", "seed": seed, "traffic_seconds": round(traffic_s, 1),
        "requests": sum(soak.counts.values()), "by_kind": dict(soak.counts), "error_replies": len(soak.errors),
        "errors_sample": soak.errors[:5], "checkouts": checkouts, "orders": orders, "paid_orders": paid_orders,
        "pending_orders_after_reconciler": pending, "unsettled_paid_orders": unsettled,
        "webhook_events": events, "webhook_events_pending": hooks_pending,
        "webhook_deliveries": sum(receiver.successes().values()),
        "rss_mb_start": samples[0][1] if samples else None, "rss_mb_after_warmup": baseline,
        "rss_mb_end": round(end_rss, 1), "rss_mb_peak": max(r for _, r in samples) if samples else None,
        "rss_growth_after_warmup_mb": round(end_rss - baseline, 1), "rss_bound_mb": RSS_GROWTH_BOUND_MB,
        "rss_samples": samples[:: max(1, len(samples) // 40)],
        "simulator_rss_mb_start_end": [round(sim_start, 1), round(sim_end, 1)] if external else None,
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.battery.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16, help="virtual shoppers at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--in-process-simulator", action="store_true",
                        help="mount the simulator in the server process (its order book then counts in the RSS)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wxpay-soak-") as tmp:
        figures = asyncio.run(run(args.minutes, args.concurrency, args.seed, Path(tmp), not args.in_process_simulator))
    broken = []
    if figures["error_replies"]:
        broken.append(f"{figures['error_replies']} error replies")
    if figures["pending_orders_after_reconciler"] or figures["unsettled_paid_orders"]:
        broken.append("orders left pending")
    if figures["rss_growth_after_warmup_mb"] > RSS_GROWTH_BOUND_MB:
        broken.append(f"RSS grew {figures['rss_growth_after_warmup_mb']} MB after warm-up")
    outcome = "pass" if not broken else "FAIL: " + "; ".join(broken)
    where = "in-process simulator" if args.in_process_simulator else "simulator in its own process"
    results.record("soak", f"mixed traffic for {args.minutes:g} min ({where})", outcome, **figures)
    print(json.dumps({"outcome": outcome, **{k: v for k, v in figures.items() if k != "rss_samples"}}, indent=1))
    return 0 if not broken else 1


if __name__ == "__main__":
    sys.exit(main())
