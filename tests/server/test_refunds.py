"""Refunds end to end in sandbox mode: the merchant API, the simulated
WeChat (APIv2: secapi/pay/refund with the demo certificate; APIv3:
/v3/refund/domestic/refunds, RSA-signed), its encrypted refund notify, and
the refund query when that notify never comes. Under both API versions."""
from __future__ import annotations

import asyncio
import json

import pytest
from tornado.testing import bind_unused_port

import server
from wxpay.gateway import RefundRequest
from wxpay.xmlcodec import build_xml
from tests.store.conftest import drop_store, make_store
from wxpay.simulator import demo

from .browser import Browser, as_json
from .conftest import BOTH_VERSIONS, sandbox_settings
from .journey import create_checkout
from .payments import Receiver, get_checkout, paid_checkout, refund, wait_for, wait_refund, webhook_overrides
from .test_journey_on_mongo import MONGO_BACKENDS
from .versions import TOO_MUCH_REFUND, accepted, post_notify, refund_notify, refused


@BOTH_VERSIONS
async def test_partial_then_full_refund_with_notify(running, base_url, merchant, api_version):
    checkout = await paid_checkout(merchant, base_url, 1000)
    cid = checkout["id"]
    assert (checkout["refunded_fen"], checkout["refundable_fen"]) == (0, 1000)

    r = await refund(merchant, cid, {"amount_fen": 300, "out_refund_no": "rf-part-1", "reason": "one cup broken"})
    assert r.code == 201, r.body
    assert as_json(r)["out_refund_no"] == "rf-part-1" and as_json(r)["amount_fen"] == 300
    done = await wait_refund(merchant, cid, "rf-part-1", "succeeded")
    assert done["refund_id"].startswith("503")
    view = await get_checkout(merchant, cid)
    assert (view["status"], view["refunded_fen"], view["refundable_fen"]) == ("partially_refunded", 300, 700)

    r = await refund(merchant, cid, {"amount_fen": 700, "out_refund_no": "rf-rest"})
    assert r.code == 201, r.body
    await wait_refund(merchant, cid, "rf-rest", "succeeded")
    view = await get_checkout(merchant, cid)
    assert (view["status"], view["refunded_fen"], view["refundable_fen"]) == ("refunded", 1000, 0)
    assert [x["out_refund_no"] for x in view["refunds"]] == ["rf-part-1", "rf-rest"]

    # What the simulated WeChat saw: two refunds of the order, in this API version (APIv2 with
    # the (emulated) client certificate, APIv3 RSA-signed).
    sim = as_json(await merchant.get("/_wechat/_sim/refunds"))
    mine = [x for x in sim["refunds"] if x["out_trade_no"] == view["paid_out_trade_no"]]
    assert sorted(x["refund_fee"] for x in mine) == [300, 700]
    assert all(x["api"] == api_version for x in mine)
    assert all(x["client_cert"].startswith("emulated") == (api_version == "v2") for x in mine)
    # Both outcomes arrived by notify, and every call is in the audit trail.
    notifies = await running.services.audit.latest("refund_notify", limit=10)
    assert sorted(n["verdict"] for n in notifies if n["ok"]) == ["succeeded", "succeeded"]
    calls = await running.services.audit.latest("refund_call", limit=10)
    assert sorted((c["out_refund_no"], c["verdict"]) for c in calls) == [("rf-part-1", "accepted"), ("rf-rest", "accepted")]
    listed = as_json(await merchant.get("/api/checkouts?status=refunded", headers=merchant.token_headers))
    assert cid in [c["id"] for c in listed["items"]]


