"""China wire times ⇄ aware UTC datetimes (fixed +08:00, no DST since 1991)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from wxpay.errors import ProtocolError
from wxpay.timeutil import parse_success_time, parse_wire_time, wire_time


def test_wire_time_is_china_time():
    assert wire_time(datetime(2024, 12, 31, 16, 30, 5, tzinfo=timezone.utc)) == "20250101003005"
    new_york = timezone(timedelta(hours=-5))
    assert wire_time(datetime(2024, 3, 1, 7, 0, tzinfo=new_york)) == "20240301200000"


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        wire_time(datetime(2024, 3, 1, 9, 0))


def test_parse_round_trip_gives_aware_utc():
    parsed = parse_wire_time("20250101003005")
    assert parsed == datetime(2024, 12, 31, 16, 30, 5, tzinfo=timezone.utc)
    assert parsed.utcoffset() == timedelta(0)
    assert wire_time(parsed) == "20250101003005"


@pytest.mark.parametrize("text", ["2024030109300", "20241301093000", "2024-03-01 09:30:00", "", "20240230093000",
                                  "20140230000000", "20230229120000", "20240301240000", "20240301096000",
                                  "20240301093060", "00000101000000", "2014090313154x", "2014 903131540",
                                  "+2014090313154", "201409031315400", None, 20140903131540])
def test_bad_wire_times(text):
    with pytest.raises(ProtocolError):
        parse_wire_time(text)


def test_year_one_midnight_china_is_refused_not_an_overflow():
    """00010101000000 China time is before 0001-01-01 UTC, which datetime cannot hold."""
    with pytest.raises(ProtocolError, match="Invalid China time"):
        parse_wire_time("00010101000000")


@pytest.mark.parametrize("text,expected", [
    ("20240229235959", datetime(2024, 2, 29, 15, 59, 59, tzinfo=timezone.utc)),
    ("20250101000000", datetime(2024, 12, 31, 16, 0, tzinfo=timezone.utc)),
    ("99991231235959", datetime(9999, 12, 31, 15, 59, 59, tzinfo=timezone.utc)),
])
def test_wire_times_at_the_edges(text, expected):
    parsed = parse_wire_time(text)
    assert parsed == expected and parsed.tzinfo is timezone.utc


def test_success_time_formats():
    expected = datetime(2020, 1, 4, 10, 34, 24, tzinfo=timezone.utc)
    assert parse_success_time("2020-01-04 18:34:24") == expected
    assert parse_success_time("2020-01-04 18：34：24") == expected  # full-width colons in old bill samples
    with pytest.raises(ProtocolError):
        parse_success_time("20200104183424")


@pytest.mark.parametrize("dt", [
    datetime(999, 6, 1, 12, 0, tzinfo=timezone.utc),
    datetime(1000, 1, 1, 0, 0, 1, tzinfo=timezone.utc),
    datetime(2024, 2, 29, 16, 0, tzinfo=timezone.utc),
    datetime(9999, 12, 31, 15, 59, 59, tzinfo=timezone.utc),
    datetime(2024, 3, 1, 7, 5, 9, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
])
def test_wire_time_writes_what_strftime_writes(dt):
    assert wire_time(dt) == dt.astimezone(timezone(timedelta(hours=8))).strftime("%Y%m%d%H%M%S")
