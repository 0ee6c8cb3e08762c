"""Test-only pauses at named points, to widen the windows a crash test aims at
and to hold an interleaving still while a race test plays the other side.

``server.py`` reads ``$WXPAY_TEST_PAUSES`` (``name=seconds,name=seconds``)
and calls :func:`configure` with whether the process runs in sandbox mode.
In-process tests may instead put a :class:`Gate` on a point: every pass
through it then waits until the test releases the gate (event-driven, so an
interleaving is exact rather than a matter of sleeps). In live mode a
non-empty value refuses to start, gates are refused and cleared, and nothing
else can switch a pause on, so :func:`pause` is then two dictionary lookups
that find nothing.

Points: ``prepay.after_checkout_check`` (the checkout was read as payable,
no order reserved yet), ``prepay.before_unifiedorder`` (the order is
stored, WeChat not asked yet), ``prepay.after_unifiedorder``,
``closing.after_list`` (a close has listed the checkout's orders),
``closing.before_final`` (its orders were checked, the checkout is not
closed yet), ``notify.before_mark_paid``, ``orders.before_settle``,
``reconciler.before_check`` (inside a pass, under its lease),
``webhooks.after_delivery``.
"""
from __future__ import annotations

import asyncio
import logging

POINTS = frozenset({
    "prepay.after_checkout_check",
    "prepay.before_unifiedorder",
    "prepay.after_unifiedorder",
    "closing.after_list",
    "closing.before_final",
    "notify.before_mark_paid",
    "orders.before_settle",
    "reconciler.before_check",
    "webhooks.after_delivery",
})

log = logging.getLogger("wxpay_server.pauses")

_pauses: dict[str, float] = {}
_gates: dict[str, "Gate"] = {}
_sandbox = False


class PausesRefused(ValueError):
    """Test pauses asked for where they must not exist (live mode) or malformed."""


class Gate:
    """Holds every pass through one point until :meth:`release` (then stays open)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.passes = 0
        self._reached = asyncio.Event()
        self._open = asyncio.Event()

    async def reached(self, timeout: float = 10.0) -> None:
        """Wait until something is held at this point (bounded)."""
        await asyncio.wait_for(self._reached.wait(), timeout)

    def release(self) -> None:
        self._open.set()

    async def _hold(self) -> None:
        self.passes += 1
        self._reached.set()
        await self._open.wait()


def configure(spec: str | None, *, sandbox: bool) -> dict[str, float]:
    """Install the pauses ``spec`` names; refuse any outside sandbox mode."""
    global _sandbox
    _pauses.clear()
    release_gates()
    _sandbox = sandbox
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


def gate(name: str) -> Gate:
    """Put a gate on ``name`` (in-process tests; only after a sandbox configure)."""
    if not _sandbox:
        raise PausesRefused("test gates exist only in sandbox mode")
    if name not in POINTS:
        raise PausesRefused(f"unknown pause point {name!r}")
    _gates[name] = Gate(name)
    return _gates[name]


def release_gates() -> None:
    """Open and remove every gate (a test's clean-up; also any configure)."""
    for g in _gates.values():
        g.release()
    _gates.clear()


async def pause(name: str) -> None:
    held = _gates.get(name)
    if held is not None:
        await held._hold()
    seconds = _pauses.get(name)
    if seconds:
        # The crash battery reads these lines to tell which window a kill hit.
        log.debug("pause %s begin", name)
        await asyncio.sleep(seconds)
        log.debug("pause %s end", name)
