"""What only an APIv3 server has, over real HTTP against the mounted simulator.

WeChat's SIGNTEST probes (refused non-2xx, counted apart, never an alarm),
the notify's order query bounded inside WeChat's 5 s, the platform
certificates downloaded at start and kept in the store, the gray switch,
and what /status and /metrics say about the keys.
"""
from __future__ import annotations

import json

from service.models import AUDIT, TRUST
from wxpay.simulator import demo

from .browser import as_json
from .conftest import BOTH_VERSIONS, start_server
from .journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status
from .payments import Receiver, native_prepay, paid_checkout, refund, scan_and_pay, wait_for, wait_refund, \
    webhook_overrides
from .test_admin_status import ADMIN, metrics
from .versions import FAULT_ENDPOINTS, payment_notify, post_notify, refused


async def notifies(running, kind: str = "notify") -> list[dict]:
    return await running.services.audit.latest(kind, limit=50)


async def fault(merchant, **body) -> None:
    r = await merchant.post("/_wechat/_sim/faults", json_body=body)
    assert r.code == 200, r.body


async def v3_server(tmp_path, **overrides):
    return await start_server(tmp_path, **{"wechat.api_version": "v3", **overrides})


def api(running):
    from .browser import Browser

    b = Browser(f"http://127.0.0.1:{running.port}")
    b.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]
    return b


async def test_a_signtest_probe_is_refused_counted_apart_and_not_an_alarm(tmp_path):
    running = await v3_server(tmp_path)
    try:
        merchant = api(running)
        await fault(merchant, endpoint="notify", kind="signtest", count=1)
        await fault(merchant, endpoint="refund_notify", kind="signtest", count=1)
        checkout = await paid_checkout(merchant, merchant.base, 800)  # the probe went first, then the real notify
        assert (await refund(merchant, checkout["id"], {"amount_fen": 800, "out_refund_no": "probe-r"})).code == 201
        await wait_refund(merchant, checkout["id"], "probe-r", "succeeded")
        # WeChat's record of our answers: the probe refused (non-2xx), the real one 204.
        sim = as_json(await merchant.get("/_wechat/_sim/notifies?kind=pay"))["deliveries"][0]
        assert [(a["verdict"], a["status"]) for a in sim["attempts"]] == [("probe_rejected", 400), ("success", 204)]
        # Counted apart; never recorded, never in the refusals that sum up an attack.
        status = as_json(await merchant.get("/status.json", headers=ADMIN))
        assert status["wechat_pay"]["signtest_probes"] == 2
        assert status["notify_limiter"]["signtest_probes"] == {"notify": 1, "refund_notify": 1}
        assert status["notify_limiter"]["refused_unverified"] == {}
        assert [n["verdict"] for n in await notifies(running)] == ["paid"]
        assert [n["verdict"] for n in await notifies(running, "refund_notify")] == ["succeeded"]
        scraped = metrics((await merchant.get("/metrics", headers=ADMIN)).body)
        assert scraped[("wxpay_notify_signtest_probes_total", (("endpoint", "notify"),))] == 1
        page = await merchant.get("/status", headers=ADMIN)
        assert b"2 signature probe(s) refused" in page.body
    finally:
        await running.stop(grace=1)


@BOTH_VERSIONS
async def test_the_notify_s_order_query_is_bounded_and_unfinished_means_a_retry(tmp_path, api_version):
    """WeChat waits 5 s for an answer: a query slower than notify.confirm_timeout_s is
    given up, the notify refused (WeChat retries), and the retry confirms the payment."""
    running = await start_server(tmp_path, **{"wechat.api_version": api_version, "notify.confirm_timeout_s": 0.5})
    try:
        merchant = api(running)
        checkout = await create_checkout(merchant, 990)
        desktop, result = await native_prepay(merchant.base, checkout["id"])
        no = result["out_trade_no"]
        query = FAULT_ENDPOINTS[api_version]["query"]
        await fault(merchant, endpoint=query, kind="latency", seconds=3, count=1)
        await scan_and_pay(desktop, result["code_url"])
        await wait_status(desktop, checkout["id"], "paid")
        assert sorted(n["verdict"] for n in await notifies(running)) == ["paid", "query_failed_wechat_timeout"]
        attempts = as_json(await merchant.get("/_wechat/_sim/notifies?kind=pay"))["deliveries"][0]["attempts"]
        assert [a["status"] for a in attempts] == [503, {"v2": 200, "v3": 204}[api_version]]
        assert (await running.services.orders.require(no)).paid_via == "notify"
    finally:
        await running.stop(grace=1)


