"""What only the SQLite backend has to prove: the file, WAL, other processes
on the same file, and an event loop that keeps running while SQLite works."""
from __future__ import annotations

import asyncio
import json
import os
import multiprocessing
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from store.base import DuplicateKey, StoreUnavailable
from store.leases import Leases
from store.open import INDEXES
from store.sqlite import SQLiteStore, _where_sql

T0 = datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=timezone.utc)
PROCESSES = 4
DOCS = 25


async def opened(path: Path, **kw: object) -> SQLiteStore:
    store = SQLiteStore(path, **kw)  # type: ignore[arg-type]
    await store.open(INDEXES)
    return store


async def test_file_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "wxpay.sqlite3"  # missing folders are created
    store = await opened(path)
    await store.insert("orders", {"_id": "o1", "out_trade_no": "o1", "created_at": T0, "body": "充值"})
    await store.close()
    assert path.exists()

    again = SQLiteStore(path)
    await again.open([])  # indexes made by the first run still hold
    try:
        assert await again.get("orders", "o1") == {"_id": "o1", "out_trade_no": "o1", "created_at": T0, "body": "充值"}
        with pytest.raises(DuplicateKey) as caught:
            await again.insert("orders", {"_id": "o2", "out_trade_no": "o1"})
        assert caught.value.field == "out_trade_no"
        await again.open(INDEXES)  # opening twice is harmless
        assert await again.count("orders") == 1
    finally:
        await again.close()


async def test_wal_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path)
    try:
        raw = sqlite3.connect(path)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            raw.close()
        def pragmas(conn: sqlite3.Connection) -> tuple[int, int, int]:
            return tuple(conn.execute(f"PRAGMA {name}").fetchone()[0]
                         for name in ("synchronous", "busy_timeout", "wal_autocheckpoint"))

        worker = await asyncio.get_running_loop().run_in_executor(store._executor, pragmas, store._conn)
        assert worker == (1, 5000, 1000)  # NORMAL, waits 5 s, checkpoints itself
        assert pragmas(store._fast) == (1, 0, 0)  # the loop's: never waits, never fsyncs
    finally:
        await store.close()


async def test_datetimes_are_tagged_fixed_width_utc(tmp_path: Path) -> None:
    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path)
    try:
        await store.insert("orders", {"_id": "o1", "out_trade_no": "o1", "created_at": T0})
    finally:
        await store.close()
    raw = sqlite3.connect(path)
    try:
        (text,) = raw.execute("SELECT doc FROM orders WHERE _id = 'o1'").fetchone()
    finally:
        raw.close()
    assert '"created_at":{"$date":"2024-05-01T08:00:00.123Z"}' in text
    assert '"_id"' not in text  # the key lives in its column only


@pytest.mark.parametrize(
    "table, where, index",
    [
        ("orders", {"state": {"$in": ["created", "prepaid"]}, "next_check_at": {"$lte": T0}},
         "ix_orders__state__next_check_at"),
        ("orders", {"out_trade_no": "o1"}, "ix_orders__out_trade_no__u"),
        ("orders", {"checkout_id": "c1"}, "ix_orders__checkout_id"),
        # The console's search and a checkout's timeline (service/search.py, service/timeline.py).
        ("orders", {"transaction_id": "4200"}, "ix_orders__transaction_id"),
        ("orders", {"openid": "oU"}, "ix_orders__openid__created_at"),
        ("checkouts", {"merchant_reference": "ref"}, "ix_checkouts__merchant_reference"),
        ("audit", {"checkout_id": "c1"}, "ix_audit__checkout_id"),
        ("audit", {"out_refund_no": {"$in": ["r1", "r2"]}}, "ix_audit__out_refund_no"),
        ("outbox", {"checkout_id": "c1"}, "ix_outbox__checkout_id"),
    ],
)
async def test_queries_use_the_indexes(tmp_path: Path, table: str, where: dict, index: str) -> None:
    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path)
    cols = store._cols(table)  # the indexed fields' columns: what the store's own queries read
    await store.close()
    params: list = []
    sql = f"EXPLAIN QUERY PLAN SELECT _id FROM {table} WHERE " + _where_sql(where, params, cols)
    raw = sqlite3.connect(path)
    try:
        plan = " ".join(row[3] for row in raw.execute(sql, params))
    finally:
        raw.close()
    assert f"USING INDEX {index}" in plan


