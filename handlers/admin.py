"""Admin authentication: HTTP Basic against ``admin.username``/``admin.password``.

Deny by default: no configured password means nobody gets in. Credentials
are compared in constant time. A wrong password is logged (user name and
source, never the password).

Guessing is refused, not just slowed (handlers/lockout.py): each attempt is
admitted before its credentials are compared. Per source, 5 failures are
answered with 401; then the source is locked for 30 s, doubling with each
further failure up to 15 minutes, and every attempt meanwhile gets 429 with
Retry-After and no comparison, however many arrive in parallel. Across all
sources, at most 100 failures per 10 minutes; beyond that only sources that
signed in successfully in the last 7 days are admitted, until the window
slides. Every lock expires; a success clears its source. A request without
credentials is not an attempt: it gets the usual 401 challenge.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import logging
from typing import Any

from service.errors import RateLimited, Unauthorized

from .base import PageHandler
from .lockout import Lockout

log = logging.getLogger("wxpay_server.admin")

REALM = 'Basic realm="wxpay-server admin", charset="UTF-8"'


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

    admin_user = ""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Robots-Tag", "noindex")

    async def prepare(self) -> None:
        admin = self.app_settings.admin
        header = self.request.headers.get("Authorization", "")
        if not header:
            raise Unauthorized("admin_auth_required", "Admin credentials are required (HTTP Basic)")
        source = self.client_source()
        lockout: Lockout = self.settings["admin_lockout"]
        refusal = lockout.admit(source)
        if refusal is not None:
            raise RateLimited(
                "too_many_login_attempts",
                "Too many failed admin sign-ins" + (" overall" if refusal.overall else " from your address")
                + f"; try again in {refusal.retry_after} s",
                retry_after_s=refusal.retry_after,
            )
        given = parse_basic(header)
        if credentials_match(given, admin.username, admin.password):
            lockout.succeeded(source)
            self.admin_user = given[0] if given else ""  # who acts, for the console's audit records
            return
        overall_before = lockout.overall_locked()
        lock = lockout.failed(source)
        if not admin.password:
            log.warning("admin login refused from %s: no admin.password is configured", source)
        else:
            user = given[0] if given else "(malformed header)"
            log.warning("admin login failed for user %r from %s", user[:64], source)
        if lock:
            log.warning("admin login: %s locked for %.0f s after %d failures", source, lock, lockout.failures(source))
        if not overall_before and lockout.overall_locked():
            log.warning("admin login: too many failures across all sources; only sources that signed in recently "
                        "are admitted until the window slides")
        raise Unauthorized("admin_auth_required", "Admin credentials are required (HTTP Basic)")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, Unauthorized):
            self.set_header("WWW-Authenticate", REALM)  # send_error cleared the headers set before
        super().write_error(status_code, **kwargs)
