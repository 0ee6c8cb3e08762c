"""A settlement cut short, finished by whoever comes next; and what the notify records.

A real server in sandbox mode, the simulated WeChat over HTTP, a real
SQLite file, or MongoDB on the emulator where a store failure must be
made to happen at one exact write (no MongoDB server can run here).
Each test pins a survivor of the mutation run (docs/MUTATION.md).
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

from pymongo.errors import ServerSelectionTimeoutError

from service import pauses
from service.order_checks import CLOSE_MIN_AGE, OrderChecks, RunReport
from store.mongo import MongoStore
from wxpay.xmlcodec import parse_xml

from tests.battery.harness import Client, start_server
from tests.store.mongo_emulator import EmulatedMongoClient


def _lose_the_store_after(mongo: EmulatedMongoClient, writes: int) -> None:
    """The store answers ``writes`` conditional updates, then is unreachable for the rest of the request."""
    left = {"n": writes}

    def fault(operation: str) -> None:
        if operation == "find_one_and_update":
            left["n"] -= 1
            if left["n"] < 0:
                raise ServerSelectionTimeoutError("emulated: store lost mid-settlement")

    mongo.fault = fault


async def test_a_settlement_cut_after_the_checkout_s_move_is_finished_without_a_double_payment(tmp_path):
    """The order and its checkout moved, then the store went away. WeChat's retry finds the
    checkout paid by this very order: it finishes the settlement and flags nothing."""
    mongo = EmulatedMongoClient()
    running = await start_server(tmp_path, store=MongoStore(mongo, "settle"))
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(4100)
        body = client.signed_notify(paid["sim"])
        _lose_the_store_after(mongo, 2)  # the order's move, the checkout's move
        try:
            first = await client.notify(body)
        finally:
            mongo.fault = None
        assert first.code == 503
        order = await services.orders.require(paid["out_trade_no"])
        assert order.state == "paid" and order.settle_due_at is not None
        assert (await services.checkouts.get(checkout["id"])).status == "paid"
        again = await client.notify(body)
        assert again.code == 200 and b"SUCCESS" in again.body
        settled = await services.checkouts.get(checkout["id"])
        assert settled.status == "paid" and not settled.double_paid
        assert await services.store.find("refunds", {}, limit=0) == []
        assert (await services.orders.require(order.out_trade_no)).settle_due_at is None
        assert [a["verdict"] for a in await services.audit.latest("double_payment")] == []
    finally:
        await running.stop(grace=1)


async def test_the_reconciler_finishes_a_settlement_the_notify_left_cut_short(tmp_path):
    """It had read the order before the notify paid it; its confirmation finds it paid
    but unsettled, and settles it (the checkout moves to paid) before moving on."""
    mongo = EmulatedMongoClient()
    running = await start_server(tmp_path, store=MongoStore(mongo, "finish"))
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(4200)
        read_before = await services.orders.require(paid["out_trade_no"])
        _lose_the_store_after(mongo, 1)  # only the order's move
        try:
            assert (await client.notify(client.signed_notify(paid["sim"]))).code == 503
        finally:
            mongo.fault = None
        assert (await services.checkouts.get(checkout["id"])).status == "open"
        report = RunReport(started_at=services.now())
        await services.order_checks.check(read_before, report)
        assert (await services.checkouts.get(checkout["id"])).status == "paid"
        assert (await services.orders.require(read_before.out_trade_no)).settle_due_at is None
        assert (report.paid, report.errors) == (0, 0)
    finally:
        await running.stop(grace=1)


async def test_an_amount_wechat_disagrees_with_is_reported_and_not_recorded(tmp_path):
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        _checkout, paid = await client.paid_at_wechat_only(4300)
        otn = paid["out_trade_no"]
        await services.store.update_if("orders", otn, {"state": "prepaid"}, {"total_fee": 4301})
        report = RunReport(started_at=services.now())
        await services.order_checks.check(await services.orders.require(otn), report)
        assert (report.errors, report.notes) == (1, [f"{otn}: amount_mismatch"])
        assert (await services.orders.require(otn)).state == "prepaid"
        assert [a["verdict"] for a in await services.audit.latest("reconciler")] == ["amount_mismatch"]
    finally:
        await running.stop(grace=1)


async def test_an_order_is_closed_once_wechat_s_five_minutes_are_over_not_before(tmp_path):
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout = await client.checkout(4400)
        _desktop, result = await client.native_prepay(checkout["id"])
        otn = result["out_trade_no"]
        order = await services.orders.require(otn)
        sim_order = running.simulator.pay.orders[(order.mch_id, otn)]
        sim_order.created_at = sim_order.created_at - timedelta(minutes=6)  # WeChat's own rule is not the one tested

        def checks_at(moment):
            return OrderChecks(services.gateway, services.payments, services.lifecycle, services.audit,
                               now=lambda: moment)

        early = RunReport(started_at=services.now())
        await checks_at(order.created_at + CLOSE_MIN_AGE - timedelta(microseconds=1)).close(order, early)
        waiting = await services.orders.require(otn)
        assert waiting.state == "prepaid" and waiting.next_check_at == order.created_at + CLOSE_MIN_AGE
        report = RunReport(started_at=services.now())
        await checks_at(order.created_at + CLOSE_MIN_AGE).close(waiting, report)
        assert (await services.orders.require(otn)).state == "closed" and report.closed == 1
    finally:
        await running.stop(grace=1)


async def test_what_a_notify_leaves_in_the_audit_trail(tmp_path):
    """A proven notify: its raw body and how long it took. A forged one: its digest only, unverified."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        _checkout, paid = await client.paid_at_wechat_only(4500)
        forged = client.signed_notify(paid["sim"], key="f" * 32)
        assert (await client.notify(forged)).code == 400
        assert (await client.notify(client.signed_notify(paid["sim"]))).code == 200
        genuine, fake = await services.audit.latest("notify", limit=2)
        assert genuine["verdict"] == "paid" and genuine["raw"].startswith("<xml>")
        assert isinstance(genuine["latency_ms"], float) and 0 <= genuine["latency_ms"] < 60_000
        assert fake["verdict"] == "bad_signature" and fake["verified"] is False and "raw" not in fake
        assert fake["out_trade_no"] == genuine["out_trade_no"] == paid["out_trade_no"]
        assert isinstance(fake["latency_ms"], float)
    finally:
        await running.stop(grace=1)