@BOTH_VERSIONS
async def test_refund_above_the_remaining_amount_is_refused_clearly(running, base_url, merchant):
    checkout = await paid_checkout(merchant, base_url, 500)
    r = await refund(merchant, checkout["id"], {"amount_fen": 501})
    assert r.code == 400
    error = as_json(r)
    assert error["code"] == "refund_exceeds_remaining" and error["details"]["remaining_fen"] == 500
    assert "500" in error["message"]
    r = await refund(merchant, checkout["id"], {"amount_fen": 200, "out_refund_no": "rf-a"})
    assert r.code == 201
    r = await refund(merchant, checkout["id"], {"amount_fen": 301})
    assert r.code == 400 and as_json(r)["details"]["remaining_fen"] == 300
    sim = as_json(await merchant.get("/_wechat/_sim/refunds"))
    assert [x["refund_fee"] for x in sim["refunds"]] == [200]  # the refused ones never reached WeChat
    # Input and state errors have their own codes too.
    unpaid = await create_checkout(merchant, 100)
    r = await refund(merchant, unpaid["id"], {"amount_fen": 1})
    assert r.code == 409 and as_json(r)["code"] == "checkout_not_paid"
    for body, code in (({"amount_fen": 0}, "invalid_amount"), ({"amount_fen": "5"}, "invalid_amount"),
                       ({"amount_fen": 5, "out_refund_no": "no spaces"}, "invalid_out_refund_no"),
                       ({"amount_fen": 5, "x": 1}, "unknown_field")):
        r = await refund(merchant, checkout["id"], body)
        assert r.code == 400 and as_json(r)["code"] == code


@BOTH_VERSIONS
async def test_a_duplicated_refund_request_refunds_once(running, base_url, merchant):
    checkout = await paid_checkout(merchant, base_url, 800)
    cid = checkout["id"]
    body = {"amount_fen": 250, "out_refund_no": "rf-dup"}
    replies = await asyncio.gather(*(refund(merchant, cid, body) for _ in range(6)))
    assert sorted(r.code for r in replies) == [200] * 5 + [201]
    assert {as_json(r)["out_refund_no"] for r in replies} == {"rf-dup"}
    # The same number for another amount is a conflict, not a second refund.
    r = await refund(merchant, cid, {"amount_fen": 300, "out_refund_no": "rf-dup"})
    assert r.code == 409 and as_json(r)["code"] == "out_refund_no_reused"
    # An Idempotency-Key works the same way without an out_refund_no.
    key = {"Idempotency-Key": "refund-order-42"}
    first, second = await refund(merchant, cid, {"amount_fen": 50}, key), await refund(merchant, cid, {"amount_fen": 50}, key)
    assert (first.code, second.code) == (201, 200)
    assert as_json(first)["out_refund_no"] == as_json(second)["out_refund_no"]
    r = await refund(merchant, cid, {"amount_fen": 51}, key)
    assert r.code == 409 and as_json(r)["code"] == "out_refund_no_reused"

    await wait_refund(merchant, cid, "rf-dup", "succeeded")
    await wait_refund(merchant, cid, as_json(first)["out_refund_no"], "succeeded")
    view = await get_checkout(merchant, cid)
    assert view["refunded_fen"] == 300 and len(view["refunds"]) == 2
    sim = as_json(await merchant.get("/_wechat/_sim/refunds"))
    assert sorted(x["refund_fee"] for x in sim["refunds"]) == [50, 250]


@BOTH_VERSIONS
async def test_a_dropped_refund_notify_is_found_by_refundquery(running, base_url, merchant, api_version):
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "refund_notify", "kind": "drop", "count": None})
    checkout = await paid_checkout(merchant, base_url, 600)
    r = await refund(merchant, checkout["id"], {"amount_fen": 600, "out_refund_no": "rf-quiet"})
    assert r.code == 201 and as_json(r)["state"] == "pending"
    services = running.services
    stored = await services.refunds.get("rf-quiet")
    assert stored.submitted and stored.state == "pending"
    # Its check is due (in production after reconciler.query_after_s).
    await services.store.update_if("refunds", "rf-quiet", {}, {"next_check_at": services.now()})
    report = await services.reconciler.run_once()
    assert (report.refunds_checked, report.refunds_settled) == (1, 1)
    view = await get_checkout(merchant, checkout["id"])
    assert view["status"] == "refunded" and view["refunds"][0]["state"] == "succeeded"
    queries = await services.audit.latest("refund_query")
    assert [q["verdict"] for q in queries] == ["succeeded"]
    # A notify that finally arrives late changes nothing and is acknowledged.
    reply = await post_notify(merchant, "/notify/refund", refund_notify(running, api_version, "rf-quiet"))
    assert accepted(api_version, reply), reply.body
    assert (await services.audit.latest("refund_notify", limit=1))[0]["verdict"] == "duplicate"
    assert (await get_checkout(merchant, checkout["id"]))["refunded_fen"] == 600