async def test_sparse_index_serves_idempotency_lookups(tmp_path: Path) -> None:
    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path)
    cols = store._cols("checkouts")
    await store.close()
    params: list = []
    sql = "EXPLAIN QUERY PLAN SELECT _id FROM checkouts WHERE " + _where_sql({"idempotency_key": "k"}, params, cols)
    raw = sqlite3.connect(path)
    try:
        plan = " ".join(row[3] for row in raw.execute(sql, params))
    finally:
        raw.close()
    assert "USING INDEX ix_checkouts__idempotency_key__u__s" in plan


class _SlowReads:
    """Wraps the store's real connection and pauses after each read, so the
    read-check-write window is wide: without the write lock held across it,
    processes would interleave there and several would win."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        cursor = self._conn.execute(sql, params)  # type: ignore[arg-type]
        if sql.startswith("SELECT"):
            time.sleep(0.002)
        return cursor

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def _race(path: str, barrier: object, queue: object, tag: str) -> None:
    """One OS process: wait for the others, then try every move and the lease."""

    async def main() -> tuple[list[int], bool]:
        store = SQLiteStore(path, busy_timeout=30.0)
        await store.open([])
        store._conn = _SlowReads(store._conn)  # type: ignore[assignment]
        barrier.wait()  # type: ignore[attr-defined]
        wins = []
        for i in range(DOCS):
            doc = await store.update_if(
                "orders", f"o{i}", {"state": "prepaid"}, {"state": "paid", "winner": tag}, inc={"moves": 1}
            )
            if doc is not None:
                wins.append(i)
        leased = await Leases(store).acquire("reconciler", tag, timedelta(minutes=1), now=T0)
        await store.close()
        return wins, leased

    queue.put((tag, *asyncio.run(main())))  # type: ignore[attr-defined]


async def test_two_processes_racing_on_one_file_exactly_one_wins_each(tmp_path: Path) -> None:
    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path)
    for i in range(DOCS):
        await store.insert("orders", {"_id": f"o{i}", "out_trade_no": f"o{i}", "state": "prepaid", "moves": 0})

    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(path), barrier, queue, f"p{n}")) for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    loop = asyncio.get_running_loop()
    for proc in procs:
        await loop.run_in_executor(None, proc.join, 60)
        assert proc.exitcode == 0
    results = [queue.get(timeout=5) for _ in procs]

    try:
        wins = {tag: set(won) for tag, won, _ in results}
        all_wins = [i for won in wins.values() for i in won]
        assert sorted(all_wins) == list(range(DOCS))  # every move won exactly once
        for i in range(DOCS):
            doc = await store.get("orders", f"o{i}")
            assert doc["state"] == "paid" and doc["moves"] == 1
            assert i in wins[doc["winner"]]
        lease_winners = [tag for tag, _, leased in results if leased]
        assert len(lease_winners) == 1
        assert await Leases(store).holder("reconciler", now=T0) == lease_winners[0]
    finally:
        await store.close()


async def test_loop_keeps_running_while_a_write_waits_for_the_lock(tmp_path: Path) -> None:
    """Another connection holds the write lock: our insert waits on the
    worker thread while the loop keeps serving other tasks."""
    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path, busy_timeout=10.0, busy_retries=0)
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        pending = asyncio.create_task(store.insert("orders", {"_id": "o1", "out_trade_no": "o1"}))
        ticks = 0
        for _ in range(200):
            await asyncio.sleep(0)
            assert not pending.done()
            ticks += 1
        assert ticks == 200
        raw.execute("COMMIT")
        await pending
        assert await store.count("orders") == 1
        assert store.deferred == 1  # the loop's connection met the lock and handed the insert on
    finally:
        raw.close()
        await store.close()


async def test_ticker_interleaves_with_a_large_batch_of_writes(tmp_path: Path) -> None:
    store = await opened(tmp_path / "wxpay.sqlite3")
    total = 400
    done = 0
    seen_midway = 0
    finished = asyncio.Event()

    async def write(i: int) -> None:
        nonlocal done
        await store.insert("orders", {"_id": f"o{i}", "out_trade_no": f"o{i}", "state": "created", "n": i})
        done += 1

    async def ticker() -> None:
        nonlocal seen_midway
        while not finished.is_set():
            if 0 < done < total:
                seen_midway += 1
            await asyncio.sleep(0)

    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(write(i) for i in range(total)))
    finally:
        finished.set()
        await tick
        await store.close()
    assert done == total
    assert seen_midway > 0  # the loop ran other work between the writes


async def test_a_scan_over_the_inline_budget_is_answered_by_the_worker(tmp_path: Path) -> None:
    """An unindexed filter over many documents is interrupted on the loop's
    connection and answered, complete and right, by the worker thread."""
    from store import sqlite as backend

    store = await opened(tmp_path / "wxpay.sqlite3")
    try:
        for i in range(3000):
            await store.insert("orders", {"_id": f"o{i:04d}", "out_trade_no": f"o{i:04d}", "n": i % 7})
        # Primary-key inserts run inline; one at most per checkpoint finds the
        # worker checkpointing (RESTART holds writers off) and queues behind it.
        assert store.deferred <= 3000 // backend.CHECKPOINT_EVERY
        await asyncio.sleep(0.2)
        store.deferred = 0
        found = await store.find("orders", {"n": 3}, limit=0)
        assert [d["_id"] for d in found] == [f"o{i:04d}" for i in range(3000) if i % 7 == 3]
        assert store.deferred == 1
        assert await store.get("orders", "o0003") == {"_id": "o0003", "out_trade_no": "o0003", "n": 3}
        assert store.deferred == 1
    finally:
        await store.close()


async def test_inline_writes_checkpoint_on_the_worker_and_reuse_the_wal(tmp_path: Path) -> None:
    """The loop's connection never checkpoints; the worker does every few
    hundred writes, so the WAL file starts over instead of growing."""
    from store import sqlite as backend

    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path)
    try:
        wal = path.parent / (path.name + "-wal")
        window = backend.CHECKPOINT_EVERY
        sizes = []
        for i in range(window * 8):
            await store.insert("orders", {"_id": f"o{i}", "out_trade_no": f"o{i}", "pad": "x" * 2000})
            if (i + 1) % (window * 2) == 0:
                await asyncio.sleep(0.2)  # let a checkpoint still running finish
                sizes.append(wal.stat().st_size)
        writes = window * 8
        # Each insert appends several pages to the WAL. Checkpointed and
        # started over, the file stops growing after the first windows (a
        # checkpoint that starts late on a busy machine lets it grow a little);
        # without checkpoints it grows in step with the writes: 4x.
        assert sizes[-1] < sizes[0] * 2.5, sizes
        assert await store.count("orders") == writes
    finally:
        await store.close()


async def test_the_first_checkpoint_completes_after_tables_made_inline(tmp_path: Path) -> None:
    """A worker connection that had never read the schema (a store opened
    without indexes; every table made by the loop's connection) waited out
    the busy timeout in its RESTART checkpoint for a reader that was itself,
    and gave up (busy=1)."""
    from store import sqlite as backend

    store = SQLiteStore(tmp_path / "wxpay.sqlite3", busy_timeout=1.0)
    await store.open([])
    try:
        for i in range(backend.CHECKPOINT_EVERY):
            await store.insert("brand_new", {"_id": f"d{i}", "n": i})
        for _ in range(200):  # bounded: the checkpoint runs on the worker
            if store.last_checkpoint is not None:
                break
            await asyncio.sleep(0.05)
        busy, frames, copied = store.last_checkpoint
        assert busy == 0 and frames == copied > 0
    finally:
        await store.close()


async def test_booleans_are_not_numbers(tmp_path: Path) -> None:
    """JSON true reads back from json_extract as 1: the type guard keeps
    them apart, as a MongoDB server does (the emulator does not: mongomock
    compares with Python's ``True == 1``)."""
    store = await opened(tmp_path / "wxpay.sqlite3")
    try:
        await store.insert("orders", {"_id": "b", "out_trade_no": "b", "flag": True})
        await store.insert("orders", {"_id": "i", "out_trade_no": "i", "flag": 1})
        await store.insert("orders", {"_id": "z", "out_trade_no": "z", "flag": 0})
        assert [d["_id"] for d in await store.find("orders", {"flag": 1})] == ["i"]
        assert [d["_id"] for d in await store.find("orders", {"flag": True})] == ["b"]
        assert [d["_id"] for d in await store.find("orders", {"flag": {"$gte": 0}})] == ["i", "z"]
        assert [d["_id"] for d in await store.find("orders", {"flag": {"$in": [False, 1]}})] == ["i"]
    finally:
        await store.close()


async def test_busy_beyond_the_bound_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path, busy_timeout=0.05, busy_retries=1)
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            await store.insert("orders", {"_id": "o1", "out_trade_no": "o1"})
        with pytest.raises(StoreUnavailable):
            await store.update_if("orders", "o1", {}, {"state": "paid"})
        raw.execute("COMMIT")
        await store.insert("orders", {"_id": "o1", "out_trade_no": "o1"})
        assert (await store.update_if("orders", "o1", {}, {"state": "paid"}))["state"] == "paid"
    finally:
        raw.close()
        await store.close()


async def test_unreachable_file_and_closed_store_are_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable):
        await SQLiteStore(blocker / "wxpay.sqlite3").open(INDEXES)
    store = await opened(tmp_path / "ok.sqlite3")
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get("orders", "o1")
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_ping(tmp_path: Path) -> None:
    store = await opened(tmp_path / "wxpay.sqlite3")
    try:
        assert await store.ping() >= 0
    finally:
        await store.close()


