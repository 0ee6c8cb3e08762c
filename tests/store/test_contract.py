"""One contract, every backend: what the service layer may rely on.

Each test runs against SQLite (a real file), MongoStore on the emulator, and
MongoStore on a real server when MONGODB_URI is set (see conftest.py).
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from store.base import DuplicateKey, InvalidDocument, InvalidQuery, Store

UTC = timezone.utc
T0 = datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)
CHINA = timezone(timedelta(hours=8))


def order(n: int, **extra: object) -> dict:
    doc = {
        "_id": f"o{n:03d}",
        "out_trade_no": f"o{n:03d}",
        "state": "created",
        "total_fee": 100 * n,
        "created_at": T0 + timedelta(minutes=n),
    }
    doc.update(extra)
    return doc


async def ids(store: Store, where: dict | None = None, **kw: object) -> list[str]:
    return [d["_id"] for d in await store.find("orders", where, **kw)]


# ---- insert / get ---------------------------------------------------------------


async def test_round_trip_keeps_every_value_type(store: Store) -> None:
    doc = {
        "_id": "订单-1 ✓",
        "out_trade_no": "订单-1 ✓",
        "body": "腾讯充值中心-QQ会员充值 😀 \"quoted\" \\ back\nslash",
        "total_fee": 2**63 - 1,
        "refund_fee": -(2**63),
        "rate": 0.1,
        "paid": True,
        "note": None,
        "tags": ["a", 1, None, {"k": "v"}],
        "detail": {"goods": [{"id": "g1", "price": 1, "at": T0}], "zero": 0, "empty": {}},
        "created_at": T0,
    }
    await store.insert("orders", doc)
    got = await store.get("orders", "订单-1 ✓")
    assert got == doc
    assert got["created_at"].tzinfo is not None
    assert got["created_at"].utcoffset() == timedelta(0)
    assert got["detail"]["goods"][0]["at"] == T0
    assert type(got["total_fee"]) is int and type(got["paid"]) is bool


async def test_datetimes_come_back_utc_at_millisecond_precision(store: Store) -> None:
    china = datetime(2024, 5, 1, 16, 0, 0, 123456, tzinfo=CHINA)
    await store.insert("orders", order(1, created_at=china))
    got = (await store.get("orders", "o001"))["created_at"]
    assert got == datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)
    assert got.utcoffset() == timedelta(0)


async def test_get_missing_is_none(store: Store) -> None:
    assert await store.get("orders", "nope") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"_id": "x", "created_at": datetime(2024, 1, 1)},
        {"_id": "x", "deep": {"at": datetime(2024, 1, 1)}},
        {"_id": "x", "n": 2**63},
        {"_id": "x", "f": float("nan")},
        {"_id": "x", "a.b": 1},
        {"_id": "x", "$gt": 1},
        {"_id": "x", "meta": {"$where": "1"}},
        {"_id": "x", "meta": {"a.b": 1}},
        {"_id": 5},
        {"state": "created"},
        {"_id": "x", "blob": b"bytes"},
    ],
    ids=["naive", "nested-naive", "int-overflow", "nan", "dotted", "dollar", "nested-dollar",
         "nested-dotted", "int-id", "no-id", "bytes"],
)
async def test_unstorable_documents_are_refused(store: Store, bad: dict) -> None:
    with pytest.raises(InvalidDocument):
        await store.insert("orders", bad)
    assert await store.count("orders") == 0


# ---- unique keys ---------------------------------------------------------------------


async def test_duplicate_id_is_refused(store: Store) -> None:
    await store.insert("orders", order(1))
    with pytest.raises(DuplicateKey) as caught:
        await store.insert("orders", order(1, out_trade_no="other"))
    assert caught.value.field == "_id"
    assert caught.value.collection == "orders"
    assert (await store.get("orders", "o001"))["out_trade_no"] == "o001"


async def test_unique_out_trade_no(store: Store) -> None:
    await store.insert("orders", order(1))
    with pytest.raises(DuplicateKey) as caught:
        await store.insert("orders", order(2, out_trade_no="o001"))
    assert caught.value.field == "out_trade_no"
    assert await store.count("orders") == 1
    assert await store.get("orders", "o002") is None


async def test_sparse_unique_idempotency_key(store: Store) -> None:
    await store.insert("checkouts", {"_id": "c1", "status": "open"})
    await store.insert("checkouts", {"_id": "c2", "status": "open"})  # absent twice: fine
    await store.insert("checkouts", {"_id": "c3", "idempotency_key": "k-1"})
    await store.insert("checkouts", {"_id": "c4", "idempotency_key": "k-2"})
    with pytest.raises(DuplicateKey) as caught:
        await store.insert("checkouts", {"_id": "c5", "idempotency_key": "k-1"})
    assert caught.value.field == "idempotency_key"
    # null would be indexed by MongoDB but not by SQLite: refused on both
    with pytest.raises(InvalidDocument):
        await store.insert("checkouts", {"_id": "c6", "idempotency_key": None})
    assert await store.count("checkouts") == 4
    found = await store.find("checkouts", {"idempotency_key": "k-1"})
    assert [d["_id"] for d in found] == ["c3"]


async def test_update_into_a_taken_unique_key_is_refused(store: Store) -> None:
    await store.insert("orders", order(1))
    await store.insert("orders", order(2))
    with pytest.raises(DuplicateKey) as caught:
        await store.update_if("orders", "o002", {}, {"out_trade_no": "o001"})
    assert caught.value.field == "out_trade_no"
    assert (await store.get("orders", "o002"))["out_trade_no"] == "o002"


# ---- find / count ---------------------------------------------------------------------


@pytest.fixture
async def orders(store: Store) -> Store:
    """o001..o006: states, fees 100..600, created_at T0+1..6 min; o006 has no
    next_check_at, o005 a null one."""
    states = ["created", "prepaid", "paid", "prepaid", "closed", "paid"]
    for n, state in enumerate(states, start=1):
        extra: dict = {"state": state, "next_check_at": T0 + timedelta(minutes=10 * n)}
        if n == 5:
            extra["next_check_at"] = None
        if n == 6:
            del extra["next_check_at"]
        await store.insert("orders", order(n, **extra))
    return store


async def test_find_equality_and_in(orders: Store) -> None:
    assert await ids(orders, {"state": "prepaid"}) == ["o002", "o004"]
    assert await ids(orders, {"state": {"$in": ["created", "closed"]}}) == ["o001", "o005"]
    assert await ids(orders, {"state": {"$in": []}}) == []
    assert await ids(orders, {"total_fee": 300}) == ["o003"]
    assert await ids(orders, {"created_at": T0 + timedelta(minutes=2)}) == ["o002"]
    assert await ids(orders, {"state": "paid", "total_fee": 600}) == ["o006"]
    assert await ids(orders, {"_id": "o004"}) == ["o004"]
    assert await ids(orders, {"_id": {"$in": ["o001", "o009", "o003"]}}) == ["o001", "o003"]


async def test_find_negations_include_missing_fields(orders: Store) -> None:
    assert await ids(orders, {"state": {"$ne": "paid"}}) == ["o001", "o002", "o004", "o005"]
    assert await ids(orders, {"state": {"$nin": ["paid", "prepaid"]}}) == ["o001", "o005"]
    assert await ids(orders, {"state": {"$nin": []}}) == await ids(orders)
    assert await ids(orders, {"missing_field": {"$ne": "x"}}) == await ids(orders)
    some_time = T0 + timedelta(minutes=10)
    assert await ids(orders, {"next_check_at": {"$ne": some_time}}) == ["o002", "o003", "o004", "o005", "o006"]


async def test_find_ranges_on_numbers_strings_and_datetimes(orders: Store) -> None:
    assert await ids(orders, {"total_fee": {"$lt": 300}}) == ["o001", "o002"]
    assert await ids(orders, {"total_fee": {"$lte": 300}}) == ["o001", "o002", "o003"]
    assert await ids(orders, {"total_fee": {"$gt": 500}}) == ["o006"]
    assert await ids(orders, {"total_fee": {"$gte": 500}}) == ["o005", "o006"]
    assert await ids(orders, {"total_fee": {"$gt": 150.5, "$lt": 400}}) == ["o002", "o003"]
    assert await ids(orders, {"state": {"$gte": "paid"}}) == ["o002", "o003", "o004", "o006"]
    assert await ids(orders, {"_id": {"$gt": "o004"}}) == ["o005", "o006"]
    t3 = T0 + timedelta(minutes=3)
    assert await ids(orders, {"created_at": {"$lt": t3}}) == ["o001", "o002"]
    assert await ids(orders, {"created_at": {"$lte": t3}}) == ["o001", "o002", "o003"]
    assert await ids(orders, {"created_at": {"$gt": t3.astimezone(CHINA)}}) == ["o004", "o005", "o006"]
    # null and missing never satisfy a range
    assert await ids(orders, {"next_check_at": {"$gte": T0}}) == ["o001", "o002", "o003", "o004"]


async def test_the_reconcilers_query(orders: Store) -> None:
    now = T0 + timedelta(minutes=35)
    due = await orders.find(
        "orders",
        {"state": {"$in": ["created", "prepaid"]}, "next_check_at": {"$lte": now}},
        sort=[("next_check_at", 1)],
    )
    assert [d["_id"] for d in due] == ["o001", "o002"]


async def test_strings_and_numbers_do_not_cross_compare(store: Store) -> None:
    await store.insert("orders", order(1, ref="5"))
    await store.insert("orders", order(2, ref=5))
    await store.insert("orders", order(3, ref="abc"))
    assert await ids(store, {"ref": "5"}) == ["o001"]
    assert await ids(store, {"ref": 5}) == ["o002"]
    assert await ids(store, {"ref": {"$gt": 1}}) == ["o002"]
    assert await ids(store, {"ref": {"$gt": "1"}}) == ["o001", "o003"]
    assert await ids(store, {"ref": {"$in": [5, "abc"]}}) == ["o002", "o003"]


async def test_datetime_filters_do_not_match_strings(store: Store) -> None:
    await store.insert("orders", order(1, at=T0))
    await store.insert("orders", order(2, at='{"$date":"2024-05-01T08:00:00.123Z"}'))
    await store.insert("orders", order(3, at="2024-05-01T08:00:00.123Z"))
    assert await ids(store, {"at": T0}) == ["o001"]
    assert await ids(store, {"at": {"$lte": T0}}) == ["o001"]
    # and string filters do not match datetimes
    assert await ids(store, {"at": {"$gt": "0"}}) == ["o002", "o003"]
    assert await ids(store, {"at": '{"$date":"2024-05-01T08:00:00.123Z"}'}) == ["o002"]


async def test_find_null_exists_and_booleans(orders: Store) -> None:
    assert await ids(orders, {"next_check_at": None}) == ["o005", "o006"]
    assert await ids(orders, {"next_check_at": {"$in": [None]}}) == ["o005", "o006"]
    assert await ids(orders, {"next_check_at": {"$ne": None}}) == ["o001", "o002", "o003", "o004"]
    assert await ids(orders, {"next_check_at": {"$exists": True}}) == ["o001", "o002", "o003", "o004", "o005"]
    assert await ids(orders, {"next_check_at": {"$exists": False}}) == ["o006"]
    await orders.update_if("orders", "o001", {}, {"refunded": True})
    await orders.update_if("orders", "o002", {}, {"refunded": False})
    assert await ids(orders, {"refunded": True}) == ["o001"]
    assert await ids(orders, {"refunded": False}) == ["o002"]
    assert await ids(orders, {"refunded": {"$ne": True}}) == ["o002", "o003", "o004", "o005", "o006"]


async def test_sort_limit_skip(orders: Store) -> None:
    assert await ids(orders, sort=[("total_fee", -1)]) == ["o006", "o005", "o004", "o003", "o002", "o001"]
    assert await ids(orders, sort=[("created_at", 1)]) == ["o001", "o002", "o003", "o004", "o005", "o006"]
    assert await ids(orders, sort=[("created_at", -1)], limit=2) == ["o006", "o005"]
    assert await ids(orders, sort=[("state", 1), ("total_fee", -1)]) == [
        "o005", "o001", "o006", "o003", "o004", "o002",
    ]
    # ties are broken by _id, so pages neither repeat nor lose documents
    pages = [await ids(orders, sort=[("state", 1)], limit=2, skip=s) for s in (0, 2, 4, 6)]
    assert pages == [["o005", "o001"], ["o003", "o006"], ["o002", "o004"], []]
    assert await ids(orders, limit=0) == await ids(orders, limit=100)
    assert len(await ids(orders, limit=0)) == 6
    assert await ids(orders, sort=[("_id", -1)], skip=1, limit=2) == ["o005", "o004"]


async def test_count(orders: Store) -> None:
    assert await orders.count("orders") == 6
    assert await orders.count("orders", {"state": "paid"}) == 2
    assert await orders.count("orders", {"total_fee": {"$gte": 200, "$lt": 500}}) == 3
    assert await orders.count("orders", {"state": "nope"}) == 0
    assert await orders.count("never_written") == 0


# ---- update_if / upsert_if / delete_if --------------------------------------------------


async def test_update_if_compare_and_set(orders: Store) -> None:
    paid_at = T0 + timedelta(hours=1)
    doc = await orders.update_if(
        "orders", "o002", {"state": {"$in": ["created", "prepaid"]}}, {"state": "paid", "paid_at": paid_at}
    )
    assert doc is not None and doc["state"] == "paid" and doc["paid_at"] == paid_at
    assert doc["total_fee"] == 200  # untouched fields kept
    assert await orders.get("orders", "o002") == doc
    # the same move again finds the state moved on
    again = await orders.update_if("orders", "o002", {"state": {"$in": ["created", "prepaid"]}}, {"state": "closed"})
    assert again is None
    assert (await orders.get("orders", "o002"))["state"] == "paid"
    assert await orders.update_if("orders", "missing", {}, {"state": "paid"}) is None


async def test_update_if_answers_what_a_read_gives(orders: Store) -> None:
    """The returned document is the stored one: microseconds cut to the
    store's milliseconds, any timezone as UTC, tuples as lists."""
    china = timezone(timedelta(hours=8))
    changes = {
        "paid_at": datetime(2024, 5, 1, 16, 0, 0, 123456, tzinfo=china),
        "tags": ("a", 1),
        "detail": {"at": T0 + timedelta(microseconds=999), "items": [("x", T0)]},
    }
    doc = await orders.update_if("orders", "o002", {}, changes)
    assert doc == await orders.get("orders", "o002")
    assert doc["paid_at"] == datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=timezone.utc)
    assert doc["paid_at"].utcoffset() == timedelta(0) and doc["tags"] == ["a", 1]


