"""service.status.collect over a real SQLite store: buckets, today's figures, guards."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from config import load_settings
from service.audit import Audit
from service.call_stats import CallStats
from service.notify_limiter import NotifyLimiter
from service.notify_stats import NotifyStats
from service.status import collect, day_start
from store.open import INDEXES, open_store
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.gateways import Gateways
from wxpay.merchant import Merchant
from wxpay.v2_gateway import V2Gateway

NOW = datetime(2026, 3, 1, 17, 30, tzinfo=timezone.utc)  # 01:30 on 2 March in China


def test_day_start_is_china_midnight():
    assert day_start(NOW) == datetime(2026, 3, 1, 16, 0, tzinfo=timezone.utc)
    assert day_start(datetime(2026, 3, 1, 15, 59, tzinfo=timezone.utc)) == datetime(2026, 2, 28, 16, 0, tzinfo=timezone.utc)


class Tokens:
    async def health(self):
        fresh = {"expires_at": NOW + timedelta(minutes=90), "refreshed_at": NOW - timedelta(minutes=30),
                 "refresh_failures": 0, "last_refresh_error": None}
        never = {"expires_at": None, "refreshed_at": None, "refresh_failures": 2, "last_refresh_error": "dns"}
        return {"access_token": fresh, "jsapi_ticket": never}


class Webhooks:
    attempts = {"delivered": 0, "will_retry": 0, "gave_up": 0}

    async def backlog(self):
        return {"enabled": False}


@pytest.fixture
async def services(tmp_path):
    store = open_store(None, sqlite_path=tmp_path / "s.sqlite3")
    await store.open(INDEXES)
    settings = load_settings(None, env={})
    yield SimpleNamespace(
        mode=settings.mode,
        reconciler_enabled=settings.reconciler.enabled,
        reconciler_interval_s=settings.reconciler.interval_s,
        store=store,
        audit=Audit(store, now=lambda: NOW),
        tokens=Tokens(),
        reconciler=SimpleNamespace(last=None),
        webhooks=Webhooks(),
        payments=SimpleNamespace(confirmed={"notify": 0, "reconciler": 0}),
        notify_stats=NotifyStats(),
        call_stats=CallStats(),
        notify_limiter=NotifyLimiter(per_source_per_minute=30, total_per_minute=300),
        # The real APIv2 gateway (its client never called: the figures ask WeChat nothing).
        gateways=Gateways(V2Gateway(WxPayClient(Merchant("1900000109", "k" * 32, "wx1"),
                                                endpoints=Endpoints.single("http://127.0.0.1:9")))),
        started_at=NOW - timedelta(hours=2),
        now=lambda: NOW,
    )
    await store.close()


async def add_order(store, n: int, at: datetime, state: str, fee: int = 100) -> None:
    await store.insert("orders", {"_id": f"W{n}", "out_trade_no": f"W{n}", "state": state, "total_fee": fee,
                                  "created_at": at, "trade_type": "JSAPI", "checkout_id": "co_1"})


async def test_today_counts_revenue_chart_and_latest(services):
    store = services.store
    await add_order(store, 1, NOW - timedelta(minutes=5), "paid", 1234)
    await add_order(store, 2, NOW - timedelta(minutes=50), "paid", 766)  # 00:40 China: still today
    await add_order(store, 3, NOW - timedelta(hours=2), "paid", 5000)    # yesterday in China time
    await add_order(store, 4, NOW - timedelta(minutes=1), "prepaid")
    await add_order(store, 5, NOW - timedelta(hours=30), "failed")       # outside the chart too
    for verdict, ok, minutes in (("paid", True, 4), ("bad_signature", False, 3), ("paid", True, 70)):
        await services.audit.record("notify", verdict=verdict, ok=ok, raw=b"<xml>secret</xml>", out_trade_no="W1")
        await store.update_if("audit", (await services.audit.latest("notify", limit=1))[0]["_id"], {},
                              {"at": NOW - timedelta(minutes=minutes)})

    f = await collect(services, version="9.9", hours=6, latest=3)
    assert (f["mode"], f["version"], f["uptime_s"]) == ("sandbox", "9.9", 7200.0)
    assert f["orders_today"]["by_state"] == {"created": 0, "prepaid": 1, "paid": 2, "closed": 0, "failed": 0}
    assert f["orders_today"]["revenue_fen"] == 2000 and f["orders_today"]["total"] == 3
    buckets = f["chart"]["buckets"]
    assert [b["hour"][11:16] for b in buckets] == ["12:00", "13:00", "14:00", "15:00", "16:00", "17:00"]
    assert [b["orders"] for b in buckets] == [0, 0, 0, 1, 1, 2]
    assert [b["paid"] for b in buckets] == [0, 0, 0, 1, 1, 1]
    assert [b["notifies"] for b in buckets] == [0, 0, 0, 0, 1, 2]
    assert [b["notifies_refused"] for b in buckets] == [0, 0, 0, 0, 0, 1]
    assert [o["out_trade_no"] for o in f["latest_orders"]] == ["W4", "W1", "W2"]
    assert [n["verdict"] for n in f["latest_notifies"]] == ["bad_signature", "paid", "paid"]
    assert "secret" not in repr(f)
    assert f["tokens"]["access_token"]["expires_in_s"] == 5400 and f["tokens"]["jsapi_ticket"]["expires_in_s"] is None
    assert f["reconciler"]["last"] is None and f["store"]["ok"] is True
    assert f["wechat"] == []


async def test_reconciler_figure_prefers_the_stored_run(services):
    await services.store.upsert_if("runs", "reconciler", {}, {"started_at": NOW, "finished_at": NOW, "checked": 4})
    f = await collect(services, version="1")
    assert f["reconciler"]["last"]["checked"] == 4 and f["reconciler"]["last"]["finished_at"] == NOW.isoformat()


class RecordingStore:
    """The real store, with every ``find`` call written down."""

    def __init__(self, store) -> None:
        self._store = store
        self.finds: list[tuple[str, object]] = []

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def find(self, collection, where=None, **kw):
        self.finds.append((collection, kw.get("fields")))
        return await self._store.find(collection, where, **kw)


async def test_every_listing_reads_only_the_fields_it_shows(services):
    """/status, /status.json and /metrics stay cheap with a large audit trail:
    no listing reads whole documents (raw notify bodies, 16 KiB each)."""
    for n in range(30):
        await services.store.insert("audit", {"_id": f"a{n}", "kind": "notify", "verdict": "paid", "ok": True,
                                              "at": NOW - timedelta(minutes=n), "raw": "<xml>" + "r" * 16000 + "</xml>"})
        await add_order(services.store, n, NOW - timedelta(minutes=n), "paid")
    recording = RecordingStore(services.store)
    services.store = recording
    f = await collect(services, version="1")
    assert recording.finds and all(fields for _, fields in recording.finds), recording.finds
    assert {"audit", "orders", "refunds"} <= {c for c, _ in recording.finds}
    assert "rrrr" not in repr(f)
    assert sum(b["notifies"] for b in f["chart"]["buckets"]) == 30
