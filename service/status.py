"""The figures an admin reads at a glance: one dict for /status, /status.json and /metrics.

Each section is gathered on its own and a failing one (the store is down,
say) becomes ``{"error": code}`` in its place, so the page still shows what
it can, and that the store is down. Every query is bounded by a limit, uses
an index and reads only the fields it shows (a projection): the page must
stay cheap however many orders there are and however large the audit
trail's records are.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from store.base import StoreError
from wxpay.timeutil import CHINA_TZ

from . import daybook
from .container import Services
from .errors import ServiceError
from .models import AUDIT, ORDER_STATES, ORDERS, PAID, REFUND_STATES, REFUNDS, RUNS

log = logging.getLogger("wxpay_server.status")

CHART_HOURS = 12
LATEST = 10
SCAN_LIMIT = 5000  # rows read at most for the chart and revenue; beyond it the figure says "truncated"


def day_start(now: datetime) -> datetime:
    """Midnight of the current China day (the merchant's business day), in UTC."""
    local = now.astimezone(CHINA_TZ)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(now.tzinfo)


# What only a person reads: the hourly chart and the lists of recent items. /metrics
# leaves them out (Prometheus keeps its own history), which spares a scrape most rows.
HISTORY = ("chart", "latest_orders", "latest_notifies")


async def collect(
    services: Services, *, version: str, hours: int = CHART_HOURS, latest: int = LATEST, history: bool = True,
) -> dict[str, Any]:
    """Everything /status shows, JSON-ready (datetimes as ISO strings).

    ``history=False`` (for /metrics): without the chart and the lists of
    recent items, which no metric is made of."""
    now: datetime = services.now()
    out: dict[str, Any] = {
        "mode": services.mode,
        "version": version,
        "now": now,
        "started_at": services.started_at,
        "uptime_s": round((now - services.started_at).total_seconds(), 1),
    }
    sections: dict[str, Callable[[], Awaitable[Any]]] = {
        "store": lambda: _store(services),
        "tokens": lambda: _tokens(services, now),
        "orders_today": lambda: _orders_today(services, now),
        "money_today": lambda: _money_today(services, now),
        "chart": lambda: _chart(services, now, hours),
        "latest_orders": lambda: _latest_orders(services, latest),
        "latest_notifies": lambda: _latest_notifies(services, latest),
        "reconciler": lambda: _reconciler(services),
        "refunds": lambda: _refunds(services, latest),
        "double_payments": lambda: _double_payments(services, latest),
        "webhooks": lambda: _webhooks(services),
    }
    if not history:
        latest = 0
        sections = {name: fn for name, fn in sections.items() if name not in HISTORY}
    results = await asyncio.gather(*(_guarded(name, fn) for name, fn in sections.items()))
    out.update(zip(sections, results))
    out["payments_confirmed"] = dict(services.payments.confirmed)  # this process's, since start, by who asked
    out["notifies"] = services.notify_stats.snapshot()  # this process's verdicts since start (both kinds)
    out["wechat"] = services.call_stats.snapshot()
    out["wechat_failures"] = services.call_stats.failures()  # why WeChat failed: by cause, and the latest
    out["notify_limiter"] = services.notify_limiter.snapshot()
    out["wechat_pay"] = wechat_pay(services, now)
    return _jsonable(out)


def wechat_pay(services: Services, now: datetime) -> dict[str, Any]:
    """Which API new orders use, whose notifies are read, how WeChat is verified
    (key mode, public key ID, certificate serials and their expiry), and the
    signature probes refused (counted apart: WeChat checking us, not an alarm)."""
    gateways = services.gateways
    described = {}
    for gateway in gateways:
        view = dict(gateway.describe())
        for cert in view.get("platform_certificates") or ():
            cert["expires_in_days"] = _days_until(cert.get("not_after"), now)
        if view.get("merchant_certificate_expires_at") is not None:
            view["merchant_certificate_expires_in_days"] = _days_until(view["merchant_certificate_expires_at"], now)
        described[gateway.api_version] = view
    limiter = services.notify_limiter
    return {
        "api_version": gateways.api_version,
        "notify_versions": list(gateways.versions),
        "gateways": described,
        "signtest_probes": sum(limiter.probes.values()),
    }


def _days_until(at: datetime | None, now: datetime) -> float | None:
    return round((at - now).total_seconds() / 86400, 1) if isinstance(at, datetime) else None


async def _guarded(name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await fn()
    except (StoreError, ServiceError) as exc:
        log.warning("status: %s unavailable (%s)", name, getattr(exc, "code", type(exc).__name__))
        return {"error": getattr(exc, "code", "unavailable")}


async def _store(services: Services) -> dict[str, Any]:
    store = services.store
    where = {"backend": store.backend, "location": store.location}
    try:
        rtt = await store.ping()
    except StoreError as exc:
        return {**where, "ok": False, "error": exc.code}
    return {**where, "ok": True, "rtt_ms": round(rtt * 1000, 2)}


async def _tokens(services: Services, now: datetime) -> dict[str, Any]:
    """Each credential's expiry, and its refreshes failing in a row (the store's: every process's)."""
    out = {}
    for kind, health in (await services.tokens.health()).items():
        at = health["expires_at"]
        out[kind] = {
            "expires_at": at,
            "expires_in_s": round((at - now).total_seconds()) if at else None,
            "refreshed_at": health["refreshed_at"],
            "refresh_failures": health["refresh_failures"],
            "last_refresh_error": health["last_refresh_error"],
        }
    return out


async def _money_today(services: Services, now: datetime) -> dict[str, Any]:
    """The console's "today": gross, refunded and net of the China day (service/daybook.py's rules)."""
    return (await daybook.figures(services.store, daybook.china_day_of(now))).to_dict()


async def _orders_today(services: Services, now: datetime) -> dict[str, Any]:
    """Orders created since the China-time midnight, by state, and what was paid."""
    store = services.store
    since = {"$gte": day_start(now)}
    counts = await asyncio.gather(*(store.count(ORDERS, {"state": s, "created_at": since}) for s in ORDER_STATES))
    paid = await store.find(ORDERS, {"state": PAID, "created_at": since}, limit=SCAN_LIMIT, fields=["total_fee"])
    return {
        "since": day_start(now),
        "by_state": dict(zip(ORDER_STATES, counts)),
        "total": sum(counts),
        "revenue_fen": sum(int(d.get("total_fee") or 0) for d in paid),
        "revenue_truncated": len(paid) >= SCAN_LIMIT,
    }


async def _chart(services: Services, now: datetime, hours: int) -> dict[str, Any]:
    """Orders created and notifies received per hour over the last ``hours`` hours."""
    top = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = top - timedelta(hours=hours)
    buckets = [
        {"hour": start + timedelta(hours=i), "orders": 0, "paid": 0, "notifies": 0, "notifies_refused": 0}
        for i in range(hours)
    ]
    orders, notifies = await asyncio.gather(
        services.store.find(
            ORDERS, {"created_at": {"$gte": start}}, sort=[("created_at", 1)], limit=SCAN_LIMIT,
            fields=["created_at", "state"],
        ),
        services.store.find(
            AUDIT, {"kind": "notify", "at": {"$gte": start}}, sort=[("at", 1)], limit=SCAN_LIMIT, fields=["at", "ok"],
        ),
    )

    def slot(at: datetime | None) -> dict[str, Any] | None:
        if at is None or at < start:
            return None
        index = int((at - start).total_seconds() // 3600)
        return buckets[index] if 0 <= index < hours else None

    for doc in orders:
        bucket = slot(doc.get("created_at"))
        if bucket is not None:
            bucket["orders"] += 1
            bucket["paid"] += doc.get("state") == PAID
    for doc in notifies:
        bucket = slot(doc.get("at"))
        if bucket is not None:
            bucket["notifies"] += 1
            bucket["notifies_refused"] += not doc.get("ok", False)
    return {
        "hours": hours,
        "start": start,
        "buckets": buckets,
        "truncated": len(orders) >= SCAN_LIMIT or len(notifies) >= SCAN_LIMIT,
    }


async def _latest_orders(services: Services, limit: int) -> list[dict[str, Any]]:
    keep = ("out_trade_no", "checkout_id", "trade_type", "state", "total_fee", "created_at", "paid_at", "paid_via", "failure")
    docs = await services.store.find(ORDERS, None, sort=[("created_at", -1)], limit=limit, fields=keep)
    return [{k: d.get(k) for k in keep} for d in docs]


async def _latest_notifies(services: Services, limit: int) -> list[dict[str, Any]]:
    # Never the raw body: it is the shopper's payment record, not an admin's business.
    keep = ("at", "verdict", "ok", "out_trade_no", "latency_ms")
    docs = await services.audit.latest("notify", limit=limit, fields=keep)
    return [{k: d.get(k) for k in keep} for d in docs]


async def _reconciler(services: Services) -> dict[str, Any]:
    """The last pass by any process (the store's record), else this process's own."""
    doc = await services.store.get(RUNS, "reconciler")
    if doc is None:
        last = services.reconciler.last
        doc = asdict(last) if last is not None and is_dataclass(last) else None
    return {
        "enabled": services.reconciler_enabled,
        "interval_s": services.reconciler_interval_s,
        "last": {k: v for k, v in doc.items() if k != "_id"} if doc else None,
    }


async def _refunds(services: Services, limit: int) -> dict[str, Any]:
    """Refunds by state (needs_attention wants a person), and the latest ones."""
    counts = await asyncio.gather(*(services.store.count(REFUNDS, {"state": s}) for s in REFUND_STATES))
    keep = ("out_refund_no", "checkout_id", "out_trade_no", "amount_fen", "state", "kind", "created_at", "failure")
    docs = await services.store.find(REFUNDS, None, sort=[("created_at", -1)], limit=limit, fields=keep) if limit else []
    return {"by_state": dict(zip(REFUND_STATES, counts)), "latest": [{k: d.get(k) for k in keep} for d in docs]}


async def _double_payments(services: Services, limit: int) -> dict[str, Any]:
    """Checkouts paid twice (each extra payment is refunded automatically)."""
    count = await services.store.count(AUDIT, {"kind": "double_payment"})
    keep = ("at", "checkout_id", "out_trade_no", "first_out_trade_no")
    docs = await services.audit.latest("double_payment", limit=limit, fields=keep) if limit else []
    return {"count": count, "latest": [{k: d.get(k) for k in keep} for d in docs]}


async def _webhooks(services: Services) -> dict[str, Any]:
    """The outbox's backlog (the store's), and this process's attempts since start."""
    return {**await services.webhooks.backlog(), "attempts": dict(services.webhooks.attempts)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