async def test_update_if_inc(orders: Store) -> None:
    doc = await orders.update_if("orders", "o001", {"state": "created"}, {"checked": True}, inc={"checks": 1})
    assert doc is not None and doc["checks"] == 1 and doc["checked"] is True
    doc = await orders.update_if("orders", "o001", {}, {}, inc={"checks": 2, "total_fee": -50})
    assert doc is not None and (doc["checks"], doc["total_fee"]) == (3, 50)
    doc = await orders.update_if("orders", "o001", {}, {}, inc={"big": 2**62})
    doc = await orders.update_if("orders", "o001", {}, {}, inc={"big": 2**62 - 1})
    assert doc is not None and doc["big"] == 2**63 - 1
    assert await orders.update_if("orders", "o001", {"state": "paid"}, {}, inc={"checks": 1}) is None
    assert (await orders.get("orders", "o001"))["checks"] == 3
    with pytest.raises(InvalidQuery):
        await orders.update_if("orders", "o001", {}, {}, inc={"state": 1})
    with pytest.raises(InvalidQuery):
        await orders.update_if("orders", "o001", {}, {}, inc={"checks": 1.5})
    with pytest.raises(InvalidQuery):
        await orders.update_if("orders", "o001", {}, {"checks": 0}, inc={"checks": 1})
    assert (await orders.get("orders", "o001"))["state"] == "created"


