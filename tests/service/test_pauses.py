"""The crash battery's pause hook cannot exist outside sandbox mode."""
from __future__ import annotations

import asyncio
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


def test_gates_are_refused_outside_sandbox_mode():
    pauses.configure(None, sandbox=False)
    with pytest.raises(pauses.PausesRefused, match="sandbox"):
        pauses.gate("prepay.before_unifiedorder")
    pauses.configure(None, sandbox=True)
    with pytest.raises(pauses.PausesRefused, match="unknown"):
        pauses.gate("nowhere")


async def test_a_gate_holds_every_pass_until_released_and_a_live_configure_clears_it():
    pauses.configure(None, sandbox=True)
    held = pauses.gate("closing.after_list")
    first = asyncio.ensure_future(pauses.pause("closing.after_list"))
    await held.reached()
    second = asyncio.ensure_future(pauses.pause("closing.after_list"))
    await asyncio.sleep(0)
    assert not first.done() and not second.done() and held.passes == 2
    held.release()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    again = pauses.gate("closing.after_list")
    waiting = asyncio.ensure_future(pauses.pause("closing.after_list"))
    await again.reached()
    pauses.configure(None, sandbox=False)  # a live start opens and drops every gate
    await asyncio.wait_for(waiting, 5)
    assert pauses._gates == {}
