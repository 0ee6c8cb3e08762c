"""Silent OAuth for shoppers: state bound to the browser, each code traded once.

A WeChat code is single-use: a second exchange (a refresh of the callback
page, a double tap) earns 40163. So the first exchange is claimed in the
store and its result kept briefly; repeats read the result instead of
calling WeChat again.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Any, Callable

from store.base import DuplicateKey, Store
from wxpay.errors import OAuthCodeError, WxPayError

from .clock import utcnow
from .errors import Forbidden, InvalidInput, UpstreamError
from .guard import store_guard
from .models import OAUTH_CODES

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
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.client = client
        self.callback_url = callback_url
        self.scope = scope
        self.wait_step = wait_step
        self.wait_max = wait_max
        self.now = now

    def begin(self) -> tuple[str, str]:
        """A fresh state and the authorize URL carrying it."""
        state = new_state()
        return self.client.authorize_url(self.callback_url, scope=self.scope, state=state), state

    async def finish(self, code: str | None, state: str | None, expected_state: str | None) -> str:
        """Check the state, trade the code (once), return the openid."""
        if not expected_state or not _STATE.fullmatch(expected_state):
            raise Forbidden("oauth_state_missing", "The sign-in session expired; open the payment link again")
        if not state or not hmac.compare_digest(state.encode(), expected_state.encode()):
            raise Forbidden("oauth_state_mismatch", "The sign-in response does not belong to this browser; open the payment link again")
        if not code:
            raise Forbidden("oauth_denied", "WeChat sign-in was refused; open the payment link again to retry")
        if len(code) > 512:
            raise InvalidInput("oauth_code_invalid", "The sign-in code is malformed")
        key = hashlib.sha256(code.encode()).hexdigest()[:40]
        try:
            with store_guard():
                await self.store.insert(OAUTH_CODES, {"_id": key, "status": "pending", "at": self.now()})
        except DuplicateKey:
            return await self._await_first(key)
        try:
            token = await self.client.exchange_code(code)
        except WxPayError as exc:
            with store_guard():
                await self.store.update_if(OAUTH_CODES, key, {"status": "pending"}, {"status": "failed", "error": exc.code})
            if isinstance(exc, OAuthCodeError):
                raise Forbidden(exc.code, "The WeChat sign-in code is no longer valid; open the payment link again") from exc
            raise UpstreamError(exc.code, f"WeChat sign-in failed: {exc.message}") from exc
        with store_guard():
            await self.store.update_if(OAUTH_CODES, key, {"status": "pending"}, {"status": "done", "openid": token.openid})
        return token.openid

    async def _await_first(self, key: str) -> str:
        waited = 0.0
        while True:
            with store_guard():
                doc = await self.store.get(OAUTH_CODES, key)
            if doc and doc.get("status") == "done":
                return doc["openid"]
            if not doc or doc.get("status") == "failed" or waited >= self.wait_max:
                raise Forbidden("oauth_code_used", "This sign-in was already completed; open the payment link again")
            await asyncio.sleep(self.wait_step)
            waited += self.wait_step
