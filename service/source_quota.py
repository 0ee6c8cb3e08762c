"""How many calls to WeChat one source (a client IP) may cause per window.

A pay link bounds the orders of its own checkout (``checkout.max_orders``),
but whoever can get pay links (a shop page that creates a checkout per
click) could still make ``unifiedorder`` calls without end, one checkout
after another. This counts new orders per source across checkouts in fixed
windows (``checkout.orders_per_ip`` per ``checkout.orders_per_ip_window_s``).

Why in the store and not in memory: behind a load balancer every process
must see the same count, or N processes would allow N times the limit.
The cost is one or two store writes per *new* WeChat order only (a reused
prepay counts nothing), next to the unifiedorder call it guards. What is
kept is one small document per source and window, keyed by a digest (no
IP addresses at rest), and removed once its window has passed: each new
window document removes up to ``PURGE_BATCH`` expired ones, so the
collection holds about one window's worth of sources.

The same mechanism bounds each kind of call an outsider can cause, under
its own ``scope``: new WeChat orders (``orders``: ``checkout.orders_per_ip``)
and OAuth code exchanges (``sign_ins``: ``oauth.sign_ins_per_ip``).

A source is an IPv4 address or an IPv6 /64 (one subscriber's prefix, not
one of its 2^64 addresses: ``edge.sources.source_of``). Shoppers behind one
carrier-grade NAT share a source: the default limits are meant to be far
above what they make together, and each can be raised or switched off (0).
"""
from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone
from typing import Callable

from edge.sources import source_of
from store.base import DuplicateKey, Store

from .clock import utcnow
from .errors import RateLimited
from .guard import store_guard
from .models import QUOTAS

PURGE_BATCH = 20


class SourceQuota:
    def __init__(
        self,
        store: Store,
        *,
        limit: int,
        window: timedelta,
        scope: str = "orders",
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.limit = limit
        self.window = window
        self.scope = scope
        self.now = now

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    async def take(self, client_ip: str) -> None:
        """Count one new order for ``client_ip``'s source, or raise
        :class:`RateLimited` (429 ``too_many_requests``) when its window is full."""
        retry_after = await self.refusal(client_ip)
        if retry_after is not None:
            raise RateLimited(
                "too_many_requests",
                "Too many payment attempts from this network; please wait a few minutes and try again",
                retry_after_s=retry_after,
            )

    async def refusal(self, client_ip: str) -> int | None:
        """Count one call for ``client_ip``'s source: None if counted, else the
        seconds until its window ends (nothing is counted then). The caller
        names the refusal (its own error code)."""
        if not self.enabled:
            return None
        now = self.now()
        seconds = self.window.total_seconds()
        start = math.floor(now.timestamp() / seconds) * seconds
        ends = datetime.fromtimestamp(start + seconds, timezone.utc)
        digest = hashlib.sha256(source_of(client_ip).encode()).hexdigest()[:32]
        key = f"{digest}:{int(start)}" if self.scope == "orders" else f"{self.scope}:{digest}:{int(start)}"
        with store_guard():
            if await self._count_one(key):
                return None
            try:
                await self.store.insert(QUOTAS, {"_id": key, "count": 1, "expires_at": ends})
            except DuplicateKey:  # another request (or process) opened the window first
                if await self._count_one(key):
                    return None
            else:
                await self._purge(now)
                return None
        return max(1, math.ceil((ends - now).total_seconds()))

    async def _count_one(self, key: str) -> bool:
        return await self.store.update_if(QUOTAS, key, {"count": {"$lt": self.limit}}, {}, inc={"count": 1}) is not None

    async def _purge(self, now: datetime) -> None:
        expired = await self.store.find(QUOTAS, {"expires_at": {"$lte": now}}, sort=[("expires_at", 1)], limit=PURGE_BATCH)
        for doc in expired:
            await self.store.delete_if(QUOTAS, doc["_id"], {"expires_at": {"$lte": now}})