async def test_a_notify_that_fails_inside_is_answered_internal_error_and_changes_nothing(tmp_path):
    """Not a store outage but a bug's exception (MongoDB on the emulator, made to raise one):
    FAIL, so WeChat retries, and a message that says what happened."""
    mongo = EmulatedMongoClient()
    running = await start_server(tmp_path, store=MongoStore(mongo, "internal"))
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(4600)

        def bug(operation: str) -> None:
            if operation == "find_one_and_update":
                raise RuntimeError("emulated: a bug, not an outage")

        mongo.fault = bug
        try:
            r = await client.notify(client.signed_notify(paid["sim"]))
        finally:
            mongo.fault = None
        fields = parse_xml(r.body, root="xml")
        assert (r.code, fields["return_code"], fields["return_msg"]) == (500, "FAIL", "internal error")
        assert [a["verdict"] for a in await services.audit.latest("notify")] == ["internal_error"]
        assert (await services.orders.require(paid["out_trade_no"])).state == "prepaid"
        assert (await services.checkouts.get(checkout["id"])).status == "open"
    finally:
        await running.stop(grace=1)


async def test_a_notify_overtaken_by_the_reconciler_is_a_duplicate_not_a_conflict(tmp_path):
    """The notify read the order unpaid; before its move, the reconciler's confirmation paid it.
    The notify's compare-and-set loses, finds the payment, and tells WeChat it is done."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(4700)
        held = pauses.gate("notify.before_mark_paid")
        notifying = asyncio.ensure_future(client.notify(client.signed_notify(paid["sim"])))
        await held.reached()
        report = RunReport(started_at=services.now())
        await services.order_checks.check(await services.orders.require(paid["out_trade_no"]), report)
        assert report.paid == 1
        held.release()
        r = await notifying
        fields = parse_xml(r.body, root="xml")
        assert (r.code, fields["return_code"]) == (200, "SUCCESS")
        assert [a["verdict"] for a in await services.audit.latest("notify")] == ["duplicate"]
        assert (await services.orders.require(paid["out_trade_no"])).paid_via == "reconciler"
        assert (await services.checkouts.get(checkout["id"])).status == "paid"
    finally:
        pauses.release_gates()
        await running.stop(grace=1)


async def test_the_window_the_crash_battery_aims_at_is_between_the_order_s_move_and_its_settlement(tmp_path):
    """Held at ``orders.before_settle``: the order is paid and marked as not settled yet, the checkout still open."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(4800)
        held = pauses.gate("orders.before_settle")
        notifying = asyncio.ensure_future(client.notify(client.signed_notify(paid["sim"])))
        await held.reached()
        order = await services.orders.require(paid["out_trade_no"])
        assert order.state == "paid" and order.settle_due_at is not None
        assert (await services.checkouts.get(checkout["id"])).status == "open"
        held.release()
        assert (await notifying).code == 200
        assert (await services.checkouts.get(checkout["id"])).status == "paid"
    finally:
        pauses.release_gates()
        await running.stop(grace=1)


