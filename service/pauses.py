"""Test-only pauses at named points, to widen the windows a crash test aims at.

``server.py`` reads ``$WXPAY_TEST_PAUSES`` (``name=seconds,name=seconds``)
and calls :func:`configure` with whether the process runs in sandbox mode.
In live mode a non-empty value refuses to start, and nothing else can
switch a pause on, so :func:`pause` is then a dictionary lookup that finds
nothing. Points: ``prepay.before_unifiedorder``, ``prepay.after_unifiedorder``,
``notify.before_mark_paid``, ``orders.before_settle``, ``webhooks.after_delivery``.
"""
from __future__ import annotations

import asyncio
import logging

POINTS = frozenset({
    "prepay.before_unifiedorder",
    "prepay.after_unifiedorder",
    "notify.before_mark_paid",
    "orders.before_settle",
    "webhooks.after_delivery",
})

log = logging.getLogger("wxpay_server.pauses")

_pauses: dict[str, float] = {}


class PausesRefused(ValueError):
    """Test pauses asked for where they must not exist (live mode) or malformed."""


def configure(spec: str | None, *, sandbox: bool) -> dict[str, float]:
    """Install the pauses ``spec`` names; refuse any outside sandbox mode."""
    _pauses.clear()
    if not spec or not spec.strip():
        return {}
    if not sandbox:
        raise PausesRefused("WXPAY_TEST_PAUSES is a test hook and is refused in live mode; unset it")
    parsed: dict[str, float] = {}
    for item in spec.split(","):
        name, sep, seconds = item.strip().partition("=")
        if not sep or name not in POINTS:
            raise PausesRefused(f"WXPAY_TEST_PAUSES: unknown point {name!r} (known: {', '.join(sorted(POINTS))})")
        try:
            parsed[name] = max(0.0, min(float(seconds), 60.0))
        except ValueError:
            raise PausesRefused(f"WXPAY_TEST_PAUSES: {name} needs seconds, got {seconds!r}") from None
    _pauses.update(parsed)
    return dict(parsed)


async def pause(name: str) -> None:
    seconds = _pauses.get(name)
    if seconds:
        # The crash battery reads these lines to tell which window a kill hit.
        log.debug("pause %s begin", name)
        await asyncio.sleep(seconds)
        log.debug("pause %s end", name)
