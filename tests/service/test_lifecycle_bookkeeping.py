"""Bookkeeping on an order is guarded by the state it was read in: a snapshot
that is out of date changes nothing; a move stamps its time and honours its
extra conditions; a discard deletes only what it names; a move asked for in
error names its machine (a real store: SQLite on a file, MongoDB on the
emulator). Each pins a survivor of the mutation run (docs/MUTATION.md)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from service.lifecycle import CHECKOUT, ORDER, REFUND, Lifecycle
from service.models import CHECKOUTS, CLOSE_MARK, ORDERS, REFUNDS, Order
from tests.store.conftest import BACKENDS, drop_store, make_store

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path):
    opened, handle = await make_store(request.param, tmp_path)
    try:
        yield opened
    finally:
        await drop_store(request.param, opened, handle)


async def test_touching_an_order_read_before_it_moved_changes_nothing(store):
    lifecycle = Lifecycle(store, now=lambda: T0)
    await store.insert(ORDERS, {
        "_id": "B1", "out_trade_no": "B1", "state": "prepaid", "checks": 0, "checkout_id": "co_1",
        "trade_type": "NATIVE", "appid": "wx1", "mch_id": "1900000109", "sign_type": "MD5", "total_fee": 100,
        "created_at": T0,
    })
    snapshot = Order.from_doc(await store.get(ORDERS, "B1"))
    assert await lifecycle.move(ORDER, "B1", "paid") is not None
    assert await lifecycle.touch_order(snapshot, checks=1, close_requested=True) is None
    after = await store.get(ORDERS, "B1")
    assert (after["state"], after["checks"], after.get("close_requested")) == ("paid", 0, None)
    fresh = Order.from_doc(after)
    touched = await lifecycle.touch_order(fresh, checks=5)
    assert touched is not None and touched.checks == 5 and touched.updated_at == T0


async def test_a_move_stamps_the_time_it_was_made(store):
    later = T0 + timedelta(minutes=7)
    await store.insert(ORDERS, {"_id": "B2", "out_trade_no": "B2", "state": "prepaid", "updated_at": T0})
    moved = await Lifecycle(store, now=lambda: later).move(ORDER, "B2", "paid")
    assert moved["updated_at"] == later
    assert (await store.get(ORDERS, "B2"))["updated_at"] == later


async def test_a_move_also_checks_its_extra_conditions(store):
    """A checkout is closed only once its close was begun (the mark), whatever its state allows."""
    lifecycle = Lifecycle(store, now=lambda: T0)
    await store.insert(CHECKOUTS, {"_id": "co_unmarked", "status": "open"})
    await store.insert(CHECKOUTS, {"_id": "co_marked", "status": "open", CLOSE_MARK: T0})
    marked = {CLOSE_MARK: {"$exists": True}}
    assert await lifecycle.move(CHECKOUT, "co_unmarked", "closed", where=marked) is None
    assert (await lifecycle.move(CHECKOUT, "co_marked", "closed", where=marked))["status"] == "closed"
    assert [(await store.get(CHECKOUTS, k))["status"] for k in ("co_unmarked", "co_marked")] == ["open", "closed"]


async def test_a_discard_deletes_the_document_only_while_its_conditions_hold(store):
    lifecycle = Lifecycle(store, now=lambda: T0)
    await store.insert(REFUNDS, {"_id": "R1", "out_refund_no": "R1", "state": "pending", "submitted": False})
    await store.insert(REFUNDS, {"_id": "R2", "out_refund_no": "R2", "state": "pending", "submitted": True})
    never_asked = {"state": "pending", "submitted": False}
    assert await lifecycle.discard(REFUND, "R2", where=never_asked) is False
    assert await lifecycle.discard(REFUND, "R1", where=never_asked) is True
    assert (await store.get(REFUNDS, "R1"), (await store.get(REFUNDS, "R2"))["state"]) == (None, "pending")


@pytest.mark.parametrize("entity, word, field, nowhere", [
    (CHECKOUT, "checkout", "status", "open"), (ORDER, "order", "state", "created"), (REFUND, "refund", "state", "pending"),
], ids=["checkout", "order", "refund"])
async def test_a_move_asked_for_in_error_names_its_machine(store, entity, word, field, nowhere):
    """A programming error (a target nothing moves to, a state passed as data) says which machine refused it."""
    lifecycle = Lifecycle(store, now=lambda: T0)
    with pytest.raises(ValueError, match=f"^no {word} ever moves to '{nowhere}'$"):
        await lifecycle.move(entity, "K", nowhere)
    with pytest.raises(ValueError, match=f"^the {word}'s {field} is the table's to check$"):
        await lifecycle.move(entity, "K", "closed", where={field: "x"})
    with pytest.raises(ValueError, match=f"^a {word}'s {field} changes only by move\\(\\)$"):
        await lifecycle.update(entity, "K", where={}, **{field: "x"})