@BOTH_VERSIONS
async def test_refund_notify_that_does_not_decrypt_or_match_is_refused(running, base_url, merchant, api_version):
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "refund_notify", "kind": "drop", "count": None})
    checkout = await paid_checkout(merchant, base_url, 300)
    await refund(merchant, checkout["id"], {"amount_fen": 100, "out_refund_no": "rf-x"})
    # APIv2: req_info that does not decrypt under our key; APIv3: a signature that is not WeChat's.
    r = await post_notify(merchant, "/notify/refund", refund_notify(running, api_version, "rf-x", forged=True))
    assert refused(api_version, r, 400), r.body
    other = refund_notify(running, api_version, "rf-x", mch_id="1900000999") if api_version == "v2" else \
        refund_notify(running, api_version, "rf-x", mchid="1900000999")
    r = await post_notify(merchant, "/notify/refund", other)
    assert refused(api_version, r, 400), r.body
    assert (await running.services.refunds.get("rf-x")).state == "pending"
    verdicts = [a["verdict"] for a in await running.services.audit.latest("refund_notify")]
    assert sorted(verdicts) == {"v2": ["identity_mismatch", "undecryptable"],
                                "v3": ["bad_signature", "identity_mismatch"]}[api_version]
    # The genuine one applies once.
    r = await post_notify(merchant, "/notify/refund", refund_notify(running, api_version, "rf-x"))
    assert accepted(api_version, r), r.body
    assert (await running.services.refunds.get("rf-x")).state == "succeeded"


@pytest.mark.parametrize("kind", MONGO_BACKENDS)
async def test_refunds_and_webhooks_on_mongo(tmp_path, kind):
    """The same compare-and-set reservations, markers and outbox on the MongoDB store."""
    store, handle = await make_store(kind, tmp_path)
    receiver = Receiver(fail_first=1)
    sock, _ = bind_unused_port()
    running = await server.start(sandbox_settings(tmp_path, **webhook_overrides(receiver)), sockets=[sock], store=store)
    try:
        merchant = Browser(f"http://127.0.0.1:{running.port}")
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}
        checkout = await paid_checkout(merchant, merchant.base, 700)
        replies = await asyncio.gather(*(refund(merchant, checkout["id"], {"amount_fen": 200, "out_refund_no": "m-1"})
                                         for _ in range(3)))
        assert sorted(r.code for r in replies) == [200, 200, 201]
        r = await refund(merchant, checkout["id"], {"amount_fen": 501})
        assert r.code == 400 and as_json(r)["details"]["remaining_fen"] == 500
        await wait_refund(merchant, checkout["id"], "m-1", "succeeded")

        async def both() -> bool:
            return len(receiver.successes()) == 2

        await wait_for(both)
        assert set(receiver.successes().values()) == {1}
        assert await running.services.store.count("checkouts", {"outbox_due_at": {"$ne": None}}) == 0
    finally:
        await running.stop(grace=1)
        receiver.stop()
        await drop_store(kind, store, handle)


@BOTH_VERSIONS
async def test_a_refund_wechat_refuses_fails_clearly_and_frees_the_amount(running, base_url, merchant, api_version):
    checkout = await paid_checkout(merchant, base_url, 400)
    # Someone refunds 350 fen of this order behind the server's back (the merchant platform, say).
    await running.services.gateway.refund(
        RefundRequest("elsewhere-1", checkout["paid_out_trade_no"], demo.OFFICIAL_ACCOUNT_APPID, 400, 350)
    )
    r = await refund(merchant, checkout["id"], {"amount_fen": 100, "out_refund_no": "rf-too-much"})
    assert r.code == 502
    error = as_json(r)
    assert error["code"] == "refund_rejected" and error["details"]["wechat_code"] == TOO_MUCH_REFUND[api_version]
    assert (await running.services.refunds.get("rf-too-much")).state == "failed"
    view = await get_checkout(merchant, checkout["id"])
    assert (view["status"], view["refundable_fen"], view["refunded_fen"]) == ("paid", 400, 0)
    # Asking again with the same number does not ask WeChat again.
    again = await refund(merchant, checkout["id"], {"amount_fen": 100, "out_refund_no": "rf-too-much"})
    assert again.code == 200 and as_json(again)["state"] == "failed"
    assert as_json(again)["failure"] == TOO_MUCH_REFUND[api_version]
    calls = [c for c in await running.services.audit.latest("refund_call") if c["out_refund_no"] == "rf-too-much"]
    assert [c["verdict"] for c in calls] == ["rejected"]


