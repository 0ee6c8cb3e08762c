"""The day's CSV: no cell a spreadsheet would run as a formula, one spelling for instants."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from handlers.console import cell, utc_text


@pytest.mark.parametrize("value,written", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("|calc", "'|calc"), ("%0A", "'%0A"), (" =1+2", "' =1+2"), ("   @x", "'   @x"), (" a=1", " a=1"), ("SO-1=2", "SO-1=2"), ("", ""), (None, ""), (1234, 1234), (True, "true"),
])
def test_csv_cells_never_start_a_formula(value, written):
    assert cell(value) == written


def test_instants_have_one_spelling():
    assert utc_text(datetime(2026, 3, 10, 8, 0, 0, tzinfo=timezone.utc)) == "2026-03-10T08:00:00.000Z"
    assert utc_text(datetime(2026, 3, 10, 8, 0, 0, 829999, tzinfo=timezone.utc)) == "2026-03-10T08:00:00.829Z"
