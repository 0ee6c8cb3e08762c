"""RFC 3339 on the V3 wire, aware UTC in Python."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wxpay.errors import ProtocolError
from wxpay.timeutil import parse_rfc3339, rfc3339_time

UTC = timezone.utc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-01-01T12:00:00+08:00", datetime(2026, 1, 1, 4, 0, tzinfo=UTC)),
        ("2026-01-01T04:00:00Z", datetime(2026, 1, 1, 4, 0, tzinfo=UTC)),
        ("2026-01-01t04:00:00z", datetime(2026, 1, 1, 4, 0, tzinfo=UTC)),
        ("2026-01-01T00:30:00-03:30", datetime(2026, 1, 1, 4, 0, tzinfo=UTC)),
        ("2026-01-01T12:00:00.5+08:00", datetime(2026, 1, 1, 4, 0, 0, 500000, tzinfo=UTC)),
        ("2026-01-01T12:00:00.123456789+08:00", datetime(2026, 1, 1, 4, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-01T07:59:59+08:00", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse(text, expected):
    got = parse_rfc3339(text)
    assert got == expected and got.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["2026-01-01T12:00:00", "2026-01-01 12:00:00+08:00", "20260101120000", "2026-02-30T12:00:00+08:00",
     "2026-01-01T24:00:00+08:00", "2026-01-01T12:00:00+24:00", "2026-01-01T12:00:00+08:60",
     "0001-01-01T00:00:00+08:00", "2026-01-01T12:00:00+0800", "", None, 1767240000, " 2026-01-01T12:00:00+08:00"],
)
def test_refuse(text):
    with pytest.raises(ProtocolError):
        parse_rfc3339(text)


def test_write_is_china_time_with_offset():
    assert rfc3339_time(datetime(2026, 1, 1, 4, 0, tzinfo=UTC)) == "2026-01-01T12:00:00+08:00"
    assert rfc3339_time(datetime(2025, 12, 31, 20, 0, 1, 999, tzinfo=UTC)) == "2026-01-01T04:00:01+08:00"
    with pytest.raises(ValueError):
        rfc3339_time(datetime(2026, 1, 1))


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_round_trip_to_the_second(dt):
    assert parse_rfc3339(rfc3339_time(dt)) == dt.replace(microsecond=0)
    assert parse_rfc3339(rfc3339_time(dt)) - dt.replace(microsecond=0) == timedelta(0)
