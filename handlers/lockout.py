"""Lockouts against guessing a password or a token: refuse, do not just delay.

A delay per reply does not stop a guesser who sends fifty requests at once:
each one is still evaluated. Here an attempt must be admitted *before* its
credentials are compared, and a source whose budget is spent is refused
(HTTP 429 with Retry-After) without any comparison at all.

Per source (the client's IPv4 address or IPv6 /64, ``edge.sources.source_of``;
X-Forwarded-For only from a trusted proxy):

- the first ``free`` failed attempts are answered normally; attempts in
  flight count against that budget, so N parallel requests get at most
  ``free`` evaluations;
- after that the source is locked for ``base_lock`` seconds, doubling with
  each further failure up to ``max_lock``; once a lock expires the source
  gets one attempt at a time;
- a success clears the source (unless ``clear_on_success`` is off: then a
  guesser sharing an address with a busy legitimate client gains nothing
  from its successes); a source quiet for ``forget_after`` is forgotten
  (never while locked: ``forget_after >= max_lock``).

Overall (when ``global_failures`` is set): at most ``global_failures``
failures per ``global_window`` seconds across all sources, against a guesser
with many addresses. Beyond it, sources without a recent success are refused
until the oldest failure leaves the window. A source that succeeded within
``trusted_for`` keeps access meanwhile (still under its own per-source
limit), and the overall lock always ends when the flood stops: nobody can
lock the real admin out for good.

Memory is bounded under a flood of addresses: at most ``max_sources``
sources (the least recently active forgotten first; the overall budget still
counts their failures), ``max_trusted`` recently successful sources, and the
last ``global_failures`` failure times. Counts live in this process: with
several processes each keeps its own.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class _Source:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0
    inflight: int = 0


@dataclass(frozen=True)
class Refusal:
    """Why an attempt was refused, and for how long (whole seconds, >= 1)."""

    retry_after: int
    overall: bool  # the budget across all sources, not this source's own


class Lockout:
    def __init__(
        self,
        *,
        free: int = 5,
        base_lock: float = 30.0,
        max_lock: float = 900.0,
        forget_after: float = 3600.0,
        global_failures: int | None = None,
        global_window: float = 600.0,
        trusted_for: float = 7 * 86400.0,
        max_sources: int = 10_000,
        max_trusted: int = 1_000,
        clear_on_success: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free < 1 or base_lock <= 0 or max_lock < base_lock or forget_after < max_lock:
            raise ValueError("need free >= 1, 0 < base_lock <= max_lock <= forget_after")
        self.free = free
        self.base_lock = base_lock
        self.max_lock = max_lock
        self.forget_after = forget_after
        self.global_failures = global_failures
        self.global_window = global_window
        self.trusted_for = trusted_for
        self.max_sources = max_sources
        self.max_trusted = max_trusted
        self.clear_on_success = clear_on_success
        self.clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()  # least recently active first
        self._trusted: OrderedDict[str, float] = OrderedDict()  # source -> last success
        self._recent: deque[float] = deque(maxlen=global_failures or 1)
        self._inflight = 0

    def __len__(self) -> int:
        return len(self._sources)

    @property
    def trusted_count(self) -> int:
        return len(self._trusted)

    def failures(self, source: str) -> int:
        self._forget_old(self.clock())
        entry = self._sources.get(source)
        return entry.failures if entry else 0

    def admit(self, source: str) -> Refusal | None:
        """Take an attempt slot for ``source``, or say why not. Every admitted
        attempt must end with :meth:`failed` or :meth:`succeeded`."""
        now = self.clock()
        self._forget_old(now)
        entry = self._sources.get(source)
        if entry is not None and entry.locked_until > now:
            return Refusal(_seconds(entry.locked_until - now), overall=False)
        if not self._is_trusted(source, now):
            until = self._overall_locked_until(now)
            if until is not None:
                return Refusal(_seconds(until - now), overall=True)
        if entry is None:
            entry = self._sources[source] = _Source(last=now)
            self._evict()
        slots = max(1, self.free - entry.failures)
        if entry.inflight >= slots:
            return Refusal(1, overall=False)
        entry.inflight += 1
        self._inflight += 1
        return None

    def failed(self, source: str) -> float:
        """Count a failure; returns the lock it starts (seconds), 0.0 if none."""
        now = self.clock()
        entry = self._release(source, now)
        entry.failures += 1
        entry.last = now
        self._recent.append(now)
        if entry.failures < self.free:
            return 0.0
        lock = min(self.max_lock, self.base_lock * 2 ** (entry.failures - self.free))
        entry.locked_until = now + lock
        return lock

    def succeeded(self, source: str) -> None:
        now = self.clock()
        entry = self._release(source, now)
        if self.clear_on_success or not entry.failures:
            self._sources.pop(source, None)
        if not self.global_failures:
            return  # nobody to exempt from an overall lock
        self._trusted.pop(source, None)
        self._trusted[source] = now
        while len(self._trusted) > self.max_trusted:
            self._trusted.popitem(last=False)

    def overall_locked(self) -> bool:
        return self._overall_locked_until(self.clock()) is not None

    # -- internals ---------------------------------------------------------------

    def _release(self, source: str, now: float) -> _Source:
        entry = self._sources.pop(source, None) or _Source()
        entry.inflight = max(0, entry.inflight - 1)
        self._inflight = max(0, self._inflight - 1)
        self._sources[source] = entry  # now the most recently active
        self._evict()
        return entry

    def _overall_locked_until(self, now: float) -> float | None:
        if not self.global_failures:
            return None
        horizon = now - self.global_window
        recent = sum(1 for t in self._recent if t > horizon)
        if recent + self._inflight < self.global_failures:
            return None
        # Unlocks when enough of the window's failures have aged out.
        spare = self.global_failures - self._inflight
        inside = [t for t in self._recent if t > horizon]
        oldest_needed = inside[len(inside) - spare] if 0 < spare <= len(inside) else now + 1 - self.global_window
        return oldest_needed + self.global_window

    def _is_trusted(self, source: str, now: float) -> bool:
        at = self._trusted.get(source)
        return at is not None and now - at < self.trusted_for

    def _evict(self) -> None:
        while len(self._sources) > self.max_sources:
            self._sources.popitem(last=False)

    def _forget_old(self, now: float) -> None:
        horizon = now - self.forget_after
        while self._sources:
            source, entry = next(iter(self._sources.items()))
            if entry.last > horizon or entry.inflight or entry.locked_until > now:
                break
            del self._sources[source]


def _seconds(delay: float) -> int:
    return max(1, int(delay + 0.999))


def admin_lockout(**overrides: Any) -> Lockout:
    """The admin login: 5 free failures per source, then 30 s doubling to 15
    minutes; at most 100 failures per 10 minutes overall, sources that signed
    in within 7 days exempt. Tests shorten it through ``overrides``."""
    policy: dict[str, Any] = {
        "free": 5, "base_lock": 30.0, "max_lock": 900.0, "forget_after": 3600.0,
        "global_failures": 100, "global_window": 600.0, "trusted_for": 7 * 86400.0,
    }
    return Lockout(**{**policy, **overrides})


def merchant_api_lockout(**overrides: Any) -> Lockout:
    """The merchant API's bearer token: 20 free failures per source, then 1 s
    doubling to 60 s; successes do not clear (a guesser behind the merchant's
    own NAT gains nothing). No overall budget: live tokens are 32+ random
    characters, so guessing them is hopeless, while an overall lock would let
    anyone stop the merchant's own backend. The point is to bound the cost of
    a flood of wrong tokens, not to protect a weak secret."""
    policy: dict[str, Any] = {
        "free": 20, "base_lock": 1.0, "max_lock": 60.0, "forget_after": 600.0, "clear_on_success": False,
    }
    return Lockout(**{**policy, **overrides})