async def test_a_second_payment_of_a_paid_checkout_is_flagged_as_such_and_its_closed_sibling_left_alone(
        running, base_url, merchant):
    """Three orders for one checkout: one closed, one paid, one paid as well. The second payment is
    recorded as a second payment (not a payment after a close); the closed order is not asked about again."""
    from .journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat
    from .payments import native_prepay, scan_and_pay, wait_for

    services = running.services
    checkout = await create_checkout(merchant, 4900)
    cid = checkout["id"]
    _desktop, first = await native_prepay(base_url, cid)
    given_up = await services.orders.require(first["out_trade_no"])
    assert await services.lifecycle.move_order(given_up, "closed", next_check_at=None)
    desktop, native = await native_prepay(base_url, cid)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    jsapi = await prepay(shopper, cid)
    assert len({first["out_trade_no"], native["out_trade_no"], jsapi["out_trade_no"]}) == 3
    await scan_and_pay(desktop, native["code_url"])

    async def paid() -> bool:
        return (await services.checkouts.get(cid)).status == "paid"

    await wait_for(paid)
    closed = await services.orders.require(first["out_trade_no"])
    assert (closed.state, closed.close_requested, closed.next_check_at) == ("closed", False, None)
    assert (await services.orders.require(jsapi["out_trade_no"])).close_requested
    await pay_in_simulator(shopper, jsapi["bridge"])

    async def flagged() -> bool:
        return bool(await services.audit.latest("double_payment"))

    await wait_for(flagged)
    (record,) = await services.audit.latest("double_payment")
    assert (record["reason"], record["out_trade_no"], record["first_out_trade_no"]) == (
        "second_payment", jsapi["out_trade_no"], native["out_trade_no"])


async def test_a_proven_notify_refused_for_its_content_is_kept_whole_and_logged(tmp_path, caplog):
    """Signed by WeChat but naming another merchant than the order's: refused, yet proven, so its raw
    body is kept and its request has its own access-log line (an outsider's forgery is only summarized)."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        _checkout, paid = await client.paid_at_wechat_only(5000)
        caplog.clear()
        r = await client.notify(client.signed_notify(paid["sim"], mch_id="1900000999"))
        assert r.code == 400
        (record,) = await services.audit.latest("notify")
        assert record["verdict"] == "identity_mismatch" and record["raw"].startswith("<xml>")
        lines = [rec.getMessage() for rec in caplog.records if rec.name == "tornado.access"]
        assert any(line.startswith("400 POST /notify/pay") for line in lines), lines
        caplog.clear()
        assert (await client.notify(client.signed_notify(paid["sim"], key="f" * 32))).code == 400
        lines = [rec.getMessage() for rec in caplog.records if rec.name == "tornado.access"]
        assert not any(line.startswith("400 POST /notify/pay") for line in lines), lines
    finally:
        await running.stop(grace=1)


def _orderqueries(running) -> int:
    rows = {r["endpoint"]: r for r in running.services.call_stats.snapshot()}
    return rows.get("orderquery", {}).get("calls_total", 0)


async def test_a_duplicate_that_waited_for_the_first_delivery_is_answered_without_asking_wechat_again(tmp_path):
    """Two deliveries of one notify at once: the second waits for the first, then finds the order paid
    in the store, so the burst costs WeChat one orderquery, not one each."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(4750)
        out_trade_no = paid["out_trade_no"]
        before = _orderqueries(running)
        held = pauses.gate("notify.before_mark_paid")
        first = asyncio.ensure_future(client.notify(client.signed_notify(paid["sim"])))
        await held.reached()
        second = asyncio.ensure_future(client.notify(client.signed_notify(paid["sim"])))
        for _ in range(1000):  # bounded: until the second delivery waits on the first's lock
            if services.payment_notify._locks._users.get(out_trade_no, 0) == 2:
                break
            await asyncio.sleep(0.01)
        assert services.payment_notify._locks._users.get(out_trade_no, 0) == 2
        held.release()
        assert [(await first).code, (await second).code] == [200, 200]
        assert sorted(a["verdict"] for a in await services.audit.latest("notify")) == ["duplicate", "paid"]
        assert _orderqueries(running) - before == 1
        assert (await services.checkouts.get(checkout["id"])).status == "paid"
    finally:
        pauses.release_gates()
        await running.stop(grace=1)


async def test_a_notify_s_audit_record_gives_its_latency_in_milliseconds(tmp_path):
    """Held for at least 50 ms inside, the notify's recorded latency is at least 50 (milliseconds)."""
    running = await start_server(tmp_path)
    services = running.services
    try:
        client = Client(running)
        _checkout, paid = await client.paid_at_wechat_only(4760)
        held = pauses.gate("notify.before_mark_paid")
        notifying = asyncio.ensure_future(client.notify(client.signed_notify(paid["sim"])))
        await held.reached()
        await asyncio.sleep(0.05)
        held.release()
        assert (await notifying).code == 200
        (record,) = await services.audit.latest("notify")
        assert record["verdict"] == "paid" and record["latency_ms"] >= 50
    finally:
        pauses.release_gates()
        await running.stop(grace=1)