# ---- indexed fields as columns -------------------------------------------------


def _columns_agree(path: Path, table: str) -> list[str]:
    """Columns whose value differs from the document's in any row (should be none)."""
    raw = sqlite3.connect(path)
    try:
        names = [row[1] for row in raw.execute(f'PRAGMA table_info("{table}")') if row[1].startswith("k_")]
        return [n for n in names if raw.execute(
            f'SELECT COUNT(*) FROM "{table}" WHERE "{n}" IS NOT json_extract(doc, \'$.{n[2:]}\')').fetchone()[0]]
    finally:
        raw.close()


def _old_layout(path: Path) -> None:
    """A file as the store made it before indexed fields had columns: one
    (_id, doc) table per collection and expression indexes of the same names."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("PRAGMA journal_mode = WAL")
        for index in INDEXES:
            table = f'"{index.collection}"'
            raw.execute(f"CREATE TABLE IF NOT EXISTS {table} (_id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
            name = "ix_" + index.collection + "__" + "__".join(index.fields) + ("__u" if index.unique else "") + (
                "__s" if index.sparse else "")
            keys = ", ".join(f"json_extract(doc, '$.{f}')" for f in index.fields)
            sql = f'CREATE {"UNIQUE " if index.unique else ""}INDEX IF NOT EXISTS "{name}" ON {table} ({keys})'
            if index.sparse:
                sql += " WHERE " + " AND ".join(f"json_extract(doc, '$.{f}') IS NOT NULL" for f in index.fields)
            raw.execute(sql)
        date = {"$date": "2024-05-01T08:00:00.123Z"}
        rows = [
            ("orders", "o1", {"out_trade_no": "o1", "checkout_id": "c1", "state": "prepaid", "next_check_at": date,
                              "created_at": date}),
            ("orders", "o2", {"out_trade_no": "o2", "checkout_id": "c1", "state": "paid", "transaction_id": "4200",
                              "meta": {"a": [1, 2]}}),
            ("checkouts", "c1", {"idempotency_key": "k1", "status": "open"}),
            ("checkouts", "c2", {"status": "open"}),  # no key: the sparse index leaves it out
        ]
        for table, _id, doc in rows:
            raw.execute(f'INSERT INTO "{table}" VALUES (?, ?)', (_id, json.dumps(doc, separators=(",", ":"))))
    finally:
        raw.close()


async def test_a_file_of_the_old_layout_upgrades_in_place(tmp_path: Path) -> None:
    """Expression indexes become indexes on columns, filled from the documents;
    the same queries find the same documents, through the indexes."""
    path = tmp_path / "old.sqlite3"
    _old_layout(path)
    store = await opened(path)
    try:
        due = await store.find("orders", {"state": {"$in": ["created", "prepaid"]}, "next_check_at": {"$lte": T0}})
        assert [d["_id"] for d in due] == ["o1"]
        assert [d["_id"] for d in await store.find("orders", {"transaction_id": "4200"})] == ["o2"]
        assert await store.count("orders", {"checkout_id": "c1"}) == 2
        with pytest.raises(DuplicateKey) as caught:  # the sparse unique index still holds
            await store.insert("checkouts", {"_id": "c3", "idempotency_key": "k1"})
        assert caught.value.field == "idempotency_key"
        await store.insert("checkouts", {"_id": "c4", "status": "open"})  # and still takes keyless documents
        cols = store._cols("orders")
    finally:
        await store.close()
    raw = sqlite3.connect(path)
    try:
        left = [name for name, sql in raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
                if sql and "json_extract" in sql]
        params: list = []
        where = _where_sql({"state": {"$in": ["created", "prepaid"]}, "next_check_at": {"$lte": T0}}, params, cols)
        plan = " ".join(row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN SELECT _id FROM orders WHERE {where}", params))
    finally:
        raw.close()
    assert left == []
    assert "USING INDEX ix_orders__state__next_check_at (k_state=? AND k_next_check_at<?)" in plan
    assert _columns_agree(path, "orders") == [] and _columns_agree(path, "checkouts") == []
    again = await opened(path)  # a second open finds the layout made and changes nothing
    try:
        assert await again.count("checkouts") == 3
    finally:
        await again.close()


async def test_writes_of_the_release_before_still_reach_the_indexes(tmp_path: Path) -> None:
    """During a rolling upgrade a process of the old release keeps writing the
    upgraded file as it always did (the document only): the table's triggers
    fill the columns, so the new release's indexed queries still find it."""
    path = tmp_path / "old.sqlite3"
    _old_layout(path)
    await (await opened(path)).close()
    raw = sqlite3.connect(path, isolation_level=None)
    try:  # the old release's own statements
        raw.execute("INSERT INTO orders (_id, doc) VALUES ('o3', '{\"checkout_id\":\"c9\",\"state\":\"created\"}')")
        raw.execute("UPDATE orders SET doc = json_set(doc, '$.state', json('\"paid\"'), '$.transaction_id', "
                    "json('\"4201\"')) WHERE _id = 'o1'")
        raw.execute("INSERT INTO checkouts (_id, doc) VALUES ('c5', '{\"idempotency_key\":\"k5\"}')")
    finally:
        raw.close()
    assert _columns_agree(path, "orders") == [] and _columns_agree(path, "checkouts") == []
    store = await opened(path)
    try:
        assert [d["_id"] for d in await store.find("orders", {"checkout_id": "c9"})] == ["o3"]
        assert [d["_id"] for d in await store.find("orders", {"transaction_id": "4201"})] == ["o1"]
        with pytest.raises(DuplicateKey):
            await store.insert("checkouts", {"_id": "c6", "idempotency_key": "k5"})
    finally:
        await store.close()


