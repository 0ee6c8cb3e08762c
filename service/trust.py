"""What WeChat rotates (APIv3 platform certificates), shared by every process through the store.

The gateway decides and verifies (``PayGateway.trust_refresh_due``,
``refresh_trust``); this keeps its state in the store, so every process
trusts what one of them downloaded, and lets one process at a time
refresh it, under a lease, like the access_token. A gateway with nothing
to keep (APIv2) makes all of this a no-op: ``keeps_state`` is false and
no task runs.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from store.base import Store
from store.leases import Leases
from wxpay.errors import WxPayError
from wxpay.gateway import PayGateway

from .clock import utcnow
from .guard import store_guard
from .models import TRUST

log = logging.getLogger("wxpay_server.trust")

CHECK_EVERY = timedelta(minutes=5)  # how often a process looks at the stored state and the schedule
FIRST_RETRY = timedelta(seconds=5)  # while nothing is trusted yet: look at the store (the gateway downloads at most once a minute)
START_WAIT_S = 10.0  # at start, how long to wait for another process's first download


class TrustKeeper:
    def __init__(
        self,
        store: Store,
        leases: Leases,
        gateway: PayGateway,
        *,
        holder: str,
        interval: timedelta = CHECK_EVERY,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.leases = leases
        self.gateway = gateway
        self.holder = holder
        self.interval = interval
        self.now = now
        self.key = f"{gateway.api_version}:{gateway.mch_id}"

    @property
    def keeps_state(self) -> bool:
        """Whether the gateway holds rotating trust, even before its first download."""
        return self.gateway.keeps_trust()

    async def load(self) -> bool:
        """Take what the store holds (another process may have refreshed it); whether there was anything."""
        return await self._load() is not None

    async def _load(self) -> Mapping[str, Any] | None:
        with store_guard():
            doc = await self.store.get(TRUST, self.key)
        if doc is None or not isinstance(doc.get("state"), Mapping):
            return None
        self.gateway.load_trust_state(doc["state"])
        return doc["state"]

    async def start(self, wait: float = START_WAIT_S) -> None:
        """At start: what another process saved, then a first download when none is
        trusted yet (so the first notifies find their certificate). When another
        process holds the lease (both started together), wait up to ``wait``
        seconds for what it saves rather than download too. A failure is
        logged and retried by :meth:`run_forever`; the process starts anyway."""
        try:
            await self.load()
            if await self.refresh_if_due():
                return
            waited = 0.0
            while self.gateway.trust_state() is None and waited < wait:
                await asyncio.sleep(0.2)
                waited += 0.2
                await self.load()
        except WxPayError as exc:
            log.warning("WeChat trust refresh at start failed (%s: %s); retrying in the background", exc.code,
                        exc.message)
        except Exception:
            log.exception("WeChat trust refresh at start failed")

    async def refresh_if_due(self) -> bool:
        """Refresh under the lease when the gateway says it is due; whether this process did."""
        if not self.keeps_state:
            return False
        stored = await self._load()
        if not self.gateway.trust_refresh_due():
            await self._share(stored)
            return False
        with store_guard():
            async with self.leases.hold(f"trust:{self.key}", self.holder) as lease:
                if lease is None:
                    return False  # another process refreshes; its result is loaded next time
                await self.load()
                if not self.gateway.trust_refresh_due():
                    return False
                state = await self.gateway.refresh_trust()
                if state is not None:
                    await self._save(state)
                return True

    async def _share(self, stored: Mapping[str, Any] | None) -> None:
        """Save what this process learnt outside a refresh (the gateway may download once
        on its own when a reply names a certificate it does not know yet), so the other
        processes trust it too. What it holds already includes the stored state (just
        loaded), so this write only ever adds."""
        mine = self.gateway.trust_state()
        if mine is not None and dict(mine) != (dict(stored) if stored is not None else None):
            with store_guard():
                await self._save(mine)

    async def _save(self, state: Mapping[str, Any]) -> None:
        await self.store.upsert_if(TRUST, self.key, {}, {"state": dict(state), "saved_at": self.now()})

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh_if_due()
            except WxPayError as exc:  # the gateway keeps trusting what it trusted
                log.warning("WeChat trust refresh failed (%s: %s)", exc.code, exc.message)
            except Exception:  # the loop must survive a bad round
                log.exception("WeChat trust refresh failed")
            # Nothing trusted yet (the first download failed, or another process is at it): look again soon.
            wait = self.interval if self.gateway.trust_state() is not None else min(self.interval, FIRST_RETRY)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait.total_seconds())
            except asyncio.TimeoutError:
                pass
