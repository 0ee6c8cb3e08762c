"""What a refused notify costs, and what a large audit trail costs /status.

    .venv/bin/python bench/notify_storage.py [--posts 5000] [--trail 5000] [--json]

One sandbox server in this process on 127.0.0.1 with its own SQLite file
(reconciler off). Two bounded phases, the same on every version of the code:

1. ``--posts`` refused notifies (16 KiB each, a bad signature on a real
   order's number) over one kept-alive connection, then the SQLite file's
   growth (after a checkpoint) divided by the number of posts. Run twice: with
   the per-source limit made too high to engage (the cost of one recorded
   refusal) and with the defaults (what a flood from one source costs).
   Then the median latency of ``/status.json`` and ``/metrics`` (15
   requests each) on that server: the symptom the flood caused.
2. ``--trail`` audit records of ``--record-bytes`` (16 KiB) each written
   straight into the store (a large trail of big records, however it came
   to be), then the same latencies.

Settings the code under test does not know are left out, so the same script
measures the code before and after a change.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tornado.httpclient import AsyncHTTPClient  # noqa: E402
from tornado.testing import bind_unused_port  # noqa: E402

import server  # noqa: E402
from config import load_settings  # noqa: E402
from config.settings import iter_keys  # noqa: E402

BODY_BYTES = 16 * 1024
ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:sandbox-admin").decode()}


def settings(folder: Path, **extra: Any):
    known = {k.dotted for k in iter_keys()}
    values = {
        "store.sqlite_path": str(folder / "wxpay.sqlite3"),
        "reconciler.enabled": False,
        **{k: v for k, v in extra.items() if k in known},
    }
    return load_settings(None, env={}, overrides=values)


class CountWarnings(logging.Handler):
    """Counts WARNING-or-worse records (the lines an operator's log would get)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def file_bytes(path: str) -> int:
    """The database file's size once the WAL is checkpointed into it: what is
    stored durably (the WAL itself is reset at every checkpoint)."""
    conn = sqlite3.connect(path, timeout=5)
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            raise RuntimeError("checkpoint could not finish")
    finally:
        conn.close()
    return os.path.getsize(path)


def refused_body(out_trade_no: str) -> bytes:
    pad = "A" * (BODY_BYTES - 200)
    return (
        f"<xml><return_code>SUCCESS</return_code><out_trade_no>{out_trade_no}</out_trade_no>"
        f"<total_fee>1</total_fee><pad>{pad}</pad><sign>{'0' * 32}</sign></xml>"
    ).encode()


async def make_order(base: str, client: AsyncHTTPClient) -> str:
    r = await client.fetch(
        base + "/api/checkouts", method="POST",
        body=json.dumps({"amount_fen": 100, "description": "bench"}),
        headers={"Authorization": "Bearer sandbox-merchant-token"},
    )
    checkout = json.loads(r.body)
    page = await client.fetch(base + f"/pay/{checkout['id']}", raise_error=False)
    cookies = "; ".join(c.split(";", 1)[0] for c in page.headers.get_list("Set-Cookie"))
    xsrf = next(c.split("=", 1)[1] for c in cookies.split("; ") if c.startswith("_xsrf="))
    r = await client.fetch(
        base + f"/pay/{checkout['id']}/prepay", method="POST", body="{}",
        headers={"Cookie": cookies, "X-XSRFToken": xsrf, "Content-Type": "application/json"},
    )
    return json.loads(r.body)["out_trade_no"]


async def flood(folder: Path, posts: int, **extra: Any) -> dict[str, Any]:
    sock, _ = bind_unused_port()
    running = await server.start(settings(folder, **extra), sockets=[sock])
    base = f"http://127.0.0.1:{running.port}"
    client = AsyncHTTPClient(force_instance=True, max_clients=1)
    try:
        out_trade_no = await make_order(base, client)
        body = refused_body(out_trade_no)
        await asyncio.sleep(0.2)
        path = running.settings.store.sqlite_path
        before = file_bytes(path)
        counter = CountWarnings()
        logging.getLogger().addHandler(counter)
        started = time.perf_counter()
        statuses: dict[int, int] = {}
        for _ in range(posts):
            r = await client.fetch(base + "/notify/pay", method="POST", body=body, raise_error=False)
            statuses[r.code] = statuses.get(r.code, 0) + 1
        seconds = time.perf_counter() - started
        logging.getLogger().removeHandler(counter)
        grown = file_bytes(path) - before
        after_flood = await admin_latency(base, client)
        return {
            "posts": posts, "body_bytes": len(body), "seconds": round(seconds, 2),
            "file_growth_bytes": grown, "bytes_per_refused_notify": round(grown / posts, 1), "statuses": statuses,
            "warning_log_lines": counter.count,
            "after_the_flood": after_flood,
        }
    finally:
        client.close()
        await running.stop(grace=1)


async def admin_latency(base: str, client: AsyncHTTPClient) -> dict[str, float]:
    out = {}
    for path in ("/status.json", "/metrics"):
        await client.fetch(base + path, headers=ADMIN)  # warm
        times = []
        for _ in range(15):
            started = time.perf_counter()
            r = await client.fetch(base + path, headers=ADMIN)
            assert r.code == 200
            times.append(time.perf_counter() - started)
        out[path + " median_ms"] = round(statistics.median(times) * 1000, 1)
    return out


async def status_latency(folder: Path, trail: int, record_bytes: int = BODY_BYTES) -> dict[str, Any]:
    sock, _ = bind_unused_port()
    running = await server.start(settings(folder), sockets=[sock])
    base = f"http://127.0.0.1:{running.port}"
    client = AsyncHTTPClient(force_instance=True, max_clients=1)
    store, now = running.services.store, running.services.now()
    try:
        raw = "<xml>" + "B" * max(0, record_bytes - 11) + "</xml>"
        for i in range(trail):
            await store.insert("audit", {
                "_id": "a_" + secrets.token_hex(10), "kind": "notify", "verdict": "paid", "ok": True,
                "at": now - timedelta(seconds=i), "raw": raw, "latency_ms": 1.0,
            })
        out: dict[str, Any] = {"trail_records": trail, "record_bytes": record_bytes}
        out.update(await admin_latency(base, client))
        return out
    finally:
        client.close()
        await running.stop(grace=1)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--trail", type=int, default=5000)
    parser.add_argument("--record-bytes", type=int, default=BODY_BYTES, help="raw body of each audit record")
    parser.add_argument("--only-status", action="store_true", help="skip the flood phase")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger().addHandler(logging.NullHandler())  # counted, not printed
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_status:
            results["refused_unlimited"] = await flood(
                Path(tmp) / "a", args.posts,
                **{"notify.refused_per_minute": 10**6, "notify.refused_per_minute_total": 10**6},
            )
            results["refused_defaults"] = await flood(Path(tmp) / "b", args.posts)
        results["status"] = await status_latency(Path(tmp) / "c", args.trail, args.record_bytes)
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
