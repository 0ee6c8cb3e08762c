"""What only the MongoDB backend has to prove: its indexes, its error mapping
(with the emulator and with the real driver against a closed port), and how
the emulator itself behaves."""
from __future__ import annotations

import gc
import os
import socket
import warnings

import pytest
from pymongo.errors import DuplicateKeyError, NetworkTimeout, OperationFailure

from store.base import DuplicateKey, Index, InvalidQuery, StoreError, StoreUnavailable
from store.mongo import CLIENT_OPTIONS, MongoStore
from store.open import INDEXES
from tests.store.mongo_emulator import EmulatedMongoClient

pytestmark = pytest.mark.emulated_mongo


async def opened() -> tuple[MongoStore, EmulatedMongoClient]:
    client = EmulatedMongoClient()
    store = MongoStore(client, "wxpay_test")
    await store.open(INDEXES)
    return store, client


def test_real_server_run() -> None:
    """The contract suite's ``mongo_real`` backend needs a server."""
    if not os.environ.get("MONGODB_URI"):
        pytest.skip(
            "MONGODB_URI is not set: no MongoDB server can run on this machine, so the contract "
            "suite ran against the emulator only (mongo_emulated); set it to add mongo_real"
        )


async def test_indexes_are_created_with_their_options() -> None:
    store, client = await opened()
    orders = await client["wxpay_test"]["orders"].index_information()
    assert orders["ix_out_trade_no__u"]["unique"] is True
    assert orders["ix_out_trade_no__u"]["key"] == [("out_trade_no", 1)]
    assert orders["ix_state__next_check_at"]["key"] == [("state", 1), ("next_check_at", 1)]
    assert not orders["ix_state__next_check_at"].get("unique")
    checkouts = await client["wxpay_test"]["checkouts"].index_information()
    key = checkouts["ix_idempotency_key__u__s"]
    assert key["unique"] is True
    assert key["partialFilterExpression"] == {"idempotency_key": {"$exists": True}}
    await store.open(INDEXES)  # again: harmless
    await store.close()
    assert not client.closed  # an injected client belongs to the caller


async def test_server_down_is_unavailable_for_every_verb() -> None:
    store, client = await opened()
    await store.insert("orders", {"_id": "o1", "out_trade_no": "o1", "state": "created"})
    client.down = True
    calls = [
        store.ping(),
        store.insert("orders", {"_id": "o2", "out_trade_no": "o2"}),
        store.get("orders", "o1"),
        store.find("orders", {"state": "created"}),
        store.count("orders"),
        store.update_if("orders", "o1", {"state": "created"}, {"state": "paid"}),
        store.upsert_if("orders", "o1", {}, {"out_trade_no": "o1"}),
        store.delete_if("orders", "o1"),
        store.open(INDEXES),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            await call
    client.down = False
    assert (await store.get("orders", "o1"))["state"] == "created"  # nothing half-written


async def test_fault_hook_maps_driver_errors() -> None:
    store, client = await opened()

    def timeout(operation: str) -> None:
        raise NetworkTimeout(f"emulated timeout in {operation}")

    client.fault = timeout
    with pytest.raises(StoreUnavailable):
        await store.get("orders", "o1")

    def other(operation: str) -> None:
        raise OperationFailure("emulated failure", 2)

    client.fault = other
    with pytest.raises(StoreError) as caught:
        await store.count("orders")
    assert not isinstance(caught.value, (StoreUnavailable, DuplicateKey))


async def test_no_server_with_the_real_driver_is_unavailable() -> None:
    """The real AsyncMongoClient against a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = MongoStore(f"mongodb://127.0.0.1:{port}/?directConnection=true", "wxpay", serverSelectionTimeoutMS=200)
    with pytest.raises(StoreUnavailable):
        await store.open(INDEXES)
    # PyMongo 4.20 leaves a socket to the garbage collector when close()
    # cancels its monitor in the middle of a connect (pool_shared.py closes
    # it on OSError/TimeoutError only); collect it here, not in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        await store.close()
        gc.collect()


def test_client_options_bound_every_wait() -> None:
    assert CLIENT_OPTIONS["tz_aware"] is True
    for option in ("serverSelectionTimeoutMS", "connectTimeoutMS", "socketTimeoutMS"):
        assert 0 < CLIENT_OPTIONS[option] <= 30_000


def test_duplicate_field_falls_back_to_the_error_message() -> None:
    store = MongoStore(EmulatedMongoClient(), "db")
    store._index_fields[("orders", "ix_out_trade_no__u")] = ("out_trade_no",)
    old_server = DuplicateKeyError(
        "E11000 duplicate key error collection: db.orders index: ix_out_trade_no__u dup key: { : \"o1\" }", 11000
    )
    assert store._dup_field("orders", old_server) == "out_trade_no"
    id_clash = DuplicateKeyError("E11000 duplicate key error collection: db.orders index: _id_ dup key", 11000)
    assert store._dup_field("orders", id_clash) == "_id"
    assert store._dup_field("orders", DuplicateKeyError("E11000", 11000)) is None


async def test_filters_reach_the_driver_only_after_checking() -> None:
    store, client = await opened()
    before = client.calls
    with pytest.raises(InvalidQuery):
        await store.find("orders", {"state": {"$where": "sleep(100)"}})
    with pytest.raises(InvalidQuery):
        await store.update_if("orders", "o1", {"$expr": {"$eq": [1, 1]}}, {"state": "x"})
    assert client.calls == before  # refused before any round trip


async def test_emulator_find_one_and_update_returns_the_requested_version() -> None:
    from pymongo import ReturnDocument

    coll = EmulatedMongoClient()["db"]["c"]
    await coll.insert_one({"_id": "a", "n": 1})
    before = await coll.find_one_and_update({"_id": "a"}, {"$inc": {"n": 1}})
    after = await coll.find_one_and_update({"_id": "a"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER)
    assert (before["n"], after["n"]) == (1, 3)
    with pytest.raises(NotImplementedError):
        await coll.find_one_and_update({"_id": "a"}, {"$unset": {"n": ""}})


async def test_emulator_duplicate_errors_look_like_a_servers() -> None:
    coll = EmulatedMongoClient()["db"]["c"]
    await coll.create_index([("k", 1)], name="k_1", unique=True, partialFilterExpression={"k": {"$exists": True}})
    await coll.insert_one({"_id": "a", "k": "x"})
    await coll.insert_one({"_id": "b"})
    await coll.insert_one({"_id": "c"})  # partial: absent twice is fine
    with pytest.raises(DuplicateKeyError) as caught:
        await coll.insert_one({"_id": "d", "k": "x"})
    assert caught.value.details["keyPattern"] == {"k": 1}
    assert caught.value.details["keyValue"] == {"k": "x"}
    assert "index: k_1 dup key" in str(caught.value)
    with pytest.raises(DuplicateKeyError) as caught:
        await coll.insert_one({"_id": "a"})
    assert caught.value.details["keyPattern"] == {"_id": 1}


async def test_unknown_sparse_index_option_is_refused() -> None:
    store, _ = await opened()
    with pytest.raises(InvalidQuery):
        await store.open([Index("orders", ())])
