"""store_guard: a store failure becomes the one domain error a caller can act
on; a duplicate key, and anything not from the store, pass through as they are."""
from __future__ import annotations

import asyncio

import pytest

from service.errors import NotFound, Unavailable
from service.guard import store_guard
from store.base import DuplicateKey, StoreError, StoreMisconfigured, StoreUnavailable


@pytest.mark.parametrize("error", [StoreError("disk I/O error"), StoreUnavailable("timed out"),
                                   StoreMisconfigured("not a database")])
def test_a_store_failure_becomes_unavailable_and_keeps_its_cause(error):
    with pytest.raises(Unavailable) as caught:
        with store_guard():
            raise error
    assert caught.value.code == "store_unavailable" and caught.value.__cause__ is error


@pytest.mark.parametrize("error", [DuplicateKey("checkouts", "idempotency_key"), NotFound("x", "no such thing"),
                                   KeyError("field"), asyncio.CancelledError()])
def test_other_errors_pass_through_unchanged(error):
    with pytest.raises(type(error)) as caught:
        with store_guard():
            raise error
    assert caught.value is error


async def test_it_guards_across_awaits_and_when_nested():
    async def failing() -> None:
        await asyncio.sleep(0)
        raise StoreUnavailable("gone")

    with store_guard():
        with store_guard():
            assert await asyncio.sleep(0, "value") == "value"
    with pytest.raises(Unavailable):
        with store_guard():
            with store_guard():
                await failing()
