"""Calls to WeChat ride kept-alive connections: no TCP (or TLS) handshake per call.

A new connection per call costs a handshake and a slow-start on every
prepay and every first-time notify, and leaves a TIME_WAIT socket behind
each. The server keeps one HTTP client for the process (``wiring.services``
builds one transport; Tornado's curl client keeps connections alive), so
calls made one after another reuse the connection the first one opened.

Counted where it cannot be faked: the connections the real server accepted
(the sandbox's simulator is mounted on the server's own port, so its calls to
"WeChat" arrive there too) against the shopper's own requests, each of which
opens its own connection (Tornado's simple client does not keep them alive).
"""
from __future__ import annotations

from .browser import as_json
from .conftest import BOTH_VERSIONS
from .journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat
from .versions import accepted as notify_accepted
from .versions import payment_notify, post_notify

PREPAYS = 6
UPSTREAM = {"v2": "pay/unifiedorder", "v3": "v3/pay/transactions/jsapi"}
QUERY = {"v2": "pay/orderquery", "v3": "v3/pay/transactions/out-trade-no/{out_trade_no}"}


def counting(running, browser, monkeypatch) -> tuple[list, list]:
    """Connections the server accepts, and requests ``browser`` sends (one connection each)."""
    accepted, sent = [], []
    admit, fetch = running.server.cap.admit, browser.client.fetch
    monkeypatch.setattr(running.server.cap, "admit", lambda ip: accepted.append(ip) or admit(ip))
    monkeypatch.setattr(browser.client, "fetch", lambda *a, **kw: sent.append(a[0]) or fetch(*a, **kw))
    return accepted, sent


@BOTH_VERSIONS
async def test_prepays_one_after_another_open_no_new_connection_to_wechat(running, base_url, merchant, api_version,
                                                                         monkeypatch):
    checkouts = [await create_checkout(merchant) for _ in range(PREPAYS + 1)]
    shopper, _ = await sign_in_with_wechat(base_url, checkouts[0]["pay_url"])
    await prepay(shopper, checkouts[0]["id"])  # the first opens the connection (and fetches any token)
    before = as_json(await merchant.get("/_wechat/_sim/calls"))["calls"].get(UPSTREAM[api_version], 0)

    accepted, sent = counting(running, shopper, monkeypatch)
    for checkout in checkouts[1:]:
        result = await prepay(shopper, checkout["id"])
        assert result["reused"] is False  # a fresh order at WeChat each time
    monkeypatch.undo()

    calls = as_json(await merchant.get("/_wechat/_sim/calls"))["calls"].get(UPSTREAM[api_version], 0) - before
    assert calls == PREPAYS  # each prepay did call WeChat ...
    assert len(sent) == PREPAYS
    assert len(accepted) == len(sent)  # ... and only the shopper's requests needed a new connection


@BOTH_VERSIONS
async def test_first_time_notifies_query_wechat_without_a_new_connection(running, base_url, merchant, api_version,
                                                                        monkeypatch):
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "notify", "kind": "drop", "count": None})
    checkouts = [await create_checkout(merchant) for _ in range(PREPAYS)]
    shopper, _ = await sign_in_with_wechat(base_url, checkouts[0]["pay_url"])
    orders = []
    for checkout in checkouts:
        result = await prepay(shopper, checkout["id"])
        await pay_in_simulator(shopper, result["bridge"])  # paid at WeChat; its own notify is lost
        orders.append(result["out_trade_no"])
    notifies = [payment_notify(running, api_version, out_trade_no) for out_trade_no in orders]
    before = as_json(await merchant.get("/_wechat/_sim/calls"))["calls"].get(QUERY[api_version], 0)

    accepted, sent = counting(running, merchant, monkeypatch)
    for notify in notifies:
        reply = await post_notify(merchant, "/notify/pay", notify)
        assert notify_accepted(api_version, reply), reply.body
    monkeypatch.undo()

    calls = as_json(await merchant.get("/_wechat/_sim/calls"))["calls"].get(QUERY[api_version], 0) - before
    assert calls == PREPAYS  # each notify asked WeChat before believing it ...
    assert len(sent) == PREPAYS
    assert len(accepted) == len(sent)  # ... over the connection the prepays had opened
    for out_trade_no in orders:
        assert (await running.services.orders.require(out_trade_no)).state == "paid"