async def test_update_if_without_changes_is_a_conditional_read(orders: Store) -> None:
    assert (await orders.update_if("orders", "o003", {"state": "paid"}, {}))["_id"] == "o003"
    assert await orders.update_if("orders", "o003", {"state": "created"}, {}) is None


async def test_update_if_refuses_bad_changes(orders: Store) -> None:
    for changes in ({"_id": "x"}, {"a.b": 1}, {"$set": {"state": "paid"}}, {"at": datetime(2024, 1, 1)}):
        with pytest.raises(InvalidQuery):
            await orders.update_if("orders", "o001", {}, changes)
    with pytest.raises(InvalidQuery):
        await orders.update_if("orders", "o001", {"_id": "o001"}, {"state": "paid"})
    assert (await orders.get("orders", "o001"))["state"] == "created"


async def test_fifty_concurrent_moves_exactly_one_wins(orders: Store) -> None:
    async def attempt(n: int) -> bool:
        doc = await orders.update_if(
            "orders", "o002", {"state": "prepaid"}, {"state": "paid", "paid_by": n}, inc={"moves": 1}
        )
        return doc is not None

    results = await asyncio.gather(*(attempt(n) for n in range(50)))
    assert results.count(True) == 1
    final = await orders.get("orders", "o002")
    assert final["state"] == "paid" and final["moves"] == 1
    assert final["paid_by"] == results.index(True)


