"""Where a first-time notify, a prepay and a status poll spend the server's CPU.

Not part of ``make bench``: a before/after tool for the hot paths. It starts
the standalone simulator and one real server (SQLite) on 127.0.0.1, the
server under cProfile switched on only while a phase runs, then per phase
(prepay, first-time notify, status poll) sends ``--orders`` requests and
prints the server's CPU ms per request (from /proc, all its threads) and the
top functions by cumulative time (main thread). ``--api-version v3`` builds
each notify as WeChat would (AES-GCM resource, RSA-signed headers with the
simulator's TEST ONLY keys).

    .venv/bin/python bench/profile_notify.py --api-version v2 --orders 1000
    .venv/bin/python bench/profile_notify.py --api-version v3 --no-profile   # CPU figures only
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import runpy
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run as harness  # noqa: E402
from loadgen import fetch_all  # noqa: E402

from store.open import INDEXES, open_store  # noqa: E402


def serve_profiled() -> None:
    """In the server process: SIGUSR1 starts the profiler, SIGUSR2 stops it and dumps."""
    out = os.environ["WXPAY_BENCH_PROFILE_OUT"]
    prof: list[cProfile.Profile] = []

    def start(*_: Any) -> None:
        prof[:] = [cProfile.Profile()]
        prof[0].enable()

    def stop(*_: Any) -> None:
        if prof:
            prof[0].disable()
            prof[0].dump_stats(out)
            prof.clear()
        Path(out + ".done").write_text("1")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["server.py", *sys.argv[2:]]
    runpy.run_path(str(ROOT / "server.py"), run_name="__main__")


async def paid_orders(sim_port: int, sqlite: str, checkout_ids: set[str]) -> list[tuple[dict, str]]:
    store = open_store(None, sqlite_path=sqlite, database="wxpay")
    await store.open(INDEXES)
    try:
        orders = [o for o in await store.find("orders", {"state": "prepaid"}, limit=0)
                  if o["checkout_id"] in checkout_ids]
    finally:
        await store.close()
    items = [("POST", "/_sim/pay", {"Content-Type": "application/json"},
              json.dumps({"prepay_id": o["prepay_id"], "outcome": "ok"})) for o in orders]
    out = []
    for order, (status, _, body) in zip(orders, await fetch_all(sim_port, items, concurrency=8)):
        reply = json.loads(body) if status == 200 else {}
        if reply.get("trade_state") == "SUCCESS":
            out.append((order, reply["transaction_id"]))
    return out


def print_by_file(stats: pstats.Stats, out: io.StringIO, top: int) -> None:
    """Own time summed per source file: which layer the CPU goes to."""
    per: dict[str, float] = {}
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = filename.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        if key == "~":  # C functions: by name
            key = "builtin " + str(name)
        per[key] = per.get(key, 0.0) + tottime
    total = sum(per.values()) or 1.0
    out.write("own time per file:\n")
    for key, seconds in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
        out.write(f"  {100 * seconds / total:5.1f}%  {seconds:7.3f} s  {key}\n")


class Phase:
    def __init__(self, server: harness.Proc, prof_out: Path, enabled: bool) -> None:
        self.server, self.prof_out, self.enabled = server, prof_out, enabled

    async def run(self, name: str, port: int, items: list, concurrency: int, expect: int, top: int) -> dict:
        done = Path(str(self.prof_out) + ".done")
        done.unlink(missing_ok=True)
        if self.enabled:
            self.server.popen.send_signal(signal.SIGUSR1)
            await asyncio.sleep(0.2)
        before = self.server.cpu_seconds()
        t0 = time.perf_counter()
        replies = await fetch_all(port, items, concurrency=concurrency)
        seconds = time.perf_counter() - t0
        cpu_ms = (self.server.cpu_seconds() - before) * 1000 / len(items)
        bad = [r for r in replies if r[0] != expect]
        text = ""
        if self.enabled:
            self.server.popen.send_signal(signal.SIGUSR2)
            for _ in range(100):
                if done.exists():
                    break
                await asyncio.sleep(0.1)
            buf = io.StringIO()
            stats = pstats.Stats(str(self.prof_out), stream=buf)
            stats.sort_stats("cumulative").print_stats(top)
            stats.sort_stats("tottime").print_stats(top // 2)
            print_by_file(stats, buf, top // 2)
            text = buf.getvalue()
        print(f"== {name}: {len(items)} in {seconds:.2f} s ({len(items) / seconds:,.0f}/s), "
              f"server CPU {cpu_ms:.3f} ms each, {len(bad)} bad{' e.g. ' + repr(bad[0][2][:200]) if bad else ''}",
              flush=True)
        if text:
            print(text, flush=True)
        return {"cpu_ms": cpu_ms, "rate": len(items) / seconds, "bad": len(bad)}


async def main(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="wxpay-profile-"))
    procs = harness.Procs(tmp)
    bench = harness.Bench(args, tmp, procs, None)  # only start_sim is used
    try:
        sim = await bench.start_sim("sim")
        sqlite = str(tmp / "p.sqlite3")
        port = harness.free_port()
        env = {**harness.server_env(sim.port, sqlite=sqlite), "WXPAY_WECHAT_API_VERSION": args.api_version,
               "WXPAY_BENCH_PROFILE_OUT": str(tmp / "phase.prof")}
        server = procs.spawn("server", [__file__, "--serve", "--port", str(port)], env, port=port)
        await procs.wait_http(server, "/healthz")
        phase = Phase(server, tmp / "phase.prof", not args.no_profile)
        n = args.orders
        ids, _ = await harness.create_checkouts(port, n + 50, "prof-" + secrets.token_hex(3))
        session = await harness.shopper_session(port, sim.port, ids[0])
        warm, ids = ids[:50], ids[50:]
        pay = [("POST", f"/pay/{cid}/prepay", session, '{"trade_type":"JSAPI"}') for cid in warm]
        await fetch_all(port, pay, concurrency=args.concurrency)  # warm-up, not measured
        out: dict[str, Any] = {}
        pay = [("POST", f"/pay/{cid}/prepay", session, '{"trade_type":"JSAPI"}') for cid in ids]
        out["prepay"] = await phase.run("prepay", port, pay, args.concurrency, 200, args.top)
        paid = await paid_orders(sim.port, sqlite, set(warm) | set(ids))
        notifies = []
        for order, txn in paid:
            if args.api_version == "v3":
                _, _, text, headers = harness.notify_for("v3", order, txn)
                body = text.encode()
            else:
                headers, body = {"Content-Type": "text/xml"}, harness.notify_for("v2", order, txn)[2].encode()
            notifies.append(("POST", "/notify/pay", headers, body))
        warm_set = set(warm)
        first = [x for x, (o, _) in zip(notifies, paid) if o["checkout_id"] in warm_set]
        await fetch_all(port, first, concurrency=args.concurrency)
        rest = [x for x, (o, _) in zip(notifies, paid) if o["checkout_id"] not in warm_set]
        expect = 204 if args.api_version == "v3" else 200
        out["notify"] = await phase.run("notify (first time)", port, rest, args.concurrency, expect, args.top)
        out["duplicate"] = await phase.run("notify (duplicate)", port, rest, args.concurrency, expect, args.top)
        polls = [("GET", f"/pay/{cid}/status", {}, b"") for cid in ids]
        out["status"] = await phase.run("status poll", port, polls, args.concurrency, 200, args.top)
        out["server_rss_kb"] = server.rss_kb()
        return out
    finally:
        procs.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_profiled()
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-version", choices=("v2", "v3"), default="v2")
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--no-profile", action="store_true", help="CPU figures only (no cProfile overhead)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (process logs)")
    parser.add_argument("--json", help="write the figures here")
    a = parser.parse_args()
    figures = asyncio.run(main(a))
    print(json.dumps(figures))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))
