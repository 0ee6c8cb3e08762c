"""The reconciler's check of one order, and what it leaves for the next pass.

A real server in sandbox mode, the simulated WeChat over HTTP, a real
SQLite file. What is pinned here (the mutation run's survivors): an order
WeChat never heard of is asked again later, less often, and only given up
once WeChat's five minutes are over; an unpaid order is asked again on the
backoff schedule; a payment that another path recorded first is not an error.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from dataclasses import replace

from service.order_checks import CLOSE_MIN_AGE, OrderChecks, RunReport
from service.orders import backoff
from service.payments import CONFIRMED, RECONCILER, Payments

from tests.battery.harness import Client, start_server


async def _unknown_at_wechat(client: Client, amount: int):
    """A checkout whose unifiedorder never reached WeChat: our order stays ``created``."""
    checkout = await client.checkout(amount)
    await client.fault(endpoint="pay/unifiedorder", kind="http500", count=None)
    desktop = client.merchant
    await desktop.get(f"/pay/{checkout['id']}")
    r = await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    assert r.code == 502, r.body
    await client.clear_faults("pay/unifiedorder")
    services = client.running.services
    (order,) = await services.orders.for_checkout(checkout["id"])
    assert order.state == "created"
    return order


async def test_an_order_wechat_never_heard_of_is_asked_again_then_given_up(tmp_path):
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        order = await _unknown_at_wechat(client, 3100)
        before = services.now()
        report = RunReport(started_at=before)
        await services.order_checks.check(order, report)
        young = await services.orders.require(order.out_trade_no)
        assert young.state == "created" and young.checks == order.checks + 1
        assert before + backoff(order.checks) <= young.next_check_at <= services.now() + backoff(order.checks)
        assert (report.failed, report.errors) == (0, 0)
        # Past WeChat's five minutes no shopper can pay it: failed, and never asked again.
        old = services.now() - timedelta(minutes=6)
        await services.store.update_if("orders", order.out_trade_no, {"state": "created"}, {"created_at": old})
        stale = await services.orders.require(order.out_trade_no)
        report = RunReport(started_at=services.now())
        await services.order_checks.check(stale, report)
        given_up = await services.orders.require(order.out_trade_no)
        assert (given_up.state, given_up.failure, given_up.next_check_at) == ("failed", "order_not_exist", None)
        assert report.failed == 1
    finally:
        await running.stop(grace=1)


async def test_an_unpaid_order_is_asked_again_on_the_backoff_schedule(tmp_path):
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout = await client.checkout(3200)
        _desktop, result = await client.native_prepay(checkout["id"])
        order = await services.orders.require(result["out_trade_no"])
        for n in range(3):
            before = services.now()
            report = RunReport(started_at=before)
            await services.order_checks.check(order, report)
            order = await services.orders.require(result["out_trade_no"])
            assert order.state == "prepaid" and order.checks == n + 1
            assert before + backoff(n) <= order.next_check_at <= services.now() + backoff(n)
            assert (report.closed, report.failed, report.errors) == (0, 0, 0)
    finally:
        await running.stop(grace=1)


async def test_a_payment_recorded_first_by_the_notify_is_no_error_for_the_reconciler(tmp_path):
    """The reconciler read the order before the notify paid it: its check finds it paid, and says nothing."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        _checkout, paid = await client.paid_at_wechat_only(3300)
        read_before = await services.orders.require(paid["out_trade_no"])
        assert (await client.notify(client.signed_notify(paid["sim"]))).code == 200
        report = RunReport(started_at=services.now())
        await services.order_checks.check(read_before, report)
        assert (report.paid, report.errors, report.notes) == (0, 0, [])
        assert [a["verdict"] for a in await services.audit.latest("reconciler")] == []
    finally:
        await running.stop(grace=1)


async def test_a_payment_the_reconciler_confirms_is_recorded_with_wechat_s_transaction(tmp_path):
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(3400)
        report = RunReport(started_at=services.now())
        await services.order_checks.check(await services.orders.require(paid["out_trade_no"]), report)
        order = await services.orders.require(paid["out_trade_no"])
        assert (order.state, order.transaction_id, order.paid_via) == (
            "paid", paid["sim"]["order"]["transaction_id"], "reconciler")
        assert report.paid == 1
        assert [a["verdict"] for a in await services.audit.latest("reconciler")] == ["paid"]
        settled = await services.checkouts.get(checkout["id"])
        assert settled.status == "paid" and settled.paid_at == order.paid_at  # one moment, the order's
    finally:
        await running.stop(grace=1)