async def test_a_notify_of_a_version_without_keys_is_refused_in_its_own_form(running, merchant, base_url):
    """An APIv2 server with no APIv3 key cannot prove an APIv3 notify: refused
    (JSON, non-2xx, WeChat retries; the reconciler's query still confirms the order)."""
    body = json.dumps({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource": {}}).encode()
    r = await merchant.post("/notify/pay", body=body, headers={"Content-Type": "application/json",
                                                              "Wechatpay-Serial": demo.PUBLIC_KEY_ID})
    assert refused("v3", r, 400) and json.loads(r.body)["message"] == "APIv3 is not configured here"
    (record,) = await notifies(running)
    assert (record["verdict"], record["api_version"], record["verified"]) == ("api_version_not_configured", "v3", False)
    assert "raw" not in record  # unproven: a digest only
    # A refund notify of that version alike.
    r = await merchant.post("/notify/refund", body=body, headers={"Content-Type": "application/json",
                                                                 "Wechatpay-Serial": demo.PUBLIC_KEY_ID})
    assert refused("v3", r, 400) and json.loads(r.body)["message"] == "APIv3 is not configured here"
    (record,) = await notifies(running, "refund_notify")
    assert (record["verdict"], record["api_version"], record["verified"]) == ("api_version_not_configured", "v3", False)


async def test_platform_certificates_are_downloaded_at_start_and_kept_in_the_store(tmp_path):
    running = await v3_server(tmp_path, **{"wechat.platform_certificates": True})
    try:
        merchant = api(running)
        stored = await running.services.store.get(TRUST, f"v3:{demo.MCH_ID}")
        assert stored is not None and len(stored["state"]["certificates"]) == 1
        assert "PRIVATE" not in json.dumps(stored["state"])
        checkout = await paid_checkout(merchant, merchant.base, 500)  # notifies signed with the platform certificate
        (record,) = await notifies(running)
        assert json.loads(record["raw"])["wechatpay_serial"] == demo.PLATFORM_SERIAL_NO
        assert (await refund(merchant, checkout["id"], {"amount_fen": 500, "out_refund_no": "pc-r"})).code == 201
        await wait_refund(merchant, checkout["id"], "pc-r", "succeeded")
        pay = as_json(await merchant.get("/status.json", headers=ADMIN))["wechat_pay"]
        v3 = pay["gateways"]["v3"]
        assert (pay["api_version"], v3["key_mode"], v3["public_key_id"]) == ("v3", "platform_cert", None)
        (cert,) = v3["platform_certificates"]
        assert cert["serial_no"] == demo.PLATFORM_SERIAL_NO and cert["not_after"].startswith("2030-01-01")
        assert cert["expires_in_days"] > 0
        scraped = metrics((await merchant.get("/metrics", headers=ADMIN)).body)
        key = ("wxpay_wechat_certificate_expiry_timestamp_seconds",
               (("kind", "platform"), ("serial_no", demo.PLATFORM_SERIAL_NO)))
        assert scraped[key] == 1893456000.0  # 2030-01-01 00:00 UTC
        (info,) = [dict(labels) for name, labels in scraped
                   if name == "wxpay_wechat_pay_api_info" and dict(labels)["role"] == "orders"]
        assert (info["api_version"], info["key_mode"], info["public_key_id"]) == ("v3", "platform_cert", "")
    finally:
        await running.stop(grace=1)


async def test_during_the_gray_switch_both_keys_verify(tmp_path):
    """Gray mode: the public key and the platform certificate both trusted; WeChat
    signs each notify with one or the other (here: half and half, seeded)."""
    running = await v3_server(tmp_path, **{"wechat.platform_certificates": True,
                                           "wechat.wechatpay_public_key_id": demo.PUBLIC_KEY_ID,
                                           "wechat.wechatpay_public_key_path": str(demo.V3_DIR / "wechatpay_pub_key.pem")})
    try:
        merchant = api(running)
        r = await merchant.post(f"/_wechat/_sim/v3/merchants/{demo.MCH_ID}",
                                json_body={"key_mode": "gray", "gray_share": 0.5, "gray_seed": 7})
        assert r.code == 200, r.body
        for amount in range(101, 109):
            await paid_checkout(merchant, merchant.base, amount)
        serials = {json.loads(n["raw"])["wechatpay_serial"] for n in await notifies(running)}
        assert serials == {demo.PUBLIC_KEY_ID, demo.PLATFORM_SERIAL_NO}
        v3 = as_json(await merchant.get("/status.json", headers=ADMIN))["wechat_pay"]["gateways"]["v3"]
        assert v3["key_mode"] == "gray" and v3["public_key_id"] == demo.PUBLIC_KEY_ID
        assert [c["serial_no"] for c in v3["platform_certificates"]] == [demo.PLATFORM_SERIAL_NO]
    finally:
        await running.stop(grace=1)


@BOTH_VERSIONS
async def test_status_and_metrics_say_which_api_and_which_keys(running, merchant, api_version):
    pay = as_json(await merchant.get("/status.json", headers=ADMIN))["wechat_pay"]
    # Sandbox: the demo merchant has both; the configured version places orders, and
    # APIv2's notifies are read under APIv3 (its key is there), not the reverse.
    assert pay["api_version"] == api_version
    assert pay["notify_versions"] == {"v2": ["v2"], "v3": ["v3", "v2"]}[api_version]
    mine = pay["gateways"][api_version]
    if api_version == "v3":
        assert (mine["key_mode"], mine["public_key_id"], mine["merchant_serial_no"]) == \
            ("public_key", demo.PUBLIC_KEY_ID, demo.MERCHANT_SERIAL_NO)
    else:
        assert mine == {"api_version": "v2", "mch_id": demo.MCH_ID, "sign_type": "MD5"}
    text = json.dumps(pay)
    assert demo.API_KEY not in text and demo.APIV3_KEY not in text and "PRIVATE" not in text
    scraped = metrics((await merchant.get("/metrics", headers=ADMIN)).body)
    roles = {(dict(labels)["api_version"], dict(labels)["role"]) for (name, labels) in scraped
             if name == "wxpay_wechat_pay_api_info"}
    assert ("%s" % api_version, "orders") in roles and (api_version, "notifies") in roles
    page = await merchant.get("/status", headers=ADMIN)
    assert f"API{api_version}".encode() in page.body


async def test_an_apiv3_notify_forged_in_bulk_costs_a_digest_each_and_never_reaches_the_store(tmp_path):
    """Unproven APIv3 notifies are refused before any store lookup and audited by digest
    only, within the limiter's budget; a proven one is never limited."""
    running = await v3_server(tmp_path, **{"notify.refused_per_minute": 3, "notify.refused_per_minute_total": 3})
    try:
        merchant = api(running)
        checkout = await create_checkout(merchant, 700)
        shopper, _ = await sign_in_with_wechat(merchant.base, checkout["pay_url"])
        result = await prepay(shopper, checkout["id"])
        await fault(merchant, endpoint="notify", kind="drop", count=None)
        await pay_in_simulator(shopper, result["bridge"])
        forged = payment_notify(running, "v3", result["out_trade_no"], forged=True)
        codes = [(await post_notify(merchant, "/notify/pay", forged)).code for _ in range(6)]
        assert codes == [400, 400, 400, 429, 429, 429]
        records = await running.services.store.find(AUDIT, {"kind": "notify"}, limit=0)
        assert len(records) == 3 and all("raw" not in r and r["verdict"] == "bad_signature" for r in records)
        genuine = await post_notify(merchant, "/notify/pay", payment_notify(running, "v3", result["out_trade_no"]))
        assert genuine.code == 204  # over the budget, and still accepted: it is proven
        await wait_status(shopper, checkout["id"], "paid")
    finally:
        await running.stop(grace=1)


async def test_the_merchant_s_webhook_follows_an_apiv3_payment(tmp_path):
    receiver = Receiver()
    running = await v3_server(tmp_path, **webhook_overrides(receiver))
    try:
        merchant = api(running)
        checkout = await paid_checkout(merchant, merchant.base, 300)

        async def delivered() -> bool:
            return receiver.successes() == {f"ev_{checkout['id'][3:]}_paid": 1}

        await wait_for(delivered)
    finally:
        await running.stop(grace=1)
        receiver.stop()
