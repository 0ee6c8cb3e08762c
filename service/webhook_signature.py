"""Signing merchant webhooks, and the verification a receiver runs.

The ``Wxpay-Signature`` header is ``t=<unix seconds>,v1=<hex>`` where the hex
is HMAC-SHA256 over ``f"{t}.{body}"`` with ``webhooks.secret``. The
timestamp is signed too, so an old delivery cannot be replayed with a fresh
one; the receiver refuses timestamps outside a tolerance window.

:func:`verify_webhook` is, line for line, the snippet in the README's
"Webhooks" section (a test runs both against the same forgeries). It uses
the standard library only, so a merchant can copy it as is.
"""
from __future__ import annotations

import hashlib
import hmac
import time


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for one delivery attempt."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# --- the documented snippet (keep identical to README.md "Webhooks") -------------
class WebhookVerificationError(Exception):
    pass


def verify_webhook(secret: str, header: str, body: bytes, now: float | None = None, tolerance: int = 300) -> int:
    """Check a Wxpay-Signature header against the raw body; returns its timestamp."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        if not (parts["t"].isascii() and parts["t"].isdigit()):  # int() also takes " 1", "١"
            raise ValueError(parts["t"])
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise WebhookVerificationError("malformed signature header") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise WebhookVerificationError("timestamp outside the tolerance window (replay?)")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise WebhookVerificationError("signature mismatch")
    return timestamp
# --- end of the documented snippet ---------------------------------------------------
