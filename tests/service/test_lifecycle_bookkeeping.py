"""Bookkeeping on an order is guarded by the state it was read in: a snapshot
that is out of date changes nothing (a real store: SQLite on a file, MongoDB
on the emulator). Pins a survivor of the mutation run (docs/MUTATION.md)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from service.lifecycle import ORDER, Lifecycle
from service.models import ORDERS, Order
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
