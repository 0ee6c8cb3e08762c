"""Per-key asyncio locks that disappear when nobody holds or waits for them."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator


class KeyedLocks:
    """Serialise work per key (an order, a prepay slot) inside one process,
    so a burst of duplicates costs one upstream call, not one each."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        """Yields whether another holder got there first (we waited), i.e.
        whether what the caller read before may have changed in-process."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        waited = self._users.get(key, 0) > 0
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield waited
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
