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


def test_where_a_store_is_never_shows_credentials_or_options(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_store(None, sqlite_path="data/wxpay.sqlite3").location == str(tmp_path / "data" / "wxpay.sqlite3")
    store = open_store("mongodb://wxpay:S3cret%40pw@db1:27017,db2:27018/shop?replicaSet=rs0&tlsCertificateKeyFilePassword=K3y",
                       sqlite_path="unused", database="wxpay")
    assert store.location == "mongodb://db1:27017,db2:27018/wxpay"
    srv = open_store("mongodb+srv://u:p@cluster0.example.net/?retryWrites=true", sqlite_path="unused")
    assert srv.location == "mongodb+srv://cluster0.example.net/wxpay"


def test_timeouts_in_the_uri_win_over_ours() -> None:
    ours = MongoStore("mongodb://db1/", "wxpay")
    assert ours._client_options["serverSelectionTimeoutMS"] == 5000 and ours.selection_timeout_s == 5.0
    theirs = MongoStore("mongodb://db1/?serverSelectionTimeoutMS=1500&connectTimeoutMS=900", "wxpay")
    assert "serverSelectionTimeoutMS" not in theirs._client_options  # the driver reads the URI's
    assert "connectTimeoutMS" not in theirs._client_options and theirs._client_options["socketTimeoutMS"] == 10_000
    assert theirs.selection_timeout_s == 1.5
    assert MongoStore("mongodb://db1/", "wxpay", serverSelectionTimeoutMS=300).selection_timeout_s == 0.3


def test_driver_words_lose_the_uris_credentials() -> None:
    from store.mongo import _scrub

    uri = "mongodb://wxpay-user:p%40ss-word@db1/?x=1"
    text = "bad thing near wxpay-user:p%40ss-word@db1 (p@ss-word, wxpay-user)"
    scrubbed = _scrub(text, uri)
    assert "p%40ss-word" not in scrubbed and "p@ss-word" not in scrubbed and "wxpay-user" not in scrubbed
    # A short user name is no secret (scrubbing "u" would garble every word); the password always is.
    assert _scrub("user u refused: longpassword", "mongodb://u:longpassword@h/") == "user u refused: ***"
