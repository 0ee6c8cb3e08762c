"""A third outside review: the speed work's shortcuts (indexed fields as
SQLite columns kept by triggers, one-statement increments and upserts, the
settle's sibling shortcut, the cheaper HTTP layer), attacked for what they
could lose: a document an index misses, a start that fails, a payment lost
or counted twice, an answer that differs from the full one.

Real SQLite files, real processes beside the test's, real servers on loopback.
"""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from store.open import INDEXES
from store.sqlite import SQLiteStore
from tests.store.test_sqlite import _columns_agree, _old_layout

from .results import record

SECTION = "speed_review"
ROOT = Path(__file__).resolve().parents[2]

_OPEN_IN_ANOTHER_PROCESS = """
import asyncio, sys
from store.open import INDEXES
from store.sqlite import SQLiteStore
async def main():
    store = SQLiteStore(sys.argv[1])
    await store.open(INDEXES)
    await store.close()
asyncio.run(main())
"""


async def test_two_processes_upgrading_one_old_file_at_once_both_open(tmp_path: Path) -> None:
    """Two instances restarted together on a file of the old layout. Before:
    the one that read a table's columns just before the other added them
    then added them again, "duplicate column name", and refused to start
    (1 start in 15 of two processes racing on a 3,000-order file)."""
    path = tmp_path / "old.sqlite3"
    _old_layout(path)

    class SecondStarter(SQLiteStore):
        """The other process upgrades the file right after this one read the
        orders table's columns and before it takes the write lock: the
        interleaving two starts race into (a real process, the real file)."""

        raced = False

        def _connect(self) -> sqlite3.Connection:
            conn = super()._connect()

            def trace(sql: str) -> None:
                if not self.raced and "type = 'trigger' AND tbl_name" in sql:
                    self.raced = True
                    done = subprocess.run(
                        [sys.executable, "-c", _OPEN_IN_ANOTHER_PROCESS, str(path)],
                        cwd=ROOT, capture_output=True, text=True, timeout=60,
                    )
                    assert done.returncode == 0, done.stderr

            conn.set_trace_callback(trace)
            return conn

    store = SecondStarter(path)
    await store.open(INDEXES)
    try:
        assert store.raced
        found = [d["_id"] for d in await store.find("orders", {"transaction_id": "4200"})]
    finally:
        await store.close()
    disagree = _columns_agree(path, "orders") + _columns_agree(path, "checkouts")
    assert found == ["o2"] and disagree == []
    record(SECTION, "sqlite-upgrade-two-starts-at-once", "pass", found=found, columns_disagreeing=len(disagree))
