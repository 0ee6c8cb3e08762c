"""Choosing the backend from configuration."""
from __future__ import annotations

from pathlib import Path

import pytest

from store.base import Index, StoreMisconfigured
from store.mongo import MongoStore
from store.open import INDEXES, mongo_database, open_store
from store.sqlite import SQLiteStore


def test_sqlite_without_a_url(tmp_path: Path) -> None:
    for url in (None, ""):
        store = open_store(url, sqlite_path=tmp_path / "x.sqlite3")
        assert isinstance(store, SQLiteStore)
        assert store.path == str(tmp_path / "x.sqlite3")


@pytest.mark.parametrize(
    "url, database",
    [
        ("mongodb://127.0.0.1:27017", "wxpay"),
        ("mongodb://user:p%40ss@h1:27017,h2:27017/shop?replicaSet=rs0", "shop"),
        ("mongodb+srv://cluster0.example.net/pay", "pay"),
        ("MONGODB://h/", "wxpay"),
    ],
)
def test_mongo_for_a_mongodb_url(tmp_path: Path, url: str, database: str) -> None:
    store = open_store(url, sqlite_path=tmp_path / "x.sqlite3")
    assert isinstance(store, MongoStore)
    assert store.database == database
    assert mongo_database(url) == database
    assert open_store(url, sqlite_path="unused", database="other").database == "other"  # type: ignore[union-attr]


def test_other_urls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreMisconfigured):
        open_store("postgres://h/db", sqlite_path=tmp_path / "x.sqlite3")


def test_app_indexes() -> None:
    by_key = {(i.collection, i.fields): i for i in INDEXES}
    assert by_key[("orders", ("out_trade_no",))].unique
    assert by_key[("refunds", ("out_refund_no",))].unique
    key = by_key[("checkouts", ("idempotency_key",))]
    assert key.unique and key.sparse
    assert ("orders", ("state", "next_check_at")) in by_key
    assert ("outbox", ("state", "next_attempt_at")) in by_key
    assert ("audit", ("kind", "at")) in by_key
    assert all(isinstance(i, Index) for i in INDEXES)
    assert len(by_key) == len(INDEXES)
