"""The page's poll (CheckoutService.poll) reads four fields off the stored
document instead of building a Checkout: it must say exactly what the
Checkout would, in every state, with fields left out (None is not stored;
older documents lack newer fields), on every store backend (SQLite on a real
file; MongoDB on the emulator, since no MongoDB server can run here)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from service.checkouts import CheckoutService, new_checkout_id
from service.errors import NotFound
from service.lifecycle import Lifecycle
from service.models import CHECKOUTS, PAID_STATUSES, Checkout
from service.orders import OrderBook
from tests.store.conftest import backend, store  # noqa: F401 (fixtures)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def view_of(checkout: Checkout, now: datetime) -> dict:
    """What the poll answered when it was built from a Checkout."""
    expired = checkout.status == "open" and checkout.expires_at <= now
    return {"status": "expired" if expired else checkout.status, "paid": checkout.status in PAID_STATUSES,
            "refunded_fen": checkout.refunded_fen, "return_url": checkout.return_url}


CASES = {
    "open": {},
    "open, due this instant": {"expires_at": T0},
    "open, past due": {"expires_at": T0 - timedelta(seconds=1)},
    "paid, with a return URL": {"status": "paid", "return_url": "https://shop.example/done?o=1"},
    "partially refunded": {"status": "partially_refunded", "refunded_fen": 300},
    "refunded, past due": {"status": "refunded", "refunded_fen": 1234, "expires_at": T0 - timedelta(days=1)},
    "closed, past due": {"status": "closed", "expires_at": T0 - timedelta(hours=1)},
}


async def test_the_poll_says_what_the_checkout_says(store):  # noqa: F811
    service = CheckoutService(store, Lifecycle(store, now=lambda: T0), OrderBook(store), now=lambda: T0)
    for name, fields in CASES.items():
        checkout = Checkout(**{"id": new_checkout_id(), "amount_fen": 1234, "description": "tea",
                               "expires_at": T0 + timedelta(minutes=30), "created_at": T0, **fields})
        await store.insert(CHECKOUTS, checkout.to_doc())
        assert await service.poll(checkout.id) == view_of(await service.get(checkout.id), T0), name
    # A document from before refunds were counted: no refunded_fen, no status (the default).
    old = Checkout(id=new_checkout_id(), amount_fen=5, description="old", expires_at=T0 + timedelta(minutes=1),
                   created_at=T0).to_doc()
    del old["refunded_fen"], old["status"]
    await store.insert(CHECKOUTS, old)
    assert await service.poll(old["_id"]) == view_of(await service.get(old["_id"]), T0)
    assert await service.poll(old["_id"]) == {"status": "open", "paid": False, "refunded_fen": 0, "return_url": None}


@pytest.mark.parametrize("checkout_id", ["co_000000000000000000000000", "not-an-id", "", "co_" + "0" * 200])
async def test_an_unknown_or_malformed_id_is_not_found(store, checkout_id):  # noqa: F811
    service = CheckoutService(store, Lifecycle(store, now=lambda: T0), OrderBook(store), now=lambda: T0)
    with pytest.raises(NotFound) as caught:
        await service.poll(checkout_id)
    assert caught.value.code == "checkout_not_found"