async def test_fifty_concurrent_increments_all_count(orders: Store) -> None:
    await asyncio.gather(*(orders.update_if("orders", "o001", {}, {}, inc={"hits": 1}) for _ in range(50)))
    assert (await orders.get("orders", "o001"))["hits"] == 50


async def test_upsert_if(store: Store) -> None:
    # missing: written whatever expect says
    assert await store.upsert_if("orders", "u1", {"state": "never"}, order(1, _id="u1", out_trade_no="u1"))
    assert (await store.get("orders", "u1"))["state"] == "created"
    # matching: replaced wholesale
    assert await store.upsert_if("orders", "u1", {"state": "created"}, {"out_trade_no": "u1", "state": "paid"})
    assert await store.get("orders", "u1") == {"_id": "u1", "out_trade_no": "u1", "state": "paid"}
    # not matching: left alone
    assert not await store.upsert_if("orders", "u1", {"state": "created"}, {"out_trade_no": "u1", "state": "x"})
    assert (await store.get("orders", "u1"))["state"] == "paid"
    with pytest.raises(InvalidQuery):
        await store.upsert_if("orders", "u1", {}, {"_id": "other", "state": "paid"})
    with pytest.raises(InvalidDocument):
        await store.upsert_if("orders", "u1", {}, {"at": datetime(2024, 1, 1)})


