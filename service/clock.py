"""The service layer's notion of now: aware UTC, injectable for tests."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
