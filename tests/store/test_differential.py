"""Random documents and filters: SQLite must select what MongoDB selects.

The contract tests pin chosen cases; this searches for the ones nobody
thought of (missing vs null fields, mixed types, negations, ranges across
types). MongoDB here is the emulator (mongomock), whose matching follows the
server's type-bracketed comparisons except for booleans vs numbers, so
booleans are left out (tests/store/test_sqlite.py covers them).
"""
from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.mongo import MongoStore
from store.sqlite import SQLiteStore
from tests.store.mongo_emulator import EmulatedMongoClient

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
FIELDS = ("a", "b")

scalars = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.sampled_from(["", "a", "b", "ab", "B", "1", "中"]),
    st.sampled_from([T0, T0 + timedelta(milliseconds=1), T0 - timedelta(days=1)]),
)
ordered = scalars.filter(lambda v: v is not None)

docs = st.lists(
    st.fixed_dictionaries({}, optional={f: scalars for f in FIELDS}),
    min_size=0,
    max_size=8,
)


def condition() -> st.SearchStrategy[Any]:
    return st.one_of(
        scalars,
        st.builds(lambda v: {"$ne": v}, scalars),
        st.builds(lambda vs: {"$in": vs}, st.lists(scalars, max_size=3)),
        st.builds(lambda vs: {"$nin": vs}, st.lists(scalars, max_size=3)),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["$lt", "$lte", "$gt", "$gte"]), ordered),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
    )


wheres = st.dictionaries(st.sampled_from(FIELDS), condition(), max_size=2)


async def _both(documents: list[dict[str, Any]], where: dict[str, Any], folder: str) -> tuple[list, list]:
    sqlite = SQLiteStore(os.path.join(folder, "diff.sqlite3"))
    mongo = MongoStore(EmulatedMongoClient(), "diff")
    results = []
    for store in (sqlite, mongo):
        await store.open([])
        try:
            for n, doc in enumerate(documents):
                await store.insert("docs", {"_id": f"d{n}", **doc})
            found = await store.find("docs", where, limit=0)
            assert await store.count("docs", where) == len(found)
            results.append(sorted(d["_id"] for d in found))
        finally:
            await store.close()
    return results[0], results[1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=docs, where=wheres)
def test_sqlite_selects_what_mongo_selects(documents: list[dict[str, Any]], where: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        on_sqlite, on_mongo = asyncio.run(_both(documents, where, folder))
    assert on_sqlite == on_mongo, (documents, where)
