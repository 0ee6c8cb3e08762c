"""access_token and jsapi_ticket, cached in the store and refreshed once.

WeChat invalidates the previous token on every fetch (after a 5-minute
overlap) and counts fetches against a daily quota, so every process must
share one cached value and one refresh: concurrent needs in a process share
one in-flight task, and across processes a lease elects the refresher while
the others wait for its result in the store.

A failed fetch is remembered in the store (``<kind>:<appid>:backoff``) and
not repeated for ``BACKOFF_BASE`` seconds, doubling with each further
failure up to ``BACKOFF_MAX``: meanwhile a still-usable cached value is
served and otherwise the last failure is answered at once. Without it,
every request that needed a token while WeChat refused (an outage, the
server's IP missing from the whitelist, 40164) made its own
``cgi-bin/token`` call, and those count against the daily quota (2,000):
an outage could use up the day's fetches and keep JSSDK payments failing
after WeChat came back.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, Protocol, TypeVar

from store.base import Store
from store.leases import Leases
from wxpay.errors import TokenInvalidError, WxPayError
from wxpay.official import AccessToken, JsapiTicket

from .clock import utcnow
from .errors import UpstreamError
from .guard import store_guard
from .models import TOKENS

log = logging.getLogger("wxpay_server.tokens")
T = TypeVar("T")

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=5)  # at most 288 fetches a day per kind during a long outage


class OfficialAccountApi(Protocol):
    """Where the tokens come from (``wxpay.official.OfficialAccountClient``)."""

    async def access_token(self) -> AccessToken: ...

    async def jsapi_ticket(self, access_token: str) -> JsapiTicket: ...


@dataclass(frozen=True)
class Fetched:
    value: str
    expires_in: int


class TokenService:
    def __init__(
        self,
        store: Store,
        leases: Leases,
        official: OfficialAccountApi,
        *,
        appid: str,
        holder: str,
        refresh_ahead: timedelta = timedelta(minutes=10),
        wait_step: float = 0.05,
        wait_max: float = 10.0,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.leases = leases
        self.official = official
        self.appid = appid
        self.holder = holder
        self.refresh_ahead = refresh_ahead
        self.wait_step = wait_step
        self.wait_max = wait_max
        self.now = now
        self.upstream_fetches = 0
        self._inflight: dict[str, asyncio.Task[str]] = {}

    # -- public -------------------------------------------------------------

    async def access_token(self) -> str:
        return await self._cached("access_token", self._fetch_access_token)

    async def jsapi_ticket(self) -> str:
        return await self._cached("jsapi_ticket", self._fetch_jsapi_ticket)

    async def with_access_token(self, call: Callable[[str], Awaitable[T]]) -> T:
        """Run ``call(token)``; on a token-invalid error refresh once and retry.

        The cache is invalidated only if it still holds the token that
        failed, so a burst of failures causes one refresh, not one each.
        """
        token = await self.access_token()
        try:
            return await call(token)
        except TokenInvalidError:
            await self.invalidate("access_token", token)
            return await call(await self.access_token())

    async def invalidate(self, kind: str, value: str) -> bool:
        with store_guard():
            return await self.store.delete_if(TOKENS, self._key(kind), {"value": value})

    async def health(self) -> dict[str, dict[str, Any]]:
        """Per credential, what the store says (shared by every process, so it
        survives restarts): when it expires and was last fetched, and how many
        fetches have failed in a row since (a success clears it), with the last
        failure's code. Never the values."""
        out: dict[str, dict[str, Any]] = {}
        for kind in ("access_token", "jsapi_ticket"):
            doc = await self.store.get(TOKENS, self._key(kind))
            backoff = await self.store.get(TOKENS, self._backoff_key(kind))
            out[kind] = {
                "expires_at": doc.get("expires_at") if doc else None,
                "refreshed_at": doc.get("refreshed_at") if doc else None,
                "refresh_failures": int((backoff or {}).get("failures", 0)),
                "last_refresh_error": (backoff or {}).get("code"),
            }
        return out

    # -- internals ----------------------------------------------------------

    def _key(self, kind: str) -> str:
        return f"{kind}:{self.appid}"

    def _backoff_key(self, kind: str) -> str:
        return f"{kind}:{self.appid}:backoff"

    async def _held_back(self, kind: str) -> dict[str, Any] | None:
        """The last failure while its backoff lasts, else None."""
        with store_guard():
            doc = await self.store.get(TOKENS, self._backoff_key(kind))
        return doc if doc and doc["until"] > self.now() else None

    async def _failed(self, kind: str, exc: WxPayError) -> timedelta:
        key = self._backoff_key(kind)
        previous = await self.store.get(TOKENS, key)
        failures = (previous or {}).get("failures", 0) + 1
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(failures - 1, 16))
        until = self.now() + delay
        await self.store.upsert_if(
            TOKENS, key, {}, {"until": until, "failures": failures, "code": exc.code, "message": exc.message}
        )
        return delay

    def _fresh(self, doc: dict[str, Any] | None) -> bool:
        return bool(doc) and doc["expires_at"] - self.refresh_ahead > self.now()

    def _usable(self, doc: dict[str, Any] | None) -> bool:
        return bool(doc) and doc["expires_at"] > self.now() + timedelta(seconds=30)

    async def _cached(self, kind: str, fetch: Callable[[], Awaitable[Fetched]]) -> str:
        with store_guard():
            doc = await self.store.get(TOKENS, self._key(kind))
        if self._fresh(doc):
            return doc["value"]
        held = await self._held_back(kind)
        if held is not None:
            if self._usable(doc):
                return doc["value"]
            wait = max(1, int((held["until"] - self.now()).total_seconds() + 0.999))
            raise UpstreamError(
                held["code"], f"Could not obtain the {kind} from WeChat: {held['message']} (next attempt in {wait} s)"
            )
        task = self._inflight.get(kind)
        if task is None:
            task = asyncio.ensure_future(self._refresh(kind, fetch, doc))
            self._inflight[kind] = task
            task.add_done_callback(lambda _t, k=kind: self._inflight.pop(k, None))
        return await asyncio.shield(task)

    async def _refresh(self, kind: str, fetch: Callable[[], Awaitable[Fetched]], stale: dict | None) -> str:
        key = self._key(kind)
        with store_guard():
            # Short and renewed while WeChat answers: a refresher killed
            # mid-call holds the others up for seconds, not half a minute.
            async with self.leases.hold(f"refresh:{key}", self.holder) as lease:
                if lease is None:
                    return await self._await_other(key, stale)
                doc = await self.store.get(TOKENS, key)
                if self._fresh(doc) and (stale is None or doc["value"] != stale.get("value")):
                    return doc["value"]  # another process refreshed while we queued
                try:
                    got = await fetch()
                except WxPayError as exc:
                    delay = (await self._failed(kind, exc)).total_seconds()
                    if self._usable(stale):
                        log.warning("%s refresh failed (%s); serving the cached one until expiry, next attempt in "
                                    "%.0f s", kind, exc.code, delay)
                        return stale["value"]
                    log.warning("%s fetch failed (%s); next attempt in %.0f s", kind, exc.code, delay)
                    raise UpstreamError(exc.code, f"Could not obtain the {kind} from WeChat: {exc.message}") from exc
                self.upstream_fetches += 1
                now = self.now()
                record = {"value": got.value, "expires_at": now + timedelta(seconds=got.expires_in), "refreshed_at": now}
                await self.store.upsert_if(TOKENS, key, {}, record)
                await self.store.delete_if(TOKENS, self._backoff_key(kind), {})
                return got.value

    async def _await_other(self, key: str, stale: dict | None) -> str:
        """Another process holds the refresh lease: wait for its result."""
        waited = 0.0
        while waited < self.wait_max:
            await asyncio.sleep(self.wait_step)
            waited += self.wait_step
            with store_guard():
                doc = await self.store.get(TOKENS, key)
            if self._fresh(doc) and (stale is None or doc["value"] != stale.get("value")):
                return doc["value"]
        if self._usable(stale):
            return stale["value"]
        raise UpstreamError("token_refresh_timeout", "Another process is refreshing the WeChat token; retry shortly")

    async def _fetch_access_token(self) -> Fetched:
        got = await self.official.access_token()
        return Fetched(got.value, int(got.expires_in))

    async def _fetch_jsapi_ticket(self) -> Fetched:
        got = await self.with_access_token(self.official.jsapi_ticket)
        return Fetched(got.value, int(got.expires_in))
