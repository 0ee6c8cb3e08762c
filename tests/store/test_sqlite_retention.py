"""SQLite's own retention: a background task that prunes expired documents in
bounded batches on the store's worker thread, through the field's index."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from store.open import indexes
from store.sqlite import SQLiteStore

DAY = 86400


async def fill(store: SQLiteStore, expired: int, kept: int) -> None:
    now = datetime.now(timezone.utc)
    for n in range(expired):
        await store.insert("audit", {"_id": f"x{n:05d}", "kind": "notify", "at": now - timedelta(days=3, seconds=n)})
    for n in range(kept):
        await store.insert("audit", {"_id": f"k{n:05d}", "kind": "notify", "at": now - timedelta(seconds=n)})


async def test_the_background_task_prunes_in_batches_off_the_event_loop(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "wxpay.sqlite3", prune_interval=0.05, prune_batch=100, prune_pause=0.001)
    threads: list[str] = []
    batches: list[int] = []
    prune = store._prune_sync

    def spy(conn, collection, sql, cutoff):  # noqa: ANN001 - the store's own signature
        threads.append(threading.current_thread().name)
        count = prune(conn, collection, sql, cutoff)
        batches.append(count)
        return count

    store._prune_sync = spy  # type: ignore[method-assign]
    await store.open(indexes(audit_retention_s=DAY))
    try:
        await fill(store, expired=1050, kept=20)
        deadline = time.monotonic() + 30
        while await store.count("audit") > 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await store.count("audit") == 20
        assert store.pruned == 1050
        assert max(batches) == 100 and sum(batches) == 1050  # never more than one batch per statement
        assert threads and all(t.startswith("sqlite-store") for t in threads)  # the worker, never the loop
        assert threading.main_thread().name not in threads
    finally:
        await store.close()


async def test_close_stops_the_task_and_a_closed_store_prunes_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "wxpay.sqlite3", prune_interval=3600)
    await store.open(indexes(audit_retention_s=DAY))
    task = store._pruner
    assert task is not None and not task.done()
    await store.close()
    assert task.done() and store._pruner is None
    assert await store.expire() == 0


async def test_a_store_without_expiring_indexes_runs_no_task(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "wxpay.sqlite3")
    await store.open([])
    try:
        assert store._pruner is None
        assert await store.expire() == 0
    finally:
        await store.close()


async def test_pruning_reads_through_the_time_index_not_a_scan(tmp_path: Path) -> None:
    path = tmp_path / "wxpay.sqlite3"
    store = SQLiteStore(path, prune_interval=3600)
    await store.open(indexes(audit_retention_s=DAY))
    captured: list[str] = []
    prune = store._prune_sync

    def spy(conn, collection, sql, cutoff):  # noqa: ANN001
        captured.append(sql)
        return prune(conn, collection, sql, cutoff)

    store._prune_sync = spy  # type: ignore[method-assign]
    try:
        await fill(store, expired=3, kept=3)
        assert await store.expire() == 3
    finally:
        await store.close()
    assert {"audit", "oauth_codes"} <= {sql.split('"')[1] for sql in captured}
    conn = sqlite3.connect(path)
    try:
        for sql in captured:
            table = sql.split('"')[1]
            plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, ("x", 100)))
            assert f"USING INDEX ix_{table}__at (k_at<?)" in plan, plan
            assert "SCAN" not in plan, plan
    finally:
        conn.close()


async def test_freed_pages_are_reused_so_the_file_stops_growing(tmp_path: Path) -> None:
    """Retention bounds the file: after pruning, new records fill freed pages."""
    path = tmp_path / "wxpay.sqlite3"
    store = SQLiteStore(path, prune_interval=3600)
    await store.open(indexes(audit_retention_s=DAY))
    try:
        now = datetime.now(timezone.utc)
        pad = "p" * 2000
        for n in range(400):
            await store.insert("audit", {"_id": f"a{n}", "at": now - timedelta(days=5), "raw": pad})
        size_full = _checkpointed_size(path)
        assert await store.expire() == 400
        for n in range(400):
            await store.insert("audit", {"_id": f"b{n}", "at": now, "raw": pad})
        assert _checkpointed_size(path) <= size_full * 1.1
    finally:
        await store.close()


def _checkpointed_size(path: Path) -> int:
    conn = sqlite3.connect(path, timeout=5)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path.stat().st_size
