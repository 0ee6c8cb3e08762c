"""Leases on every backend (part of the contract: built only on store verbs)."""
from __future__ import annotations

import asyncio
import os
import socket
from datetime import datetime, timedelta, timezone

import pytest

from store.base import Store
from store.leases import Leases, make_holder

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
TTL = timedelta(seconds=30)


async def test_acquire_free_lease_then_others_are_refused(store: Store) -> None:
    leases = Leases(store)
    assert await leases.acquire("token", "a", TTL, now=T0)
    assert not await leases.acquire("token", "b", TTL, now=T0 + timedelta(seconds=29))
    assert await leases.holder("token", now=T0 + timedelta(seconds=29)) == "a"
    # names are independent
    assert await leases.acquire("reconciler", "b", TTL, now=T0)


async def test_holder_renews_and_pushes_expiry(store: Store) -> None:
    leases = Leases(store)
    assert await leases.acquire("token", "a", TTL, now=T0)
    assert await leases.acquire("token", "a", TTL, now=T0 + timedelta(seconds=20))
    # past the first expiry, still held thanks to the renewal
    assert not await leases.acquire("token", "b", TTL, now=T0 + timedelta(seconds=40))
    assert await leases.holder("token", now=T0 + timedelta(seconds=40)) == "a"
    doc = await store.get("leases", "token")
    assert doc["expires_at"] == T0 + timedelta(seconds=50)


async def test_expired_lease_is_free_and_can_be_stolen(store: Store) -> None:
    leases = Leases(store)
    assert await leases.acquire("token", "a", TTL, now=T0)
    later = T0 + TTL
    assert await leases.holder("token", now=later) is None
    assert await leases.acquire("token", "b", TTL, now=later)
    assert await leases.holder("token", now=later) == "b"
    # the old holder cannot renew what was taken over
    assert not await leases.acquire("token", "a", TTL, now=later + timedelta(seconds=1))
    assert not await leases.release("token", "a")
    assert await leases.holder("token", now=later) == "b"


async def test_release_only_by_holder(store: Store) -> None:
    leases = Leases(store)
    assert await leases.acquire("token", "a", TTL, now=T0)
    assert not await leases.release("token", "b")
    assert await leases.holder("token", now=T0) == "a"
    assert await leases.release("token", "a")
    assert await leases.holder("token", now=T0) is None
    assert not await leases.release("token", "a")
    assert await leases.acquire("token", "b", TTL, now=T0)


async def test_concurrent_acquires_one_winner(store: Store) -> None:
    leases = Leases(store)
    results = await asyncio.gather(*(leases.acquire("job", f"h{n}", TTL, now=T0) for n in range(30)))
    assert results.count(True) == 1
    assert await leases.holder("job", now=T0) == f"h{results.index(True)}"


async def test_concurrent_steals_of_an_expired_lease_one_winner(store: Store) -> None:
    leases = Leases(store)
    assert await leases.acquire("job", "old", TTL, now=T0)
    later = T0 + timedelta(minutes=5)
    results = await asyncio.gather(*(leases.acquire("job", f"h{n}", TTL, now=later) for n in range(30)))
    assert results.count(True) == 1
    assert await leases.holder("job", now=later) == f"h{results.index(True)}"


async def test_real_clock_default(store: Store) -> None:
    leases = Leases(store)
    assert await leases.acquire("job", "a", TTL)
    assert await leases.holder("job") == "a"
    with pytest.raises(ValueError):
        await leases.acquire("job", "a", timedelta(0))


def test_make_holder_names_host_and_process() -> None:
    a, b = make_holder(), make_holder()
    assert a != b
    assert a.startswith(f"{socket.gethostname()}-{os.getpid()}-")


# -- held by a heartbeat (Leases.hold) ---------------------------------------------------

SHORT = timedelta(seconds=1.2)  # renewed every 0.4 s; generous against a busy machine


async def test_hold_keeps_a_short_lease_through_work_longer_than_its_ttl(store: Store) -> None:
    leases = Leases(store)
    async with leases.hold("job", "a", SHORT) as lease:
        assert lease is not None
        async with leases.hold("job", "b", SHORT) as other:
            assert other is None
        await asyncio.sleep(3 * SHORT.total_seconds())  # three lifetimes of the lease
        assert lease.renewals >= 2 and not lease.lost
        assert await leases.holder("job") == "a"
        assert not await leases.acquire("job", "b", SHORT)
    assert await leases.holder("job") is None  # released at the end
    assert await leases.acquire("job", "b", SHORT)


async def test_a_holder_whose_lease_was_taken_is_told_and_does_not_release_the_new_one(store: Store) -> None:
    leases = Leases(store)
    async with leases.hold("job", "a", SHORT) as lease:
        assert lease is not None
        # "a" stalled past its ttl and "b" took over (written as the store would see it).
        later = datetime.now(timezone.utc)
        await store.upsert_if("leases", "job", {}, {"holder": "b", "expires_at": later + timedelta(minutes=1), "renewed_at": later})
        await asyncio.wait_for(lease.wait_lost(), timeout=10)
        assert lease.lost
    assert await leases.holder("job") == "b"


async def test_a_holder_that_stops_renewing_frees_the_lease_within_its_ttl(store: Store) -> None:
    leases = Leases(store)
    started = datetime.now(timezone.utc)
    assert await leases.acquire("job", "dead", SHORT, now=started)  # then killed: no heartbeat
    assert not await leases.acquire("job", "next", SHORT, now=started + SHORT / 2)
    assert await leases.acquire("job", "next", SHORT, now=started + SHORT)


async def test_a_renewal_the_store_refuses_is_retried_a_period_later_and_the_lease_kept(store: Store) -> None:
    """A store hiccup while renewing: retried at the heartbeat's pace (not in a
    tight loop), and the lease stays held once a renewal gets through."""
    leases = Leases(store)
    attempts: list[float] = []
    take = leases.acquire

    async def hiccup_once(name, holder, ttl, now=None):
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) == 1:
            raise OSError("the store hiccuped")
        return await take(name, holder, ttl, now)

    async with leases.hold("job", "a", SHORT) as lease:
        assert lease is not None
        leases.acquire = hiccup_once  # the holder's renewals from now on
        for _ in range(200):  # bounded: 10 s
            if lease.renewals:
                break
            await asyncio.sleep(0.05)
        assert lease.renewals >= 1 and not lease.lost
        assert attempts[1] - attempts[0] >= 0.9 * SHORT.total_seconds() / 3
        assert await leases.holder("job") == "a"
