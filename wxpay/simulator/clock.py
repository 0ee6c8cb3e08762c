"""Time for the simulator, injectable so tests can jump past 2 h or 7200 s."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


class Clock:
    """Wall-clock UTC time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **kw: float) -> datetime:
        self._now += timedelta(seconds=seconds, **kw)
        return self._now
