"""The store contract, continued: projections (``find(fields=...)``) and
retention (``Index.expire_after_s``), on every backend.

SQLite and the MongoDB emulator both expire documents when asked
(``expire()`` prunes on SQLite; mongomock drops expired documents whenever
the collection is read, as a server's TTL monitor does about once a
minute). On a real server (``MONGODB_URI``) the expiry test waits for that
monitor, up to two minutes.
"""
from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from store.base import Index, InvalidQuery, Store
from store.open import INDEXES, indexes

from .conftest import BACKENDS, drop_store, make_store

UTC = timezone.utc
T0 = datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)
DAY = 86400


def full(n: int, **extra: object) -> dict:
    doc = {
        "_id": f"a{n:03d}",
        "kind": "notify",
        "verdict": "paid",
        "ok": True,
        "latency_ms": 1.25,
        "at": T0 + timedelta(minutes=n),
        "raw": "<xml>" + "x" * 4000 + "</xml>",
        "detail": {"when": T0, "list": [1, "two", None]},
        "tags": ["a", {"b": T0}],
        "note": None,
        "count": 2**40,
    }
    doc.update(extra)
    return doc


# ---- projections -------------------------------------------------------------------------


async def test_fields_return_id_and_only_the_named_fields_with_their_types(store: Store) -> None:
    await store.insert("audit", full(1))
    [got] = await store.find("audit", {"kind": "notify"}, fields=["at", "ok", "latency_ms", "detail", "tags", "note", "count"])
    assert got == {
        "_id": "a001", "at": T0 + timedelta(minutes=1), "ok": True, "latency_ms": 1.25,
        "detail": {"when": T0, "list": [1, "two", None]}, "tags": ["a", {"b": T0}], "note": None, "count": 2**40,
    }
    assert type(got["ok"]) is bool and type(got["count"]) is int and got["at"].utcoffset() == timedelta(0)


async def test_a_field_the_document_lacks_is_absent_not_null(store: Store) -> None:
    await store.insert("audit", full(1, note=None))
    await store.insert("audit", {"_id": "a002", "kind": "notify", "at": T0})
    docs = await store.find("audit", None, sort=[("_id", 1)], fields=["note", "ok"])
    assert docs == [{"_id": "a001", "note": None, "ok": True}, {"_id": "a002"}]


async def test_fields_keep_filter_sort_skip_and_limit(store: Store) -> None:
    for n in range(1, 8):
        await store.insert("audit", full(n, ok=n % 2 == 0))
    docs = await store.find("audit", {"ok": True}, sort=[("at", -1)], limit=2, skip=1, fields=["at"])
    assert docs == [{"_id": "a004", "at": T0 + timedelta(minutes=4)}, {"_id": "a002", "at": T0 + timedelta(minutes=2)}]
    assert await store.find("audit", None, sort=[("_id", 1)], limit=1, fields=["_id"]) == [{"_id": "a001"}]


@pytest.mark.parametrize("bad", [[], "at", ["a.b"], ["$where"], ["raw", "x y"], [1]])
async def test_fields_refuse_anything_but_field_names(store: Store, bad: object) -> None:
    await store.insert("audit", full(1))
    with pytest.raises(InvalidQuery):
        await store.find("audit", None, fields=bad)  # type: ignore[arg-type]


# ---- retention ---------------------------------------------------------------------------


def test_an_expiring_index_is_one_plain_field_with_whole_seconds() -> None:
    Index("audit", ("at",), expire_after_s=60)
    for bad in (
        dict(fields=("kind", "at"), expire_after_s=60),
        dict(fields=("at",), unique=True, expire_after_s=60),
        dict(fields=("at",), expire_after_s=0),
        dict(fields=("at",), expire_after_s=1.5),
        dict(fields=("at",), expire_after_s=True),
    ):
        with pytest.raises(InvalidQuery):
            Index("audit", **bad)  # type: ignore[arg-type]


def test_the_app_declares_the_audit_retention_and_oauth_code_expiry() -> None:
    declared = {(i.collection, i.fields): i.expire_after_s for i in indexes(audit_retention_s=7 * DAY)}
    assert declared[("audit", ("at",))] == 7 * DAY
    assert declared[("oauth_codes", ("at",))] == DAY
    assert ("audit", ("at",)) not in {(i.collection, i.fields) for i in INDEXES}


