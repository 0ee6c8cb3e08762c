"""Silent OAuth for shoppers: state bound to the browser, each code traded once.

A WeChat code is single-use: a second exchange (a refresh of the callback
page, a double tap) earns 40163. So the first exchange is claimed in the
store, keyed by a digest of the code (never the code), with a digest of the
state whose signed cookie started that sign-in. Its result goes

- only to that browser: a code replayed from another browser, with another
  state cookie or none, gets nothing (``oauth_code_replayed``, or the state
  checks before it), and costs no call to WeChat;
- once, plus repeats from the same browser within ``REPEAT_WINDOW`` (10 s)
  of the exchange: a double tap, or a retry whose first answer was lost.
  The first answer clears the state cookie, so a browser that got it cannot
  present the state again anyway; later repeats get ``oauth_code_used``.

A sign-in's state is good for one code: the first code presented with it
claims the state too (``state:<digest>``), and another code with the same
state cookie gets ``oauth_state_used`` without a call to WeChat. Without
that, one state cookie replayed with made-up codes cost a call to WeChat
and a stored claim per request. New exchanges are also counted per source
(``oauth.sign_ins_per_ip``, :class:`SourceQuota`), since a fresh state is
only a page load away.

Claims and cached openids expire after ``RECORD_TTL`` (10 minutes, longer
than WeChat lets a code live, so a replay never reaches WeChat); an expired
record is never used, and each new claim deletes up to ``PRUNE_BATCH`` (20)
expired ones, so the collection stays near (sign-ins per 10 minutes)
however fast they come, at the cost of one indexed query per sign-in.

Not stoppable here: a stolen code redeemed by another browser *before* its
owner does (WeChat does not bind a code to our state). The owner then gets
``oauth_code_replayed`` and signs in again with a fresh code.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, Callable

from store.base import DuplicateKey, Store, StoreError
from wxpay.errors import OAuthCodeError, WxPayError

from .clock import utcnow
from .errors import Forbidden, InvalidInput, RateLimited, UpstreamError
from .guard import store_guard
from .models import OAUTH_CODES
from .source_quota import SourceQuota

log = logging.getLogger("wxpay_server.oauth")

RECORD_TTL = timedelta(minutes=10)
REPEAT_WINDOW = timedelta(seconds=10)
PRUNE_BATCH = 20
STATE_PREFIX = "state:"  # a sign-in state's claim: which code it was used for
STATE_USED = "This sign-in was already used for another code; open the payment link again"

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_STATE = re.compile(r"[0-9a-f]{32}")


def safe_next(path: Any) -> str:
    """A local path to return to; anything else (absolute, //host, \\) gives "/"."""
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        return "/"
    if len(path) > 512 or _CONTROL.search(path):
        return "/"
    return path


def new_state() -> str:
    return secrets.token_hex(16)  # [0-9a-f]{32}: inside WeChat's [a-zA-Z0-9]{,128}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class OAuthService:
    def __init__(
        self,
        store: Store,
        client: Any,
        *,
        callback_url: str,
        scope: str = "snsapi_base",
        wait_step: float = 0.05,
        wait_max: float = 5.0,
        record_ttl: timedelta = RECORD_TTL,
        repeat_window: timedelta = REPEAT_WINDOW,
        quota: SourceQuota | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.client = client
        self.callback_url = callback_url
        self.scope = scope
        self.wait_step = wait_step
        self.wait_max = wait_max
        self.record_ttl = record_ttl
        self.repeat_window = repeat_window
        self.quota = quota
        self.now = now

    def begin(self) -> tuple[str, str]:
        """A fresh state and the authorize URL carrying it."""
        state = new_state()
        return self.client.authorize_url(self.callback_url, scope=self.scope, state=state), state

    async def finish(self, code: str | None, state: str | None, expected_state: str | None, source: str = "") -> str:
        """Check the state, trade the code (once, for this browser), return the openid.

        ``source`` is the client IP, counted by the sign-in quota."""
        if not expected_state or not _STATE.fullmatch(expected_state):
            raise Forbidden("oauth_state_missing", "The sign-in session expired; open the payment link again")
        if not state or not hmac.compare_digest(state.encode(), expected_state.encode()):
            raise Forbidden("oauth_state_mismatch", "The sign-in response does not belong to this browser; open the payment link again")
        if not code:
            raise Forbidden("oauth_denied", "WeChat sign-in was refused; open the payment link again to retry")
        if len(code) > 512:
            raise InvalidInput("oauth_code_invalid", "The sign-in code is malformed")
        key, tag = _digest(code), _digest(expected_state)
        with store_guard():
            known = await self.store.get(OAUTH_CODES, key)
        if known is not None:  # a repeat (or a replay): never counted, never sent to WeChat
            return await self._repeat(key, tag)
        with store_guard():
            used = await self.store.get(OAUTH_CODES, STATE_PREFIX + tag)
        if used is not None and used.get("code") != key:
            raise Forbidden("oauth_state_used", STATE_USED)
        if self.quota is not None:
            retry_after = await self.quota.refusal(source)
            if retry_after is not None:
                raise RateLimited(
                    "too_many_sign_ins",
                    "Too many WeChat sign-ins from this network; please wait a few minutes and try again",
                    retry_after_s=retry_after,
                )
        now = self.now()
        expires = now + self.record_ttl
        try:
            with store_guard():
                await self.store.insert(OAUTH_CODES, {"_id": STATE_PREFIX + tag, "code": key, "at": now, "expires_at": expires})
        except DuplicateKey:
            with store_guard():
                claimed = await self.store.get(OAUTH_CODES, STATE_PREFIX + tag)
            if claimed is None or claimed.get("code") != key:
                raise Forbidden("oauth_state_used", STATE_USED) from None
            return await self._repeat(key, tag)  # the same code twice at once: the other request trades it
        claim = {"_id": key, "status": "pending", "state": tag, "at": now, "expires_at": expires}
        try:
            with store_guard():
                await self.store.insert(OAUTH_CODES, claim)
        except DuplicateKey:
            return await self._repeat(key, tag)
        await self._prune_quietly()  # after the claim: an expired record of this code refuses it first
        try:
            token = await self.client.exchange_code(code)
        except WxPayError as exc:
            with store_guard():
                await self.store.update_if(OAUTH_CODES, key, {"status": "pending"}, {"status": "failed", "error": exc.code})
            if isinstance(exc, OAuthCodeError):
                raise Forbidden(exc.code, "The WeChat sign-in code is no longer valid; open the payment link again") from exc
            raise UpstreamError(exc.code, f"WeChat sign-in failed: {exc.message}") from exc
        with store_guard():
            await self.store.update_if(
                OAUTH_CODES, key, {"status": "pending"},
                {"status": "done", "openid": token.openid, "done_at": self.now()},
            )
        return token.openid

    async def _repeat(self, key: str, tag: str) -> str:
        """The same code again: the result only for the same browser, only briefly."""
        waited = 0.0
        while True:
            with store_guard():
                doc = await self.store.get(OAUTH_CODES, key)
            now = self.now()
            if doc and not hmac.compare_digest(str(doc.get("state", "")), tag):
                raise Forbidden(
                    "oauth_code_replayed",
                    "This WeChat sign-in was started by another browser; open the payment link again",
                )
            if doc and doc.get("expires_at") and doc["expires_at"] > now:
                if doc.get("status") == "done" and now <= doc["done_at"] + self.repeat_window:
                    return doc["openid"]
                if doc.get("status") == "pending" and waited < self.wait_max:
                    await asyncio.sleep(self.wait_step)
                    waited += self.wait_step
                    continue
            raise Forbidden("oauth_code_used", "This sign-in was already completed; open the payment link again")

    async def prune(self, limit: int = PRUNE_BATCH) -> int:
        """Delete up to ``limit`` expired claims; returns how many went."""
        now = self.now()
        expired = {"expires_at": {"$lte": now}}
        docs = await self.store.find(OAUTH_CODES, expired, sort=[("expires_at", 1)], limit=limit)
        gone = 0
        for doc in docs:
            gone += bool(await self.store.delete_if(OAUTH_CODES, doc["_id"], expired))
        return gone

    async def _prune_quietly(self) -> None:
        """A failure to prune never stops a sign-in (the next one tries again)."""
        try:
            await self.prune()
        except StoreError as exc:
            log.warning("could not prune expired OAuth claims: %s", exc)
