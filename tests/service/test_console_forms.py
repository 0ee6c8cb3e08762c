"""What an operator types into the console, read exactly: yuan to fen, a China day, a form's key."""
from __future__ import annotations

from datetime import date

import pytest

from service.console import check_action_key, parse_day, parse_yuan
from service.errors import InvalidInput


@pytest.mark.parametrize("typed,fen", [
    ("12", 1200), ("12.5", 1250), ("12.50", 1250), ("0.01", 1), (" 7.3 ", 730), ("¥1,234.56", 123456),
    ("999999999.99", 99999999999), ("1,000", 100000), ("12,345,678.9", 1234567890),
])
def test_yuan_become_exact_fen(typed, fen):
    assert parse_yuan(typed) == fen


@pytest.mark.parametrize("typed", [
    "", " ", "0", "0.00", "-1", "+1", "1.", ".5", "1.234", "1e3", "NaN", "inf", "１２", "١٢", "12 34", "1_000",
    "1000000000", None, 12, ["1"],
])
def test_anything_else_is_refused(typed):
    with pytest.raises(InvalidInput) as caught:
        parse_yuan(typed)
    assert caught.value.code == "invalid_amount"


@pytest.mark.parametrize("typed", ["1,50", "12,3", "1,00", "1,0000", ",100", "100,", "1,,000", "1,000,00", "1.000,50"])
def test_a_comma_that_is_not_a_thousands_separator_is_refused_not_dropped(typed):
    """Dropping every comma read "1,50" (one yuan fifty, to a European hand) as ¥150."""
    with pytest.raises(InvalidInput) as caught:
        parse_yuan(typed)
    assert caught.value.code == "invalid_amount" and "comma" in caught.value.message


def test_a_day_is_a_calendar_date_up_to_tomorrow():
    today = date(2026, 11, 29)
    assert parse_day("", today=today) == today and parse_day(None, today=today) == today
    assert parse_day("2026-11-30", today=today) == date(2026, 11, 30)
    assert parse_day("2000-01-01", today=today) == date(2000, 1, 1)
    for text in ("2026-12-01", "1999-12-31", "2026-02-30", "2026-1-1", "20261129", "２０２６-11-29", "today", 5):
        with pytest.raises(InvalidInput) as caught:
            parse_day(text, today=today)
        assert caught.value.code == "invalid_day", text


def test_action_keys():
    assert check_action_key("a" * 20) == "a" * 20
    for key in (None, "", "a" * 19, "a" * 65, "a" * 30 + "\n", "a" * 30 + " ", "ａ" * 30):
        with pytest.raises(InvalidInput):
            check_action_key(key)
