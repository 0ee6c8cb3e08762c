"""A cancel (or the expiry, or a payment) racing a prepay, played exactly.

Each test holds one side still on a test gate (service/pauses.py, sandbox
only: the request waits at a named point until released), plays the other
side to its end over real HTTP, then lets the first go on. Afterwards: the
cancel's answer is still true, no order of the checkout stays payable at
WeChat (once WeChat's five minutes have passed, the reconciler has closed
every unpaid one; the simulator says so), and a payment that lands after the
merchant was told "closed" is confirmed, refunded and flagged.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from service import pauses

from .browser import DESKTOP_UA, Browser, as_json
from .journey import create_checkout, prepay, sign_in_with_wechat
from .payments import get_checkout, native_prepay, wait_for, wait_refund
from .test_order_caps import age_orders, opened, sim_orders


@pytest.fixture(autouse=True)
def gates():
    yield
    pauses.release_gates()


async def cancel(merchant: Browser, checkout_id: str):
    return await merchant.post(f"/api/checkouts/{checkout_id}/cancel", headers=merchant.token_headers)


def start_prepay(browser: Browser, checkout_id: str) -> asyncio.Future:
    return asyncio.ensure_future(browser.post(f"/pay/{checkout_id}/prepay", json_body={}, xsrf=True))


async def order_numbers(running, checkout_id: str) -> list[str]:
    return [o.out_trade_no for o in await running.services.orders.for_checkout(checkout_id)]


async def nothing_payable_once_wechat_allows(
    running, merchant: Browser, checkout_id: str, kept: str | None = None
) -> dict[str, str]:
    """Five minutes later (on both sides), one reconciler pass: every order of
    the checkout is closed at WeChat, or was paid and refunded (but ``kept``,
    the payment the checkout keeps)."""
    numbers = await order_numbers(running, checkout_id)
    await age_orders(running, numbers)
    await running.services.reconciler.run_once()
    states = {o["out_trade_no"]: o["trade_state"] for o in await sim_orders(merchant) if o["out_trade_no"] in numbers}
    assert {s for no, s in states.items() if no != kept} <= {"CLOSED", "REFUND"}, states
    return states


async def test_a_prepay_that_read_the_checkout_before_the_cancel_makes_no_order(running, base_url, merchant):
    checkout = await create_checkout(merchant, 510)
    shopper = await opened(base_url, checkout["id"], DESKTOP_UA)
    held = pauses.gate("prepay.after_checkout_check")
    paying = start_prepay(shopper, checkout["id"])
    await held.reached()
    r = await cancel(merchant, checkout["id"])
    assert r.code == 200 and as_json(r)["status"] == "closed"
    held.release()
    r = await paying
    assert r.code == 409 and as_json(r)["code"] == "checkout_closed"
    assert await order_numbers(running, checkout["id"]) == []
    assert await sim_orders(merchant) == []  # WeChat was never asked


async def test_a_prepay_reserving_while_a_cancel_is_under_way_is_refused(running, base_url, merchant):
    checkout = await create_checkout(merchant, 515)
    shopper = await opened(base_url, checkout["id"], DESKTOP_UA)
    prepay_held = pauses.gate("prepay.after_checkout_check")
    paying = start_prepay(shopper, checkout["id"])
    await prepay_held.reached()
    cancel_held = pauses.gate("closing.after_list")  # the checkout is marked, still "open", nothing listed
    cancelling = asyncio.ensure_future(cancel(merchant, checkout["id"]))
    await cancel_held.reached()
    prepay_held.release()
    r = await paying
    assert r.code == 409 and as_json(r)["code"] == "checkout_closed"
    cancel_held.release()
    r = await cancelling
    assert r.code == 200 and as_json(r)["status"] == "closed" and as_json(r)["orders"] == []
    assert await sim_orders(merchant) == []


async def test_unifiedorder_landing_after_the_cancel_listed_the_orders_is_closed_too(running, base_url, merchant):
    checkout = await create_checkout(merchant, 520)
    shopper = await opened(base_url, checkout["id"], DESKTOP_UA)
    held = pauses.gate("prepay.before_unifiedorder")  # the order is stored; WeChat not asked yet
    paying = start_prepay(shopper, checkout["id"])
    await held.reached()
    r = await cancel(merchant, checkout["id"])
    assert r.code == 200 and as_json(r)["status"] == "closed"
    held.release()
    r = await paying  # WeChat now holds the order, but its prepay_id never leaves the server
    assert r.code == 409 and as_json(r)["code"] == "checkout_closed"
    (no,) = await order_numbers(running, checkout["id"])
    order = await running.services.orders.require(no)
    assert order.state == "prepaid" and order.close_requested
    assert [o["trade_state"] for o in await sim_orders(merchant)] == ["NOTPAY"]
    assert await nothing_payable_once_wechat_allows(running, merchant, checkout["id"]) == {no: "CLOSED"}
    view = await get_checkout(merchant, checkout["id"])
    assert view["status"] == "closed" and "double_paid" not in view


async def test_the_late_order_paid_anyway_is_refunded_and_flagged(running, base_url, merchant):
    checkout = await create_checkout(merchant, 530)
    shopper = await opened(base_url, checkout["id"], DESKTOP_UA)
    held = pauses.gate("prepay.before_unifiedorder")
    paying = start_prepay(shopper, checkout["id"])
    await held.reached()
    assert (await cancel(merchant, checkout["id"])).code == 200
    held.release()
    assert (await paying).code == 409
    # The late order exists at WeChat; it gets paid (the test pays it at the simulator by its
    # prepay_id, as a shopper holding it would) before WeChat lets anyone close it.
    (no,) = await order_numbers(running, checkout["id"])
    order = await running.services.orders.require(no)
    r = await merchant.post("/_wechat/_sim/pay", json_body={"prepay_id": order.prepay_id, "outcome": "ok"})
    assert as_json(r)["ok"], r.body
    refund = await wait_refund(merchant, checkout["id"], "D" + no, "succeeded")
    assert refund["kind"] == "double_payment" and refund["amount_fen"] == 530
    view = await get_checkout(merchant, checkout["id"])
    assert view["status"] == "closed" and view["double_paid"] is True
    assert await nothing_payable_once_wechat_allows(running, merchant, checkout["id"]) == {no: "REFUND"}


async def test_a_payment_whose_notify_comes_after_the_cancel_answered_is_refunded(running, base_url, merchant):
    checkout = await create_checkout(merchant, 540)
    desktop, result = await native_prepay(base_url, checkout["id"])  # the shopper holds a QR code
    closing = pauses.gate("closing.before_final")  # the cancel has asked WeChat: NOTPAY
    cancelling = asyncio.ensure_future(cancel(merchant, checkout["id"]))
    await closing.reached()
    notify = pauses.gate("notify.before_mark_paid")
    r = await desktop.post("/_wechat/_sim/scan", json_body={"code_url": result["code_url"], "outcome": "ok"})
    assert as_json(r)["ok"]
    await notify.reached()  # WeChat's notify is in, not yet applied
    closing.release()
    r = await cancelling
    assert r.code == 200 and as_json(r)["status"] == "closed"
    notify.release()
    no = result["out_trade_no"]
    refund = await wait_refund(merchant, checkout["id"], "D" + no, "succeeded")
    assert refund["amount_fen"] == 540
    view = await get_checkout(merchant, checkout["id"])
    assert view["status"] == "closed" and view["double_paid"] is True and view["orders"][0]["state"] == "paid"
    assert await nothing_payable_once_wechat_allows(running, merchant, checkout["id"]) == {no: "REFUND"}


async def test_a_payment_confirmed_before_the_cancel_finishes_makes_it_answer_paid(running, base_url, merchant):
    checkout = await create_checkout(merchant, 550)
    desktop, result = await native_prepay(base_url, checkout["id"])
    closing = pauses.gate("closing.before_final")
    cancelling = asyncio.ensure_future(cancel(merchant, checkout["id"]))
    await closing.reached()
    r = await desktop.post("/_wechat/_sim/scan", json_body={"code_url": result["code_url"], "outcome": "ok"})
    assert as_json(r)["ok"]

    async def paid() -> bool:
        return (await get_checkout(merchant, checkout["id"]))["status"] == "paid"

    await wait_for(paid)
    closing.release()
    r = await cancelling
    assert r.code == 409 and as_json(r)["code"] == "checkout_paid"
    view = await get_checkout(merchant, checkout["id"])
    assert view["paid_out_trade_no"] == result["out_trade_no"] and "double_paid" not in view
    assert as_json(await merchant.get("/_wechat/_sim/refunds"))["refunds"] == []


async def test_the_expiry_close_racing_a_prepay(running, base_url, merchant):
    checkout = await create_checkout(merchant, 560)
    shopper = await opened(base_url, checkout["id"], DESKTOP_UA)
    held = pauses.gate("prepay.before_unifiedorder")
    paying = start_prepay(shopper, checkout["id"])
    await held.reached()
    services = running.services
    # The checkout's time runs out while unifiedorder is under way; the reconciler closes it.
    await services.store.update_if("checkouts", checkout["id"], {}, {"expires_at": services.now() - timedelta(seconds=1)})
    report = await services.reconciler.run_once()
    assert report.checkouts_closed == 1
    held.release()
    r = await paying
    assert r.code == 409 and as_json(r)["code"] == "checkout_closed"
    (no,) = await order_numbers(running, checkout["id"])
    assert (await services.orders.require(no)).close_requested
    assert await nothing_payable_once_wechat_allows(running, merchant, checkout["id"]) == {no: "CLOSED"}


async def test_a_payment_racing_a_sibling_prepay(running, base_url, merchant):
    checkout = await create_checkout(merchant, 570)
    desktop, native = await native_prepay(base_url, checkout["id"])
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    held = pauses.gate("prepay.before_unifiedorder")
    paying = start_prepay(shopper, checkout["id"])  # a second order (JSAPI), under way
    await held.reached()
    r = await desktop.post("/_wechat/_sim/scan", json_body={"code_url": native["code_url"], "outcome": "ok"})
    assert as_json(r)["ok"]

    async def paid() -> bool:
        return (await get_checkout(merchant, checkout["id"]))["status"] == "paid"

    await wait_for(paid)
    held.release()
    r = await paying
    assert r.code == 409 and as_json(r)["code"] == "checkout_paid"
    states = await nothing_payable_once_wechat_allows(running, merchant, checkout["id"], kept=native["out_trade_no"])
    assert sorted(states.values()) == ["CLOSED", "SUCCESS"] and states[native["out_trade_no"]] == "SUCCESS"


async def test_an_expiry_while_wechat_is_unreachable_keeps_a_payment_made_before_it(running, base_url, merchant):
    services = running.services
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "notify", "kind": "drop", "count": None})
    checkout = await create_checkout(merchant, 580)
    desktop, result = await native_prepay(base_url, checkout["id"])
    r = await desktop.post("/_wechat/_sim/scan", json_body={"code_url": result["code_url"], "outcome": "ok"})
    assert as_json(r)["ok"]  # paid at WeChat; the notify is lost
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "pay/orderquery", "kind": "http500", "count": None})
    await services.store.update_if("checkouts", checkout["id"], {}, {"expires_at": services.now() - timedelta(seconds=1)})
    report = await services.reconciler.run_once()
    # WeChat could not say whether the order was paid: the checkout is not closed on a guess.
    assert report.checkouts_closed == 0
    assert (await get_checkout(merchant, checkout["id"]))["status"] == "open"
    r = await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    assert r.code == 409 and as_json(r)["code"] == "checkout_closed"  # but nothing new can start
    await merchant.request("DELETE", "/_wechat/_sim/faults?endpoint=pay/orderquery")
    await services.reconciler.run_once()
    view = await get_checkout(merchant, checkout["id"])
    assert view["status"] == "paid" and view["paid_out_trade_no"] == result["out_trade_no"]
    assert "double_paid" not in view and view["refunds"] == []


async def test_prepays_that_read_the_checkout_with_no_order_make_one_order_between_them(running, base_url, merchant):
    """Both read the checkout before either made an order (the first-order
    shortcut's case): the second finds the count moved, reads the orders and
    reuses the first one's, so WeChat holds one order for the slot."""
    checkout = await create_checkout(merchant, 530)
    first = await opened(base_url, checkout["id"], DESKTOP_UA)
    second = await opened(base_url, checkout["id"], DESKTOP_UA)
    held = pauses.gate("prepay.after_checkout_check")
    paying = [start_prepay(first, checkout["id"])]
    await held.reached()
    paying.append(start_prepay(second, checkout["id"]))
    while held.passes < 2:
        await asyncio.sleep(0.01)
    held.release()
    answers = [as_json(r) for r in await asyncio.gather(*paying)]
    assert len({a["out_trade_no"] for a in answers}) == 1
    assert sorted(a["reused"] for a in answers) == [False, True]
    assert len(await order_numbers(running, checkout["id"])) == 1
    assert len(await sim_orders(merchant)) == 1
    assert (await running.services.checkouts.get(checkout["id"])).orders_made == 1
