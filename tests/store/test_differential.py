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
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.base import Index
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


# Indexed fields: on SQLite the filters then read the fields' columns, which
# every kind of write must fill with what the document holds.
INDEXED = [Index("docs", ("a",)), Index("docs", ("b", "a"))]


async def _write(store: Any, n: int, doc: dict[str, Any]) -> None:
    """Each document through another write path: insert; insert then update_if
    (set); upsert_if over an older version; update_if with an increment."""
    _id = f"d{n}"
    if n % 4 == 0:
        await store.insert("docs", {"_id": _id, **doc})
    elif n % 4 == 1:
        await store.insert("docs", {"_id": _id, "a": "old", "b": 0})
        await store.update_if("docs", _id, {}, {"a": doc.get("a"), "b": doc.get("b")})
        if "a" not in doc or "b" not in doc:  # no unset verb: write the document over
            await store.upsert_if("docs", _id, {}, {"_id": _id, **doc})
    elif n % 4 == 2:
        await store.upsert_if("docs", _id, {}, {"_id": _id, "a": T0, "b": "x"})
        await store.upsert_if("docs", _id, {}, {"_id": _id, **doc})
    else:
        rest = {k: v for k, v in doc.items() if k != "a"}
        await store.insert("docs", {"_id": _id, **rest})
        a = doc.get("a", 0)
        if type(a) is int:  # the same value, reached by an increment
            await store.update_if("docs", _id, {}, {}, inc={"a": a})
            if "a" not in doc:
                await store.upsert_if("docs", _id, {}, {"_id": _id, **doc})
        else:
            await store.update_if("docs", _id, {}, {"a": doc["a"]})


def _stale_columns(path: str) -> int:
    """Rows whose ``k_`` columns differ from their document's fields."""
    raw = sqlite3.connect(path)
    try:
        names = [row[1] for row in raw.execute('PRAGMA table_info("docs")') if row[1].startswith("k_")]
        return sum(raw.execute(
            f'SELECT COUNT(*) FROM docs WHERE "{n}" IS NOT json_extract(doc, \'$.{n[2:]}\')').fetchone()[0]
            for n in names)
    finally:
        raw.close()


async def _both(
    documents: list[dict[str, Any]], where: dict[str, Any], folder: str, indexes: list[Index] | None = None
) -> tuple[list, list]:
    sqlite = SQLiteStore(os.path.join(folder, "diff.sqlite3"))
    mongo = MongoStore(EmulatedMongoClient(), "diff")
    results = []
    for store in (sqlite, mongo):
        await store.open(indexes or [])
        try:
            for n, doc in enumerate(documents):
                if indexes:
                    await _write(store, n, doc)
                else:
                    await store.insert("docs", {"_id": f"d{n}", **doc})
            found = await store.find("docs", where, limit=0)
            assert await store.count("docs", where) == len(found)
            if indexes and store is sqlite:
                assert _stale_columns(sqlite.path) == 0
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


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=docs, where=wheres)
def test_sqlite_selects_what_mongo_selects_through_the_index_columns(
    documents: list[dict[str, Any]], where: dict[str, Any]
) -> None:
    """The same, with ``a`` and ``b`` indexed (SQLite reads their columns) and
    the documents written by every verb, not only insert."""
    with tempfile.TemporaryDirectory() as folder:
        on_sqlite, on_mongo = asyncio.run(_both(documents, where, folder, INDEXED))
    assert on_sqlite == on_mongo, (documents, where)
