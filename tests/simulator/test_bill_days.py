"""When the simulated WeChat serves a day's bill: WeChat's rule (from 09:00
China time the next day, for three months) unless the sandbox server asks
for the day's bill on the day (``SimConfig.bills_on_the_day``)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from wxpay.simulator.bill import BillUnavailable, check_ready
from wxpay.timeutil import CHINA_TZ

DAY = "20260315"
MIDNIGHT = datetime(2026, 3, 15, tzinfo=CHINA_TZ)


def message(now: datetime, **kw) -> str | None:
    try:
        check_ready(DAY, now, **kw)
    except BillUnavailable as exc:
        return exc.return_msg
    return None


def test_wechats_rule():
    assert message(MIDNIGHT + timedelta(hours=15)) == "No Bill Exist"  # the day itself
    assert message(MIDNIGHT + timedelta(days=1, hours=8)) == "Bill Creating"
    assert message(MIDNIGHT + timedelta(days=1, hours=9)) is None
    assert message(MIDNIGHT + timedelta(days=94)) == "No Bill Exist"


@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=15), timedelta(days=1, hours=8), timedelta(days=30)])
def test_on_the_day_from_its_start(later):
    assert message(MIDNIGHT + later, on_the_day=True) is None


def test_on_the_day_is_no_bill_before_the_day_or_after_three_months():
    assert message(MIDNIGHT - timedelta(seconds=1), on_the_day=True) == "No Bill Exist"
    assert message(MIDNIGHT + timedelta(days=93), on_the_day=True) == "No Bill Exist"


def test_the_sandbox_server_asks_for_it_and_the_standalone_simulator_does_not():
    from config import load_settings
    from wiring.sandbox import simulator_config, with_sandbox_defaults
    from wxpay.simulator.config import SimConfig

    settings = with_sandbox_defaults(load_settings(None, env={}), 8000)
    assert simulator_config(settings).bills_on_the_day is True
    assert SimConfig.demo().bills_on_the_day is False