async def test_upsert_if_still_honours_other_unique_keys(store: Store) -> None:
    await store.insert("orders", order(1))
    with pytest.raises(DuplicateKey) as caught:
        await store.upsert_if("orders", "u2", {}, {"out_trade_no": "o001"})
    assert caught.value.field == "out_trade_no"
    assert await store.get("orders", "u2") is None


async def test_concurrent_upserts_of_a_new_id_write_once(store: Store) -> None:
    async def attempt(n: int) -> bool:
        return await store.upsert_if("leases", "job", {"holder": f"h{n}"}, {"holder": f"h{n}"})

    results = await asyncio.gather(*(attempt(n) for n in range(20)))
    assert results.count(True) == 1
    assert (await store.get("leases", "job"))["holder"] == f"h{results.index(True)}"


async def test_delete_if(orders: Store) -> None:
    assert not await orders.delete_if("orders", "o001", {"state": "paid"})
    assert await orders.get("orders", "o001") is not None
    assert await orders.delete_if("orders", "o001", {"state": "created"})
    assert await orders.get("orders", "o001") is None
    assert not await orders.delete_if("orders", "o001")
    assert await orders.delete_if("orders", "o002")
    assert await orders.count("orders") == 4


# ---- injection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        {"state": {"$where": "1"}},
        {"state": {"$regex": ".*"}},
        {"state": {"$expr": {"$eq": [1, 1]}}},
        {"$where": "sleep(1000)"},
        {"$or": [{"state": "paid"}, {"state": "created"}]},
        {"a.b": 1},
        {"$gt": 1},
        {"state; DROP TABLE orders": 1},
        {"json_extract(doc, '$.x')": 1},
        {"state": {"paid": 1}},
        {"state": {}},
        {"state": ["paid"]},
        {"state": {"$in": "paid"}},
        {"state": {"$in": [{"$gt": ""}]}},
        {"state": {"$exists": "yes"}},
        {"total_fee": {"$gt": None}},
        {"created_at": datetime(2024, 1, 1)},
    ],
    ids=lambda w: repr(w)[:40],
)
async def test_operator_and_field_injection_refused(orders: Store, where: dict) -> None:
    with pytest.raises(InvalidQuery):
        await orders.find("orders", where)
    with pytest.raises(InvalidQuery):
        await orders.count("orders", where)
    with pytest.raises(InvalidQuery):
        await orders.update_if("orders", "o001", where, {"state": "hacked"})
    with pytest.raises(InvalidQuery):
        await orders.delete_if("orders", "o001", where)
    assert (await orders.get("orders", "o001"))["state"] == "created"
    assert await orders.count("orders") == 6


