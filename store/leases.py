"""Named leases shared by every process on one store.

A lease lets one process at a time do a job that must not run twice (refresh
the access token, run the reconciler). It is one document per name,
``{_id: name, holder, expires_at, renewed_at}``, changed only through the
store's atomic ``upsert_if``/``delete_if``, so it works the same on SQLite
(across processes on one file) and on MongoDB (across machines).

A holder must finish, or renew, well within ``ttl``: after expiry another
process may take the lease, and nothing stops a paused holder from carrying
on. Keep jobs idempotent (the order state machine is compare-and-set anyway).
"""
from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta, timezone

from store.base import Store

#: Collection holding lease documents; keyed by ``_id`` only, no index needed.
LEASES = "leases"


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

    async def holder(self, name: str, now: datetime | None = None) -> str | None:
        """Who holds ``name`` now (``None`` if free or expired)."""
        now = now or datetime.now(timezone.utc)
        doc = await self.store.get(self.collection, name)
        if doc is None or doc["expires_at"] <= now:
            return None
        return doc["holder"]
