"""The crash battery's pause hook cannot exist outside sandbox mode."""
from __future__ import annotations

import logging

import pytest

from service import pauses


@pytest.fixture(autouse=True)
def clean():
    yield
    pauses.configure(None, sandbox=True)


def test_live_mode_refuses_any_pause():
    with pytest.raises(pauses.PausesRefused, match="live mode"):
        pauses.configure("notify.before_mark_paid=1", sandbox=False)
    assert pauses._pauses == {}


def test_live_mode_with_nothing_asked_is_fine():
    assert pauses.configure("", sandbox=False) == {}
    assert pauses.configure(None, sandbox=False) == {}


@pytest.mark.parametrize("spec", ["nowhere=1", "notify.before_mark_paid", "notify.before_mark_paid=soon"])
def test_malformed_specs_are_refused(spec):
    with pytest.raises(pauses.PausesRefused):
        pauses.configure(spec, sandbox=True)


async def test_pause_sleeps_only_where_asked(caplog):
    assert pauses.configure("orders.before_settle=0.01, webhooks.after_delivery=0", sandbox=True) == {
        "orders.before_settle": 0.01, "webhooks.after_delivery": 0.0,
    }
    with caplog.at_level(logging.DEBUG, logger="wxpay_server.pauses"):
        await pauses.pause("orders.before_settle")
        await pauses.pause("webhooks.after_delivery")
        await pauses.pause("notify.before_mark_paid")
    assert [r.getMessage() for r in caplog.records] == ["pause orders.before_settle begin", "pause orders.before_settle end"]