async def test_columns_follow_every_kind_of_write(tmp_path: Path) -> None:
    path = tmp_path / "wxpay.sqlite3"
    store = await opened(path)
    try:
        await store.insert("orders", {"_id": "o1", "out_trade_no": "o1", "checkout_id": "c1", "state": "created",
                                      "created_at": T0, "next_check_at": T0, "checks": 0})
        await store.update_if("orders", "o1", {"state": "created"},
                              {"state": "paid", "transaction_id": "4200", "next_check_at": None, "settle_due_at": T0})
        await store.update_if("orders", "o1", {"state": "paid"}, {"openid": "oU", "settle_due_at": None}, inc={"checks": 1})
        await store.upsert_if("orders", "o2", {}, {"out_trade_no": "o2", "state": "created", "created_at": T0})
        await store.upsert_if("orders", "o2", {"state": "created"}, {"out_trade_no": "o2", "state": "closed",
                                                                     "openid": {"nested": True}})
        assert [d["_id"] for d in await store.find("orders", {"openid": "oU"})] == ["o1"]
        assert await store.find("orders", {"state": "closed"}, fields=["openid"]) == [
            {"_id": "o2", "openid": {"nested": True}}]
    finally:
        await store.close()
    assert _columns_agree(path, "orders") == []


async def test_a_column_another_store_adds_is_kept_by_a_store_opened_before(tmp_path: Path) -> None:
    """A newer release may declare an index this process does not know: its
    writes must still fill the new column (the table's triggers do), or the
    other process's queries would miss them."""
    from store.base import Index

    path = tmp_path / "wxpay.sqlite3"
    older = SQLiteStore(path)
    await older.open([Index("orders", ("checkout_id",))])
    newer = SQLiteStore(path)
    try:
        await older.insert("orders", {"_id": "o0", "checkout_id": "c1"})
        await newer.open([Index("orders", ("checkout_id",)), Index("orders", ("flavour",))])
        await older.insert("orders", {"_id": "o1", "checkout_id": "c1", "flavour": "x"})
        await older.insert("orders", {"_id": "o2", "checkout_id": "c1", "n": 0})
        await older.update_if("orders", "o2", {}, {"flavour": "x"})
        await older.insert("orders", {"_id": "o3", "checkout_id": "c1"})
        await older.update_if("orders", "o3", {}, {"flavour": "x"}, inc={"n": 1})
        await older.upsert_if("orders", "o4", {}, {"checkout_id": "c1", "flavour": "x"})
        assert [d["_id"] for d in await newer.find("orders", {"flavour": "x"})] == ["o1", "o2", "o3", "o4"]
    finally:
        await older.close()
        await newer.close()
    assert _columns_agree(path, "orders") == []


