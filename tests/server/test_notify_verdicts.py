"""Every way the payment and refund notifies end, as WeChat hears it.

A real server in sandbox mode, the simulated WeChat over HTTP, a real
SQLite file. Each case pins the status, the ``return_msg`` WeChat shows the
merchant (the V2 reply), the audit verdict and what the store kept: the
survivors of the mutation run (docs/MUTATION.md) were refusals that went
out with another status, another message or another verdict unnoticed.
"""
from __future__ import annotations

from wxpay import refund_crypto
from wxpay.simulator.crypto import build_root_xml
from wxpay.xmlcodec import build_xml, parse_xml

from tests.battery.harness import Client, start_server

from .browser import as_json


async def _server(tmp_path):
    running = await start_server(tmp_path)
    return running, Client(running)


def _reply(response) -> tuple[int, str, str]:
    fields = parse_xml(response.body, root="xml")
    return response.code, fields["return_code"], fields["return_msg"]


async def _verdicts(running, kind: str = "notify") -> list[str]:
    return [a["verdict"] for a in reversed(await running.services.audit.latest(kind, limit=50))]


async def test_payment_notify_refusals_each_say_why(tmp_path):
    running, client = await _server(tmp_path)
    try:
        checkout, paid = await client.paid_at_wechat_only(2100)
        sim = paid["sim"]
        out_trade_no = paid["out_trade_no"]
        # An order we do not have (WeChat signed it: proven, so recorded).
        r = await client.notify(client.signed_notify(sim, out_trade_no="NOSUCHORDER0001"))
        assert _reply(r) == (404, "FAIL", "unknown order")
        # An amount other than the order's.
        r = await client.notify(client.signed_notify(sim, total_fee="2101"))
        assert _reply(r) == (400, "FAIL", "amount mismatch")
        # WeChat's orderquery names another transaction than the notify.
        r = await client.notify(client.signed_notify(sim, transaction_id="4200000000000000000000000001"))
        assert _reply(r) == (409, "FAIL", "orderquery disagrees with notify")
        # WeChat cannot be asked (its retries too): retry later.
        await client.fault(endpoint="pay/orderquery", kind="http500", count=None)
        r = await client.notify(client.signed_notify(sim))
        await client.clear_faults("pay/orderquery")
        assert _reply(r) == (503, "FAIL", "could not confirm with WeChat")
        assert (await running.services.orders.require(out_trade_no)).state == "prepaid"
        # The genuine one is confirmed; a repeat naming another transaction is refused.
        r = await client.notify(client.signed_notify(sim))
        assert _reply(r) == (200, "SUCCESS", "OK")
        r = await client.notify(client.signed_notify(sim, transaction_id="4200000000000000000000000002"))
        assert _reply(r) == (409, "FAIL", "transaction mismatch")
        r = await client.notify(client.signed_notify(sim))
        assert _reply(r) == (200, "SUCCESS", "OK")
        verdicts = await _verdicts(running)
        assert verdicts[:3] == ["unknown_order", "amount_mismatch", "query_mismatch"]
        assert verdicts[3].startswith("query_failed_")
        assert verdicts[4:] == ["paid", "transaction_mismatch", "duplicate"]
        order = await running.services.orders.require(out_trade_no)
        assert order.state == "paid" and order.transaction_id == sim["order"]["transaction_id"]
        assert order.paid_via == "notify"
        # A verified repeat is recorded by digest only (its first delivery's body is kept), but by its order too.
        repeats = [a for a in await running.services.audit.latest("notify", limit=50) if a["verdict"] == "duplicate"]
        assert [a.get("out_trade_no") for a in repeats] == [out_trade_no]
    finally:
        await running.stop(grace=1)


async def test_a_notify_for_an_order_wechat_says_is_unpaid_is_refused(tmp_path):
    running, client = await _server(tmp_path)
    try:
        checkout = await client.checkout(2200)
        _desktop, result = await client.native_prepay(checkout["id"])
        sim_order = as_json(await client.sim("GET", f"orders/{result['out_trade_no']}"))
        forged_paid = {**sim_order["order"], "transaction_id": "4200000000000000000000000003"}
        r = await client.notify(client.signed_notify(forged_paid))
        assert _reply(r) == (409, "FAIL", "not paid per orderquery")
        assert await _verdicts(running) == ["query_says_NOTPAY"]
        assert (await running.services.orders.require(result["out_trade_no"])).state == "prepaid"
    finally:
        await running.stop(grace=1)


def _refund_notify(key: str, fields: dict, **inner_changes) -> bytes:
    """The simulator's refund notify with some decrypted fields changed, encrypted again under ``key``."""
    inner = parse_xml(refund_crypto.decrypt_req_info(fields["req_info"], key), root="root")
    inner.update(inner_changes)
    return build_xml({**fields, "req_info": refund_crypto.encrypt_req_info(build_root_xml(inner), key)})


