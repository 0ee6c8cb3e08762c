"""Admin authentication: HTTP Basic against ``admin.username``/``admin.password``.

Deny by default: no configured password means nobody gets in. Credentials
are compared in constant time. A wrong password is logged (user name and
source, never the password) and answered only after a delay that doubles
with each recent failure from the same source, so guessing is slow; the
table of sources is bounded, so a flood of addresses cannot grow it.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time
from collections import OrderedDict
from typing import Any, Callable

from service.errors import Unauthorized

from .base import PageHandler

log = logging.getLogger("wxpay_server.admin")

REALM = 'Basic realm="wxpay-server admin", charset="UTF-8"'


class LoginThrottle:
    """Per-source failure counts with a growing delay; bounded memory."""

    def __init__(
        self,
        *,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
        forget_after: float = 900.0,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_sources = max_sources
        self.clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # oldest update first

    def __len__(self) -> int:
        return len(self._failures)

    def failures(self, source: str) -> int:
        self._forget_old()
        entry = self._failures.get(source)
        return entry[0] if entry else 0

    def failed(self, source: str) -> float:
        """Count a failure from ``source``; returns how long to hold the reply."""
        self._forget_old()
        count = self._failures.pop(source, (0, 0.0))[0] + 1
        self._failures[source] = (count, self.clock())
        while len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)
        return min(self.max_delay, self.base_delay * 2 ** (count - 1))

    def succeeded(self, source: str) -> None:
        self._failures.pop(source, None)

    def _forget_old(self) -> None:
        horizon = self.clock() - self.forget_after
        while self._failures:
            source, (_count, at) = next(iter(self._failures.items()))
            if at > horizon:
                break
            del self._failures[source]


def parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def credentials_match(given: tuple[str, str] | None, username: str, password: str | None) -> bool:
    """Constant-time on both parts; never true when no password is configured."""
    if not password or given is None:
        return False
    user_ok = hmac.compare_digest(given[0].encode(), username.encode())
    pass_ok = hmac.compare_digest(given[1].encode(), password.encode())
    return user_ok & pass_ok


class AdminHandler(PageHandler):
    """Base for every admin view: nothing runs before the credentials are checked."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Robots-Tag", "noindex")

    async def prepare(self) -> None:
        admin = self.app_settings.admin
        source = self.client_ip()
        header = self.request.headers.get("Authorization", "")
        given = parse_basic(header)
        throttle: LoginThrottle = self.settings["admin_throttle"]
        if credentials_match(given, admin.username, admin.password):
            throttle.succeeded(source)
            return
        if header:
            if not admin.password:
                log.warning("admin login refused from %s: no admin.password is configured", source)
            else:
                user = given[0] if given else "(malformed header)"
                log.warning("admin login failed for user %r from %s", user[:64], source)
            await asyncio.sleep(throttle.failed(source))
        raise Unauthorized("admin_auth_required", "Admin credentials are required (HTTP Basic)")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, Unauthorized):
            self.set_header("WWW-Authenticate", REALM)  # send_error cleared the headers set before
        super().write_error(status_code, **kwargs)