@BOTH_VERSIONS
async def test_the_shoppers_page_says_refunded_after_a_refund(running, base_url, merchant):
    """The shopper is told (the page's screens: tests/browser/test_shopper_pages.py); ``paid`` stays true."""
    checkout = await paid_checkout(merchant, base_url, 200)
    await refund(merchant, checkout["id"], {"amount_fen": 50, "out_refund_no": "rf-page-1"})
    await wait_refund(merchant, checkout["id"], "rf-page-1", "succeeded")
    status = as_json(await merchant.get(f"/pay/{checkout['id']}/status"))
    assert status == {"status": "partially_refunded", "paid": True, "refunded_fen": 50, "return_url": None}
    await refund(merchant, checkout["id"], {"amount_fen": 150, "out_refund_no": "rf-page-2"})
    await wait_refund(merchant, checkout["id"], "rf-page-2", "succeeded")
    status = as_json(await merchant.get(f"/pay/{checkout['id']}/status"))
    assert status == {"status": "refunded", "paid": True, "refunded_fen": 200, "return_url": None}


@BOTH_VERSIONS
@pytest.mark.parametrize("wechat_says, state", [("REFUNDCLOSE", "closed"), ("CHANGE", "needs_attention")])
async def test_a_refund_that_wechat_closes_or_finds_abnormal(running, base_url, merchant, api_version, wechat_says,
                                                             state):
    """APIv2 REFUNDCLOSE / CHANGE, APIv3 REFUND.CLOSED / REFUND.ABNORMAL: by notify, in each
    version's form. A closed refund gives its amount back to the checkout; an abnormal one
    keeps it reserved and waits for a person (the money left WeChat, not to the shopper)."""
    running.simulator.pay.auto_settle_refunds = False  # WeChat leaves it PROCESSING for now
    checkout = await paid_checkout(merchant, base_url, 900)
    r = await refund(merchant, checkout["id"], {"amount_fen": 500, "out_refund_no": f"rf-{state}"})
    assert r.code == 201 and as_json(r)["state"] == "pending"
    settle = await merchant.post(f"/_wechat/_sim/refunds/rf-{state}/settle", json_body={"status": wechat_says})
    assert settle.code == 200, settle.body
    await wait_refund(merchant, checkout["id"], f"rf-{state}", state)
    (notice,) = await running.services.audit.latest("refund_notify")
    assert (notice["verdict"], notice["api_version"]) == (state, api_version)
    if api_version == "v3":
        assert json.loads(notice["raw"])["event_type"] == {"closed": "REFUND.CLOSED",
                                                          "needs_attention": "REFUND.ABNORMAL"}[state]
    view = await get_checkout(merchant, checkout["id"])
    assert (view["status"], view["refunded_fen"]) == ("paid", 0)
    assert view["refundable_fen"] == {"closed": 900, "needs_attention": 400}[state]


async def test_a_repeated_refund_notify_finishes_a_refund_cut_short_before_its_checkout_heard(
        running, base_url, merchant):
    """The refund moved to succeeded, then the process stopped before folding it into its checkout:
    WeChat's next delivery of the notify finishes it (the checkout is refunded) and is a duplicate."""
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "refund_notify", "kind": "drop", "count": None})
    checkout = await paid_checkout(merchant, base_url, 650)
    r = await refund(merchant, checkout["id"], {"amount_fen": 650, "out_refund_no": "rf-cut"})
    assert r.code == 201 and as_json(r)["state"] == "pending"
    services = running.services
    stored = await services.refunds.get("rf-cut")
    now = services.now()
    cut = await services.lifecycle.move_refund(stored, "succeeded", settled_at=now, succeeded_at=now, applied=False)
    assert cut is not None and (await get_checkout(merchant, checkout["id"]))["status"] == "paid"
    sim = running.simulator
    again = build_xml(sim.refund_notify_fields(sim.pay.refund_by_no(demo.MCH_ID, "rf-cut")))
    reply = await merchant.post("/notify/refund", body=again)
    assert reply.code == 200 and b"SUCCESS" in reply.body
    assert (await services.audit.latest("refund_notify", limit=1))[0]["verdict"] == "duplicate"
    view = await get_checkout(merchant, checkout["id"])
    assert (view["status"], view["refunded_fen"]) == ("refunded", 650)