async def _remaining(store: Store, backend: str) -> list[str]:
    """What is left once the backend has expired what it should: SQLite and
    the emulator at once; a real server's TTL monitor within two minutes."""
    await store.expire()
    deadline = time.monotonic() + (120 if backend == "mongo_real" else 0)
    while True:
        left = sorted(d["_id"] for d in await store.find("audit", None, limit=0, fields=["_id"]))
        if "old" not in left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(5)


async def test_documents_past_their_retention_are_deleted_and_others_kept(backend: str, tmp_path) -> None:
    store, handle = await make_store(backend, tmp_path, indexes(audit_retention_s=DAY))
    try:
        now = datetime.now(UTC)
        await store.insert("audit", {"_id": "old", "kind": "notify", "at": now - timedelta(days=2)})
        await store.insert("audit", {"_id": "older", "kind": "cancel", "at": now - timedelta(days=400)})
        await store.insert("audit", {"_id": "recent", "kind": "notify", "at": now - timedelta(hours=23)})
        await store.insert("audit", {"_id": "now", "kind": "notify", "at": now})
        await store.insert("audit", {"_id": "no_time", "kind": "notify"})
        await store.insert("audit", {"_id": "text_time", "kind": "notify", "at": "2001-01-01T00:00:00Z"})
        assert await _remaining(store, backend) == ["no_time", "now", "recent", "text_time"]
    finally:
        await drop_store(backend, store, handle)


async def test_only_collections_with_an_expiring_index_lose_documents(backend: str, tmp_path) -> None:
    store, handle = await make_store(backend, tmp_path, indexes(audit_retention_s=DAY))
    try:
        long_ago = datetime.now(UTC) - timedelta(days=1000)
        await store.insert("orders", {"_id": "o1", "out_trade_no": "o1", "at": long_ago, "created_at": long_ago})
        await store.insert("audit", {"_id": "old", "at": long_ago})
        await _remaining(store, backend)
        assert await store.get("orders", "o1") is not None
    finally:
        await drop_store(backend, store, handle)


MONGO_BACKENDS = [p for p in BACKENDS if p.id != "sqlite"]


async def _index_info(backend: str, handle: object, collection: str) -> dict:
    if backend == "mongo_emulated":
        return await handle["wxpay_test"][collection].index_information()  # type: ignore[index]
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=5000)
    try:
        return await client[str(handle)][collection].index_information()
    finally:
        await client.close()


@pytest.mark.parametrize("mongo", MONGO_BACKENDS)
async def test_mongo_declares_a_ttl_index_and_applies_a_changed_retention(mongo: str, tmp_path) -> None:
    """The TTL index as the server is told (on the emulator: mongomock keeps
    the options it was given and applies collMod as a server does)."""
    store, handle = await make_store(mongo, tmp_path, indexes(audit_retention_s=90 * DAY))
    try:
        info = await _index_info(mongo, handle, "audit")
        assert info["ix_at__ttl"]["key"] == [("at", 1)]
        assert info["ix_at__ttl"]["expireAfterSeconds"] == 90 * DAY
        codes = await _index_info(mongo, handle, "oauth_codes")
        assert codes["ix_at__ttl"]["expireAfterSeconds"] == DAY
        await store.open(indexes(audit_retention_s=7 * DAY))  # a restart with another retention
        info = await _index_info(mongo, handle, "audit")
        assert info["ix_at__ttl"]["expireAfterSeconds"] == 7 * DAY
    finally:
        await drop_store(mongo, store, handle)


def test_field_names_found_valid_once_are_not_trusted_for_other_values() -> None:
    """check_field keeps the names it has accepted; anything else still goes
    through the full check (an unhashable name, a str subclass, a bad name
    asked after good ones), and a long name is checked every time, not kept."""
    from store import base

    assert base.check_field("state") == "state" and base.check_field("state") == "state"
    long = "f" * 65
    assert base.check_field(long) == long and long not in base._VALID_FIELDS

    class Sneaky(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    for bad in (["state"], 7, None, "State", "a.b", Sneaky("$where")):
        with pytest.raises(InvalidQuery):
            base.check_field(bad)  # type: ignore[arg-type]
