"""China time on the wire, aware UTC in Python.

APIv2 writes every time as China Standard Time without a zone
(``yyyyMMddHHmmss``, or ``yyyy-MM-dd HH:mm:ss`` for refund success times).
China has had no daylight saving since 1991, so a fixed +08:00 offset is
exact and needs no tz database. APIv3 writes RFC 3339 with the offset
(``2026-01-01T12:00:00+08:00``): :func:`parse_rfc3339`, :func:`rfc3339_time`.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import ProtocolError

CHINA_TZ = timezone(timedelta(hours=8), "CST")

_WIRE = re.compile(r"[0-9]{14}")
# Bills and refunds use "yyyy-MM-dd HH:mm:ss"; WeChat's own bill examples
# sometimes show full-width colons, which cost nothing to accept.
_DASHED = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ \t]*([0-9]{2})[:：]([0-9]{2})[:：]([0-9]{2})")


def _require_aware(dt: datetime) -> None:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime (UTC preferred)")


def wire_time(dt: datetime) -> str:
    """An aware datetime as WeChat's ``yyyyMMddHHmmss`` China time."""
    _require_aware(dt)
    t = dt.astimezone(CHINA_TZ)
    if t.year < 1000:  # strftime does not pad years before 1000; keep what it wrote
        return t.strftime("%Y%m%d%H%M%S")
    # An f-string, not strftime (which builds a time tuple): every signed
    # request, notify and simulator reply carries a wire time.
    return f"{t.year}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"


def _build(parts: tuple[str, ...], text: str) -> datetime:
    try:
        local = datetime(*(int(p) for p in parts), tzinfo=CHINA_TZ)
        return local.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # no such date, or year 1 moved before year 1
        raise ProtocolError(f"Invalid China time {text!r}") from None


_UTC = timezone.utc
_CHINA_OFFSET = CHINA_TZ.utcoffset(None)


def parse_wire_time(text: str) -> datetime:
    """``yyyyMMddHHmmss`` China time → aware UTC datetime.

    Every notify and reply carries one, so the fixed-width fields are sliced
    straight into the constructor, and UTC is China time less eight hours.
    """
    if not isinstance(text, str) or not _WIRE.fullmatch(text):
        raise ProtocolError(f"Expected yyyyMMddHHmmss China time, got {text!r}")
    try:
        return datetime(
            int(text[0:4]), int(text[4:6]), int(text[6:8]),
            int(text[8:10]), int(text[10:12]), int(text[12:14]), 0, _UTC,
        ) - _CHINA_OFFSET
    except (ValueError, OverflowError):  # no such date, or year 1 moved before year 1
        raise ProtocolError(f"Invalid China time {text!r}") from None


def parse_success_time(text: str) -> datetime:
    """``yyyy-MM-dd HH:mm:ss`` China time (refund success, bills) → aware UTC."""
    match = _DASHED.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ProtocolError(f"Expected 'yyyy-MM-dd HH:mm:ss' China time, got {text!r}")
    return _build(match.groups(), text)


# --- APIv3: RFC 3339 with an offset ------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


# ASCII digits, 'T', whole seconds, 'Z' or an offset: what datetime.fromisoformat reads the same way.
_RFC3339_PLAIN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})", re.ASCII)

# Offset spelling -> its timedelta (WeChat writes one, +08:00; at most 2 x 24 x 60 spellings exist).
_OFFSETS: dict[str, timedelta] = {"Z": timedelta(0), "z": timedelta(0)}


def _offset(text: str) -> timedelta:
    delta = _OFFSETS.get(text)
    if delta is None:
        hours, minutes = int(text[1:3]), int(text[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(text)
        delta = timedelta(hours=hours, minutes=minutes)
        if text[0] == "-":
            delta = -delta
        _OFFSETS[text] = delta
    return delta


def parse_rfc3339(text: str) -> datetime:
    """An APIv3 time (``2026-01-01T12:00:00+08:00``; any offset, ``Z``, fractions) → aware UTC.

    A time without an offset is refused: V3 always writes one, and guessing
    the zone is how eight-hour errors are made.
    """
    if type(text) is str and _RFC3339_PLAIN.fullmatch(text) and text[19:] in _OFFSETS:
        # The usual spelling (no fraction, an offset already checked): C does the arithmetic.
        try:
            return datetime.fromisoformat(text).astimezone(_UTC)
        except (ValueError, OverflowError):
            pass  # the exact path below names the problem
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if match is None:
        raise ProtocolError(f"Expected an RFC 3339 time with offset (2026-01-01T12:00:00+08:00), got {str(text)[:40]!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        micro = int(fraction[:6].ljust(6, "0")) if fraction else 0
        # The wall time checked as a date, then moved to UTC by the offset (as parse_wire_time does).
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, _UTC) \
            - _offset(offset)
    except (ValueError, OverflowError):  # no such date or offset, or out of range once in UTC
        raise ProtocolError(f"Invalid RFC 3339 time {text!r}") from None


def rfc3339_time(dt: datetime) -> str:
    """An aware datetime as APIv3 writes it: China time, seconds, ``+08:00``."""
    _require_aware(dt)
    return dt.astimezone(CHINA_TZ).isoformat(timespec="seconds")  # CHINA_TZ is fixed: always +08:00
