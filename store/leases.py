"""Named leases shared by every process on one store.

A lease lets one process at a time do a job that must not run twice (refresh
the access token, run the reconciler). It is one document per name,
``{_id: name, holder, expires_at, renewed_at}``, changed only through the
store's atomic ``upsert_if``/``delete_if``, so it works the same on SQLite
(across processes on one file) and on MongoDB (across machines).

A holder must finish, or renew, well within ``ttl``: after expiry another
process may take the lease, and nothing stops a paused holder from carrying
on. Keep jobs idempotent (the order state machine is compare-and-set anyway).

Work that may run long (a webhook POST to a slow merchant, a reconciler pass
over many orders) holds its lease with :meth:`Leases.hold`: a short ``ttl``
renewed by a heartbeat while the work runs. A process killed mid-work stops
renewing, so its lease frees within ``ttl`` (seconds) rather than after the
longest the work could ever take; a holder that finds its lease taken (or
cannot renew it for a whole ``ttl``) is told so and stops at its next safe point.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator

from store.base import Store

log = logging.getLogger("wxpay_server.leases")

#: Collection holding lease documents; keyed by ``_id`` only, no index needed.
LEASES = "leases"


#: The ttl of a lease kept by a heartbeat (renewed every third of it): a dead
#: holder's work resumes elsewhere within this long.
HEARTBEAT_TTL = timedelta(seconds=6)


class HeldLease:
    """A lease :meth:`Leases.hold` keeps renewed while the work runs."""

    def __init__(self, name: str, holder: str, ttl: timedelta) -> None:
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.renewals = 0
        self._lost = asyncio.Event()

    @property
    def lost(self) -> bool:
        """Another holder took it, or it could not be renewed for a whole ttl:
        stop before the next step (what was done stays done; jobs are idempotent)."""
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        await self._lost.wait()


def make_holder() -> str:
    """A holder id unique to this process: ``hostname-pid-random``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class Leases:
    def __init__(self, store: Store, collection: str = LEASES) -> None:
        self.store = store
        self.collection = collection

    async def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime | None = None) -> bool:
        """Take or renew ``name`` for ``ttl``: succeeds if the lease is free,
        expired, or already ``holder``'s. Each step is one atomic write."""
        if ttl <= timedelta(0):
            raise ValueError("a lease needs a positive ttl")
        now = now or datetime.now(timezone.utc)
        doc = {"holder": holder, "expires_at": now + ttl, "renewed_at": now}
        # Free or ours: a missing document is inserted, our own is renewed.
        if await self.store.upsert_if(self.collection, name, {"holder": holder}, doc):
            return True
        # Someone else's: only once it has expired.
        return await self.store.upsert_if(self.collection, name, {"expires_at": {"$lte": now}}, doc)

    async def release(self, name: str, holder: str) -> bool:
        """Give the lease up; only its holder can. ``True`` if it was held."""
        return await self.store.delete_if(self.collection, name, {"holder": holder})

    @asynccontextmanager
    async def hold(self, name: str, holder: str, ttl: timedelta = HEARTBEAT_TTL) -> AsyncIterator[HeldLease | None]:
        """Take ``name`` and keep it renewed (every ``ttl``/3) while the body
        runs; released at the end. Yields ``None`` when someone else holds it.

        Store errors while taking the lease propagate; while renewing they
        are retried until a whole ``ttl`` has passed since the last renewal,
        then the lease counts as lost. A failed release is only logged: the
        lease expires within ``ttl`` anyway."""
        if not await self.acquire(name, holder, ttl):
            yield None
            return
        lease = HeldLease(name, holder, ttl)
        # The heartbeat's task starts at its first renewal: most holders (a
        # prepay, a webhook) are done long before, and a timer costs a
        # fraction of a task started, parked and cancelled on every hold.
        loop = asyncio.get_running_loop()
        beat: list[asyncio.Future[None]] = []
        timer = loop.call_later(
            ttl.total_seconds() / 3, lambda: beat.append(asyncio.ensure_future(self._heartbeat(lease, loop.time())))
        )
        try:
            yield lease
        finally:
            timer.cancel()
            for task in beat:
                task.cancel()
            try:
                await self.release(name, holder)
            except Exception:  # it lapses on its own within ttl
                log.warning("could not release the lease %s; it expires within %s s", name, ttl.total_seconds())

    async def _heartbeat(self, lease: HeldLease, started: float) -> None:
        """Renew now (a third of the ttl after taking it), then every third."""
        loop = asyncio.get_running_loop()
        period = lease.ttl.total_seconds() / 3
        last_ok = started - period  # when the lease was taken
        while True:
            try:
                renewed = await self.acquire(lease.name, lease.holder, lease.ttl)
            except Exception:  # the store hiccuped; the next renewal may work
                if loop.time() - last_ok < lease.ttl.total_seconds():
                    log.warning("could not renew the lease %s; retrying", lease.name)
                    await asyncio.sleep(period)
                    continue
                renewed = False
            if not renewed:
                log.warning("lost the lease %s; stopping its work at the next safe point", lease.name)
                lease._lost.set()
                return
            lease.renewals += 1
            last_ok = loop.time()
            await asyncio.sleep(period)

    async def holder(self, name: str, now: datetime | None = None) -> str | None:
        """Who holds ``name`` now (``None`` if free or expired)."""
        now = now or datetime.now(timezone.utc)
        doc = await self.store.get(self.collection, name)
        if doc is None or doc["expires_at"] <= now:
            return None
        return doc["holder"]