async def test_increments_in_one_statement_keep_the_read_check_write_answers(tmp_path: Path) -> None:
    """The one-statement increment takes only a missing or integer field whose
    sum stays an integer; every other case gets the same answer as before
    (a float grows, a null or a string is refused, an overflow is refused and
    nothing changes), and an indexed counter's column follows."""
    from store.base import Index, InvalidQuery

    path = tmp_path / "wxpay.sqlite3"
    store = SQLiteStore(path)
    await store.open([Index("counters", ("n",))])
    try:
        await store.insert("counters", {"_id": "c", "f": 1.5, "z": None, "s": "x", "big": 2**63 - 2})
        doc = await store.update_if("counters", "c", {}, {"t": "a"}, inc={"n": 2, "f": 1, "big": 1})
        assert (doc["n"], doc["f"], doc["big"], doc["t"]) == (2, 2.5, 2**63 - 1, "a")
        for field in ("z", "s", "big"):
            with pytest.raises(InvalidQuery):
                await store.update_if("counters", "c", {}, {"t": "b"}, inc={"n": 1, field: 1})
        assert await store.get("counters", "c") == {"_id": "c", "f": 2.5, "z": None, "s": "x", "big": 2**63 - 1,
                                                    "n": 2, "t": "a"}
        assert await store.update_if("counters", "c", {"t": "b"}, {}, inc={"n": 1}) is None
        assert [d["_id"] for d in await store.find("counters", {"n": 2})] == ["c"]
    finally:
        await store.close()
    assert _columns_agree(path, "counters") == []