@pytest.mark.parametrize("wechat_state", ["PAYERROR", "REVOKED"])
async def test_a_payment_that_failed_or_was_revoked_at_wechat_fails_here(tmp_path, wechat_state):
    """The simulator's shopper never ends in these states (a real bank can): its record is set to one."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout = await client.checkout(3500)
        _desktop, result = await client.native_prepay(checkout["id"])
        order = await services.orders.require(result["out_trade_no"])
        running.simulator.pay.orders[(order.mch_id, order.out_trade_no)].trade_state = wechat_state
        report = RunReport(started_at=services.now())
        await services.order_checks.check(order, report)
        order = await services.orders.require(result["out_trade_no"])
        assert (order.state, order.failure, report.failed) == ("failed", wechat_state.lower(), 1)
    finally:
        await running.stop(grace=1)


async def test_an_order_whose_prepay_id_expired_is_closed(tmp_path):
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout = await client.checkout(3600)
        _desktop, result = await client.native_prepay(checkout["id"])
        otn = result["out_trade_no"]
        order = await services.orders.require(otn)
        old = services.now() - timedelta(hours=3)
        running.simulator.pay.orders[(order.mch_id, otn)].created_at = old
        await services.store.update_if("orders", otn, {"state": "prepaid"},
                                       {"created_at": old, "prepay_expires_at": services.now() - timedelta(hours=1)})
        assert services.order_checks.should_close(await services.orders.require(otn))
        report = RunReport(started_at=services.now())
        await services.order_checks.check(await services.orders.require(otn), report)
        assert (await services.orders.require(otn)).state == "closed" and report.closed == 1
    finally:
        await running.stop(grace=1)


async def test_an_order_wechat_closed_is_closed_here(tmp_path):
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout = await client.checkout(3700)
        _desktop, result = await client.native_prepay(checkout["id"])
        order = await services.orders.require(result["out_trade_no"])
        running.simulator.pay.orders[(order.mch_id, order.out_trade_no)].trade_state = "CLOSED"
        report = RunReport(started_at=services.now())
        await services.order_checks.check(order, report)
        assert (await services.orders.require(order.out_trade_no)).state == "closed" and report.closed == 1
    finally:
        await running.stop(grace=1)


async def test_the_boundaries_of_giving_up_are_wechat_s_five_minutes_and_the_prepay_id_s_expiry(tmp_path):
    """Exactly at five minutes an order WeChat never heard of is still asked again (not yet past);
    a prepay_id expiring exactly now is expired."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        order = await _unknown_at_wechat(client, 3800)
        at_five = order.created_at + CLOSE_MIN_AGE
        checks = OrderChecks(services.gateway, services.payments, services.lifecycle, services.audit,
                             now=lambda: at_five)
        report = RunReport(started_at=at_five)
        await checks.check(order, report)
        assert (await services.orders.require(order.out_trade_no)).state == "created" and report.failed == 0
        # WeChat's five minutes, written out (not our constant): one microsecond past them it is given up.
        past_five = order.created_at + timedelta(minutes=5, microseconds=1)
        late = OrderChecks(services.gateway, services.payments, services.lifecycle, services.audit,
                           now=lambda: past_five)
        await late.check(await services.orders.require(order.out_trade_no), report)
        assert (await services.orders.require(order.out_trade_no)).state == "failed" and report.failed == 1
        expiring = replace(order, state="prepaid", prepay_expires_at=at_five, close_requested=False)
        assert checks.should_close(expiring)
        assert not checks.should_close(replace(expiring, prepay_expires_at=at_five + timedelta(microseconds=1)))
    finally:
        await running.stop(grace=1)


async def test_a_checkout_is_paid_at_the_moment_its_order_was(tmp_path):
    """With a clock that moves on at every reading, the checkout's paid time is still the order's."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(3900)
        ticks = iter(range(1, 1000))
        start = services.now()

        def clock():
            return start + timedelta(seconds=next(ticks))

        payments = Payments(services.gateway, services.orders, services.lifecycle, services.outbox, services.audit,
                            double_payments=services.refunds, now=clock)
        confirmation = await payments.confirm(await services.orders.require(paid["out_trade_no"]), via=RECONCILER)
        assert confirmation.outcome == CONFIRMED
        order = await services.orders.require(paid["out_trade_no"])
        assert (await services.checkouts.get(checkout["id"])).paid_at == order.paid_at
    finally:
        await running.stop(grace=1)


async def test_an_order_paid_in_the_instant_before_its_close_is_asked_about_again_at_once(tmp_path):
    """WeChat refuses the close because the shopper has just paid: the order stays open here and is
    due for its next check now, so the reconciler records the payment on its next look."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(3950)
        order = await services.orders.require(paid["out_trade_no"])
        later = order.created_at + timedelta(minutes=10)
        assert order.next_check_at != later
        checks = OrderChecks(services.gateway, services.payments, services.lifecycle, services.audit,
                             now=lambda: later)
        report = RunReport(started_at=later)
        await checks.close(order, report)
        after = await services.orders.require(order.out_trade_no)
        assert (after.state, after.next_check_at, report.closed) == (order.state, later, 0)
    finally:
        await running.stop(grace=1)
