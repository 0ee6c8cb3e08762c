"""China time on the wire, aware UTC in Python.

WeChat writes every time as China Standard Time without a zone
(``yyyyMMddHHmmss``, or ``yyyy-MM-dd HH:mm:ss`` for refund success times).
China has had no daylight saving since 1991, so a fixed +08:00 offset is
exact and needs no tz database.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import ProtocolError

CHINA_TZ = timezone(timedelta(hours=8), "CST")

_WIRE = re.compile(r"^\d{14}$")
# Bills and refunds use "yyyy-MM-dd HH:mm:ss"; WeChat's own bill examples
# sometimes show full-width colons, which cost nothing to accept.
_DASHED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})\s*(\d{2})[:：](\d{2})[:：](\d{2})$")


def _require_aware(dt: datetime) -> None:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime (UTC preferred)")


def wire_time(dt: datetime) -> str:
    """An aware datetime as WeChat's ``yyyyMMddHHmmss`` China time."""
    _require_aware(dt)
    return dt.astimezone(CHINA_TZ).strftime("%Y%m%d%H%M%S")


def _build(parts: tuple[str, ...], text: str) -> datetime:
    try:
        local = datetime(*(int(p) for p in parts), tzinfo=CHINA_TZ)
    except ValueError:
        raise ProtocolError(f"Invalid China time {text!r}") from None
    return local.astimezone(timezone.utc)


def parse_wire_time(text: str) -> datetime:
    """``yyyyMMddHHmmss`` China time → aware UTC datetime."""
    if not isinstance(text, str) or not _WIRE.match(text):
        raise ProtocolError(f"Expected yyyyMMddHHmmss China time, got {text!r}")
    parts = (text[0:4], text[4:6], text[6:8], text[8:10], text[10:12], text[12:14])
    return _build(parts, text)


def parse_success_time(text: str) -> datetime:
    """``yyyy-MM-dd HH:mm:ss`` China time (refund success, bills) → aware UTC."""
    match = _DASHED.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ProtocolError(f"Expected 'yyyy-MM-dd HH:mm:ss' China time, got {text!r}")
    return _build(match.groups(), text)
