"""One payment confirmation, whoever asks: what it settles, and the moves it must not refuse.

Through a real server, the simulated WeChat over HTTP and a real SQLite file.
"""
from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

from pymongo.errors import ServerSelectionTimeoutError

from store.mongo import MongoStore
from tests.battery.harness import Client, start_server
from tests.store.mongo_emulator import EmulatedMongoClient

from .browser import DESKTOP_UA, Browser, as_json
from .journey import create_checkout, sign_in_with_wechat
from .payments import scan_and_pay, wait_for

ROOT = Path(__file__).resolve().parents[2]


async def test_a_payment_confirmed_after_its_order_was_given_up_is_kept(running):
    """The reconciler marked the order failed (WeChat said PAYERROR, say); the
    shopper paid it after all: WeChat's confirmation wins, never refused."""
    client = Client(running)
    services = running.services
    checkout, paid = await client.paid_at_wechat_only(1810)
    order = await services.orders.require(paid["out_trade_no"])
    assert await services.lifecycle.move_order(order, "failed", failure="payerror", next_check_at=None)
    reply = await client.notify(client.signed_notify(paid["sim"]))
    assert reply.code == 200 and b"SUCCESS" in reply.body, reply.body
    after = await services.orders.require(order.out_trade_no)
    assert after.state == "paid" and after.transaction_id == paid["sim"]["order"]["transaction_id"]
    assert (await services.checkouts.get(checkout["id"])).status == "paid"
    assert [n["verdict"] for n in await services.audit.latest("notify")] == ["paid"]


async def test_every_sibling_that_could_still_be_paid_is_handed_to_the_reconciler(running, base_url, merchant):
    """A created order (its unifiedorder reply was lost) is as payable at WeChat as a
    prepaid one: once the checkout is paid, both go to the reconciler to be closed."""
    services = running.services
    checkout = await create_checkout(merchant, 1820)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "pay/unifiedorder", "kind": "malformed", "count": 1})
    r = await shopper.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    assert r.code == 502
    (lost,) = await services.orders.for_checkout(checkout["id"])
    assert lost.state == "created" and not lost.close_requested
    desktop = Browser(base_url, DESKTOP_UA)
    await desktop.get(checkout["pay_url"])
    native = as_json(await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
    await scan_and_pay(desktop, native["code_url"])

    async def settled() -> bool:
        """Paid, and the settlement finished (it hands the siblings over after the checkout's move)."""
        paid_no = (await services.checkouts.get(checkout["id"])).paid_out_trade_no
        return paid_no is not None and (await services.orders.require(paid_no)).settle_due_at is None

    await wait_for(settled)
    sibling = await services.orders.require(lost.out_trade_no)
    assert sibling.state == "created" and sibling.close_requested and sibling.next_check_at <= services.now()
    # Once WeChat's five minutes have passed, the reconciler closes it there and here.
    old = services.now() - timedelta(minutes=6)
    running.simulator.pay.orders[(sibling.mch_id, sibling.out_trade_no)].created_at = old
    await services.store.update_if("orders", sibling.out_trade_no, {"state": "created"}, {"created_at": old})
    report = await services.reconciler.run_once()
    assert report.closed == 1 and (await services.orders.require(sibling.out_trade_no)).state == "closed"
    assert as_json(await merchant.get(f"/_wechat/_sim/orders/{sibling.out_trade_no}"))["order"]["trade_state"] == "CLOSED"


async def test_wechat_is_never_told_success_while_a_settlement_cannot_be_stored(tmp_path):
    """The store fails right after the order's move, and is still down for WeChat's
    retry (MongoDB on the emulator: no server can run here): FAIL both times, so
    WeChat retries; SUCCESS only once the checkout is settled."""
    mongo = EmulatedMongoClient()
    running = await start_server(tmp_path, store=MongoStore(mongo, "confirm"))
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(1830)
        body = client.signed_notify(paid["sim"])
        moves = {"left": 1}

        def lost_after_the_order_s_move(operation: str) -> None:
            if operation == "find_one_and_update":
                moves["left"] -= 1
                if moves["left"] < 0:
                    raise ServerSelectionTimeoutError("emulated: store lost after the order's move")

        mongo.fault = lost_after_the_order_s_move
        try:
            first = await client.notify(body)
        finally:
            mongo.fault = None
        order = await running.services.orders.require(paid["out_trade_no"])
        assert order.state == "paid" and order.settle_due_at is not None
        mongo.down = True
        try:
            retried = await client.notify(body)
        finally:
            mongo.down = False
        assert [(r.code, b"SUCCESS" in r.body) for r in (first, retried)] == [(503, False), (503, False)]
        assert (await running.services.checkouts.get(checkout["id"])).status == "open"
        again = await client.notify(body)
        assert again.code == 200 and b"SUCCESS" in again.body
        assert (await running.services.checkouts.get(checkout["id"])).status == "paid"
        assert (await running.services.orders.require(order.out_trade_no)).settle_due_at is None
    finally:
        await running.stop(grace=1)


def test_only_the_payment_confirmation_asks_wechat_about_an_order_or_moves_it_to_paid():
    """The notify, the reconciler and a cancel all come through service/payments.py."""
    askers, payers = [], []
    for path in sorted((ROOT / "service").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if node.func.attr == "query_order":
                askers.append(path.name)
            paid = [a for a in node.args[1:2] if isinstance(a, ast.Name) and a.id == "PAID"]
            if node.func.attr in ("move_order", "move") and paid:
                payers.append(path.name)
    assert (askers, payers) == (["payments.py"], ["payments.py"])
