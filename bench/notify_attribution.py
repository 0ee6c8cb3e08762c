"""Where a first-time notify's server CPU goes, part by part, in µs.

Not part of ``make bench``: a before/after tool for the notify path's
closing note (issue 16). It runs ``bench/profile_notify.py``'s journey
(standalone simulator, one real server on SQLite, 127.0.0.1), with the
server's parts wrapped in ``time.thread_time_ns`` counters instead of
cProfile, and requests sent one at a time (``--concurrency 1``, the
default here) so that a part awaited across the WeChat call counts only
its own request's callbacks. Each figure is *inclusive* (a part's
children are in it); the report subtracts children to name what is left.

    .venv/bin/python bench/notify_attribution.py --api-version v2 --orders 1000
"""
from __future__ import annotations

import functools
import inspect
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import profile_notify as pn  # noqa: E402

_ns: dict[str, int] = {}
_n: dict[str, int] = {}


def _add(name: str, ns: int) -> None:
    _ns[name] = _ns.get(name, 0) + ns
    _n[name] = _n.get(name, 0) + 1


def _wrap(owner: Any, attr: str, name: str | Callable[..., str]) -> None:
    original = getattr(owner, attr)
    label = name if callable(name) else (lambda *a, **k: name)
    clock = time.thread_time_ns
    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            t = clock()
            try:
                return await original(*args, **kwargs)
            finally:
                _add(label(*args, **kwargs), clock() - t)
    else:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            t = clock()
            try:
                return original(*args, **kwargs)
            finally:
                _add(label(*args, **kwargs), clock() - t)
    setattr(owner, attr, timed)


def install() -> None:
    import tornado.web

    import handlers.access_log as access_log
    import handlers.notify as notify_handlers
    import service.audit as audit
    import service.lifecycle as lifecycle
    import service.notify_endpoint as endpoint
    import service.notify_stats as notify_stats
    import service.orders as orders
    import service.outbox as outbox
    import service.payment_notify as payment_notify
    import service.payments as payments
    import wxpay.gateway as gateway
    import wxpay.gateways as gateways
    from wxpay.v2_gateway import V2Gateway
    from wxpay.v3_gateway import V3Gateway

    _wrap(tornado.web.RequestHandler, "_execute", "tornado _execute")
    _wrap(notify_handlers.PaymentNotifyHandler, "post", "handler post")
    _wrap(tornado.web.RequestHandler, "finish", "tornado finish")
    _wrap(access_log.AccessLog, "__call__", "access log")
    _wrap(gateways.Gateways, "reply", "gateways.reply")
    _wrap(endpoint.NotifyEndpoint, "handle", "endpoint.handle")
    _wrap(payment_notify.PaymentNotifyService, "_handle", "service _handle")
    _wrap(gateway.PayGateway, "read_payment_notify", "gateway read_payment_notify")
    _wrap(gateway.PayGateway, "judge_payment_notify", "gateway judge_payment_notify")
    for cls in (V2Gateway, V3Gateway):
        _wrap(cls, "query_order", "gateway query_order")
    _wrap(orders.OrderBook, "get", "orders.get")
    _wrap(payments.Payments, "confirm", "payments.confirm")
    _wrap(payments.Payments, "settle", "payments.settle")
    _wrap(payments.Payments, "_close_siblings", "settle: siblings")
    _wrap(lifecycle.Lifecycle, "move", lambda self, entity, *a, **k: f"lifecycle.move {entity}")
    _wrap(lifecycle.Lifecycle, "update", lambda self, entity, *a, **k: f"lifecycle.update {entity}")
    _wrap(lifecycle.Lifecycle, "move_order", "lifecycle.move_order")
    _wrap(lifecycle.Lifecycle, "move_checkout", "lifecycle.move_checkout")
    _wrap(outbox.Outbox, "announce", "outbox.announce")
    _wrap(audit.Audit, "record", "audit.record")
    _wrap(audit.Audit, "_insert", "audit insert (store)")
    _wrap(notify_stats.NotifyStats, "observe", "notify stats")
    from store.sqlite import SQLiteStore
    for attr in ("get", "insert", "update_if"):
        _wrap(SQLiteStore, attr, lambda self, collection, *a, _attr=attr, **k: f"store.{_attr} {collection}")
    _wrap(tornado.web.RequestHandler, "__init__", "tornado handler init")
    _wrap(tornado.web.RequestHandler, "flush", "tornado flush (write reply)")


def serve_timed() -> None:
    """In the server process: SIGUSR1 zeroes the counters, SIGUSR2 writes them out."""
    out = os.environ["WXPAY_BENCH_PROFILE_OUT"]

    def start(*_: Any) -> None:
        _ns.clear()
        _n.clear()

    def stop(*_: Any) -> None:
        Path(out).write_text(json.dumps({"ns": _ns, "n": _n}))
        Path(out + ".done").write_text("1")

    install()
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    import runpy
    sys.argv = ["server.py", *sys.argv[2:]]
    runpy.run_path(str(ROOT / "server.py"), run_name="__main__")


class TimedPhase(pn.Phase):
    async def run(self, name: str, port: int, items: list, concurrency: int, expect: int, top: int) -> dict:
        import asyncio
        done = Path(str(self.prof_out) + ".done")
        done.unlink(missing_ok=True)
        self.server.popen.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.2)
        before = self.server.cpu_seconds()
        replies = await pn.fetch_all(port, items, concurrency=concurrency)
        cpu_ms = (self.server.cpu_seconds() - before) * 1000 / len(items)
        bad = [r for r in replies if r[0] != expect]
        self.server.popen.send_signal(signal.SIGUSR2)
        for _ in range(100):
            if done.exists():
                break
            await asyncio.sleep(0.1)
        parts = json.loads(Path(self.prof_out).read_text())
        n = len(items)
        print(f"== {name}: {n}, server CPU {cpu_ms * 1000:.0f} µs each (process, all threads), {len(bad)} bad")
        for key, ns in sorted(parts["ns"].items(), key=lambda kv: -kv[1]):
            print(f"  {ns / n / 1000:8.1f} µs  {parts['n'][key] / n:5.2f}x  {key}")
        return {"cpu_us": cpu_ms * 1000, "bad": len(bad), "us": {k: v / n / 1000 for k, v in parts["ns"].items()},
                "calls": {k: v / n for k, v in parts["n"].items()}}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_timed()
        raise SystemExit(0)
    import argparse
    import asyncio
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-version", choices=("v2", "v3"), default="v2")
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--json", help="write the figures here")
    a = parser.parse_args()
    a.no_profile, a.top, a.keep = False, 0, False
    pn.__file__ = __file__  # the server is spawned from this file (serve_timed)
    pn.Phase = TimedPhase
    figures = asyncio.run(pn.main(a))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))