@pytest.mark.parametrize("name", ["orders; DROP TABLE orders", "a.b", "$cmd", "Orders", "sqlite_master", ""])
async def test_collection_names_are_checked(orders: Store, name: str) -> None:
    with pytest.raises(InvalidQuery):
        await orders.find(name)
    with pytest.raises(InvalidQuery):
        await orders.insert(name, {"_id": "x"})
    assert await orders.count("orders") == 6


@pytest.mark.parametrize(
    "sort", [[("total_fee; DROP TABLE orders", 1)], [("total_fee", 2)], [("$natural", 1)], [("a.b", -1)]]
)
async def test_sort_fields_are_checked(orders: Store, sort: list) -> None:
    with pytest.raises(InvalidQuery):
        await orders.find("orders", sort=sort)


@pytest.mark.parametrize(
    "value",
    [
        "x'; DROP TABLE orders;--",
        "' OR '1'='1",
        '") OR 1=1 --',
        "$gt",
        "{\"$ne\": null}",
        "%",
        "_",
        "?",
        "\\",
    ],
)
async def test_hostile_values_are_stored_and_matched_literally(orders: Store, value: str) -> None:
    await orders.insert("orders", order(9, _id=value, out_trade_no=value, state=value))
    assert (await orders.get("orders", value))["state"] == value
    assert await ids(orders, {"state": value}) == [value]
    assert await ids(orders, {"out_trade_no": {"$in": [value]}}) == [value]
    assert await orders.count("orders", {"state": {"$ne": value}}) == 6
    assert await orders.update_if("orders", value, {"state": value}, {"note": value}) is not None
    assert await orders.delete_if("orders", value, {"note": value})
    assert await orders.count("orders") == 6