async def test_refund_notify_refusals_each_say_why(tmp_path):
    running, client = await _server(tmp_path)
    try:
        await client.fault(endpoint="refund_notify", kind="drop", count=None)
        checkout, paid = await client.paid_at_wechat_only(2300)
        r = await client.notify(client.signed_notify(paid["sim"]))
        assert r.code == 200
        refund = await client.merchant.post(f"/api/checkouts/{checkout['id']}/refunds", headers=client.auth,
                                            json_body={"amount_fen": 800, "out_refund_no": "rf-why"})
        assert refund.code == 201, refund.body
        sim = running.simulator
        fields = sim.refund_notify_fields(sim.pay.refund_by_no(running.settings.wechat.mch_id, "rf-why"))
        key = client.api_key
        other_app = sorted(running.services.gateway.appids - {fields["appid"]})[0]  # the Mini Program: ours too
        cases = [
            (_refund_notify(key, fields, out_refund_no="rf-nosuch"), (404, "FAIL", "unknown refund")),
            (build_xml({**fields, "appid": other_app}), (400, "FAIL", "refund belongs to another order")),
            (_refund_notify(key, fields, out_trade_no="OTHERORDER0001"), (400, "FAIL", "refund belongs to another order")),
            (_refund_notify(key, fields, refund_fee="801"), (400, "FAIL", "refund amount mismatch")),
            (_refund_notify(key, fields, refund_status="SOMETHINGNEW"), (400, "FAIL", "unknown refund_status")),
        ]
        for body, expected in cases:
            r = await client.notify(body, path="/notify/refund")
            assert _reply(r) == expected
        assert (await running.services.refunds.get("rf-why")).state == "pending"
        r = await client.notify(build_xml(fields), path="/notify/refund")
        assert _reply(r) == (200, "SUCCESS", "OK")
        # WeChat cannot take a succeeded refund back: a later "closed" for it is a conflict.
        r = await client.notify(_refund_notify(key, fields, refund_status="REFUNDCLOSE"), path="/notify/refund")
        assert _reply(r) == (409, "FAIL", "refund state conflict")
        assert (await running.services.refunds.get("rf-why")).state == "succeeded"
        applied = [a for a in await running.services.audit.latest("refund_notify") if a["verdict"] == "succeeded"]
        assert applied[0]["raw"].startswith("<xml>") and applied[0]["out_refund_no"] == "rf-why"  # proven: kept whole
        assert await _verdicts(running, "refund_notify") == [
            "unknown_refund", "identity_mismatch", "identity_mismatch", "amount_mismatch", "unknown_refund_status", "succeeded",
            "refund_is_succeeded",
        ]
    finally:
        await running.stop(grace=1)


async def test_unproven_notifies_beyond_the_source_s_budget_are_told_they_are_rate_limited(tmp_path):
    """Within the budget a forged notify is refused for its signature (and recorded); beyond it, the
    reply says why it was not even recorded, so an operator reading it knows it was the limiter."""
    running = await start_server(tmp_path, **{"notify.refused_per_minute": 2})
    try:
        client = Client(running)
        _checkout, paid = await client.paid_at_wechat_only(2150)
        forged = client.signed_notify(paid["sim"], key="f" * 32)
        replies = [_reply(await client.notify(forged)) for _ in range(3)]
        assert replies == [(400, "FAIL", "signature error")] * 2 + [(429, "FAIL", "too many unverified notifies")]
        recorded = await running.services.audit.latest("notify", limit=10)
        assert len(recorded) == 2  # the third is only counted
        # Unproven, so only claimed: still, the order it names is kept for whoever looks into it.
        assert [a.get("out_trade_no") for a in recorded] == [paid["out_trade_no"]] * 2
    finally:
        await running.stop(grace=1)


async def test_payment_notify_refusals_before_the_order_is_read_each_say_why(tmp_path):
    """No out_trade_no at all; signed with our key but not with the sign type the order was created
    with (MD5 here); a refund notify from an appid that is none of ours."""
    running, client = await _server(tmp_path)
    try:
        _checkout, paid = await client.paid_at_wechat_only(2400)
        r = await client.notify(client.signed_notify(paid["sim"], out_trade_no=None))
        assert _reply(r) == (400, "FAIL", "missing out_trade_no")
        r = await client.notify(client.signed_notify(paid["sim"], sign_type="HMAC-SHA256"))
        assert _reply(r) == (400, "FAIL", "signature error")
        assert await _verdicts(running) == ["missing_out_trade_no", "bad_signature"]
        r = await client.notify(build_xml({"return_code": "SUCCESS", "appid": "wx0000000000000000",
                                           "mch_id": running.settings.wechat.mch_id, "nonce_str": "n" * 16,
                                           "req_info": "AAAA"}), path="/notify/refund")
        assert _reply(r) == (400, "FAIL", "appid or mch_id mismatch")
        assert (await running.services.orders.require(paid["out_trade_no"])).state == "prepaid"
    finally:
        await running.stop(grace=1)
