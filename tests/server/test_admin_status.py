"""/status, /status.json and /metrics over real HTTP, and the sandbox bridge's
absence in live mode.

Admin views are denied by default, count a wrong password (logged without
it; the lockout itself is in test_login_lockout.py), and show the same
figures in all three forms.
"""
from __future__ import annotations

import base64
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

import server
from wxpay import signing
from wxpay.simulator import demo
from wxpay.xmlcodec import build_xml

from .browser import MOBILE_UA, Browser, as_json
from .conftest import start_server
from .journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status
from .live import start_live

ADMIN_PASSWORD = "sandbox-admin"
VIEWS = ("/status", "/status.json", "/metrics")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("admin", ADMIN_PASSWORD)


def metrics(body: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def paid_journey(base_url: str, merchant: Browser, amount: int = 1234) -> dict:
    checkout = await create_checkout(merchant, amount)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    result = await prepay(shopper, checkout["id"])
    await pay_in_simulator(shopper, result["bridge"])
    await wait_status(shopper, checkout["id"], "paid")
    return result


async def test_admin_views_refuse_without_credentials(running, merchant):
    for path in VIEWS:
        r = await merchant.get(path)
        assert r.code == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert r.headers["Cache-Control"] == "no-store"
        assert b"revenue" not in r.body and b"wxpay_" not in r.body
    assert as_json(await merchant.get("/status.json"))["code"] == "admin_auth_required"
    # Another scheme, a malformed header, the merchant API token: all refused.
    for header in ("Bearer sandbox-merchant-token", "Basic !!!", "Basic " + base64.b64encode(b"admin").decode()):
        assert (await merchant.get("/status.json", headers={"Authorization": header})).code == 401


async def test_wrong_password_is_logged_without_it_and_counted(running, merchant, caplog):
    caplog.set_level(logging.WARNING, logger="wxpay_server.admin")
    throttle = running.app.settings["admin_lockout"]
    for n in (1, 2):
        r = await merchant.get("/status.json", headers=basic("admin", "wrong-password-123"))
        assert r.code == 401
        assert throttle.failures("127.0.0.1") == n
    failures = [rec.getMessage() for rec in caplog.records if "admin login failed" in rec.getMessage()]
    assert len(failures) == 2 and "'admin'" in failures[0] and "127.0.0.1" in failures[0]
    assert "wrong-password-123" not in caplog.text
    # The right password gets in and clears the slate for that source.
    assert (await merchant.get("/status.json", headers=ADMIN)).code == 200
    assert throttle.failures("127.0.0.1") == 0


async def test_status_figures_after_payments_in_all_three_views(running, base_url, merchant):
    result = await paid_journey(base_url, merchant, 1234)
    await paid_journey(base_url, merchant, 766)
    # A notify with a bad signature: refused, and its verdict listed.
    order = await running.services.orders.require(result["out_trade_no"])
    forged = {"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": order.appid, "mch_id": order.mch_id,
              "nonce_str": signing.make_nonce(), "out_trade_no": order.out_trade_no, "total_fee": 1234,
              "transaction_id": "4200000000202601019999999999", "time_end": "20260101120000"}
    forged["sign"] = signing.sign(forged, "0" * 32, "MD5")
    assert (await merchant.post("/notify/pay", body=build_xml(forged))).code == 400
    await running.services.tokens.jsapi_ticket()  # cache a token and a ticket
    await running.services.reconciler.run_once()

    figures = as_json(await merchant.get("/status.json", headers=ADMIN))
    assert figures["mode"] == "sandbox" and figures["version"] == server.VERSION and figures["uptime_s"] >= 0
    assert figures["store"]["backend"] == "sqlite" and figures["store"]["ok"] and figures["store"]["rtt_ms"] >= 0
    today = figures["orders_today"]
    assert today["by_state"]["paid"] == 2 and today["total"] == 2 and today["revenue_fen"] == 2000
    assert figures["latest_orders"][1]["out_trade_no"] == result["out_trade_no"]  # newest first
    verdicts = [n["verdict"] for n in figures["latest_notifies"]]
    assert verdicts[0] == "bad_signature" and verdicts.count("paid") == 2
    assert all("raw" not in n for n in figures["latest_notifies"])
    endpoints = {e["endpoint"]: e for e in figures["wechat"]}
    assert endpoints["unifiedorder"]["recent_calls"] == 2 and endpoints["unifiedorder"]["success_rate"] == 1.0
    assert endpoints["orderquery"]["calls_total"] >= 2
    assert {"cgi-bin/token", "cgi-bin/ticket/getticket"} <= set(endpoints)
    assert 0 < figures["tokens"]["jsapi_ticket"]["expires_in_s"] <= 7200
    assert 0 < figures["tokens"]["access_token"]["expires_in_s"] <= 7200
    assert figures["reconciler"]["last"]["ran"] is True and figures["reconciler"]["enabled"] is False
    buckets = figures["chart"]["buckets"]
    assert len(buckets) == 12 and sum(b["orders"] for b in buckets) == 2
    assert sum(b["notifies"] for b in buckets) == 3 and sum(b["notifies_refused"] for b in buckets) == 1

    page = await merchant.get("/status", headers=ADMIN)
    assert page.code == 200 and page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    html = page.body.decode()
    for text in ("SANDBOX", "¥20.00", result["out_trade_no"], "bad_signature", "unifiedorder", "100.0%", "<svg", "jsapi_ticket"):
        assert text in html, text

    scraped = metrics((await merchant.get("/metrics", headers=ADMIN)).body)
    assert scraped[("wxpay_orders_today", (("state", "paid"),))] == 2
    assert scraped[("wxpay_revenue_today_fen", ())] == 2000
    assert scraped[("wxpay_wechat_calls_total", (("endpoint", "unifiedorder"), ("outcome", "ok")))] == 2
    notify = (("endpoint", "notify"),)
    assert scraped[("wxpay_notifies_total", notify + (("result", "refused"), ("verdict", "bad_signature"),
                                                      ("verified", "no")))] == 1
    assert scraped[("wxpay_notifies_total", notify + (("result", "accepted"), ("verdict", "paid"),
                                                      ("verified", "yes")))] == 2
    assert scraped[("wxpay_payments_confirmed_total", (("via", "notify"),))] == 2
    # Both series exist from the start: an alert on the reconciler's confirmations sees 0, not no data.
    assert scraped[("wxpay_payments_confirmed_total", (("via", "reconciler"),))] == 0
    assert figures["payments_confirmed"] == {"notify": 2, "reconciler": 0}
    assert scraped[("wxpay_store_up", ())] == 1
    assert scraped[("wxpay_info", (("mode", "sandbox"), ("store", "sqlite"), ("version", server.VERSION)))] == 1


async def test_each_app_has_its_own_metrics_registry(running, base_url, merchant, tmp_path):
    await paid_journey(base_url, merchant)
    other = await start_server(tmp_path / "other")
    try:
        client = Browser(f"http://127.0.0.1:{other.port}")
        mine = metrics((await merchant.get("/metrics", headers=ADMIN)).body)
        theirs = metrics((await client.get("/metrics", headers=ADMIN)).body)
        assert mine[("wxpay_orders_today", (("state", "paid"),))] == 1
        assert theirs[("wxpay_orders_today", (("state", "paid"),))] == 0
        assert running.app.settings["metrics"].registry is not other.app.settings["metrics"].registry
    finally:
        await other.stop(grace=1)


async def test_status_still_answers_when_the_store_is_down(running, merchant):
    await running.services.store.close()
    figures = as_json(await merchant.get("/status.json", headers=ADMIN))
    location = running.services.store.location
    assert figures["store"] == {"backend": "sqlite", "location": location, "ok": False, "error": "store_unavailable"}
    assert figures["orders_today"] == {"error": "store_unavailable"}
    assert figures["latest_orders"] == {"error": "store_unavailable"}
    page = await merchant.get("/status", headers=ADMIN)
    assert page.code == 200 and b"down" in page.body
    scraped = metrics((await merchant.get("/metrics", headers=ADMIN)).body)
    assert scraped[("wxpay_store_up", ())] == 0


async def test_sandbox_bridge_is_served_and_included_only_in_sandbox(running, merchant, tmp_path):
    checkout = await create_checkout(merchant)
    phone = Browser(merchant.base, MOBILE_UA)
    page = (await phone.get(checkout["pay_url"])).body.decode()
    assert '<script src="/_sandbox/bridge.js"></script>' in page
    r = await phone.get("/_sandbox/bridge.js")
    assert r.code == 200 and r.headers["Content-Type"].startswith("application/javascript")
    assert b"window.WeixinJSBridge" in r.body
    assert (await phone.get("/_sandbox/bridge.css")).code == 200
    assert (await phone.get("/_sandbox/other.js")).code == 404

    live = await start_live(tmp_path, **{"admin.password": "a-long-live-password"})
    try:
        checkout, _ = await live.services.checkouts.create({"amount_fen": 100, "description": "Tea"})
        client = Browser(f"http://127.0.0.1:{live.port}", MOBILE_UA)
        page = await client.get(f"/pay/{checkout.id}")
        assert page.code == 200 and b"Tea" in page.body
        assert b"/_sandbox/" not in page.body and b"WeixinSandbox" not in page.body
        assert b'"sandbox": false' in page.body and b'"simulatorBase": null' in page.body
        for asset in ("bridge.js", "bridge.css"):
            assert (await client.get(f"/_sandbox/{asset}")).code == 404
        assert (await client.get("/static/bridge.js")).code == 404
        assert (await client.get("/status.json", headers=basic("admin", "a-long-live-password"))).code == 200
        assert (await client.get("/status.json", headers=basic("admin", "sandbox-admin"))).code == 401
    finally:
        await live.stop(grace=1)


async def test_no_admin_password_means_nobody_gets_in(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="wxpay_server.admin")
    live = await start_live(tmp_path)
    try:
        assert live.settings.admin.password is None
        client = Browser(f"http://127.0.0.1:{live.port}")
        for header in (basic("admin", ""), basic("", ""), basic("admin", "None")):
            assert (await client.get("/status.json", headers=header)).code == 401
        assert "no admin.password is configured" in caplog.text
    finally:
        await live.stop(grace=1)


@pytest.mark.parametrize("lang,accept,want", [
    (None, None, "zh-CN"),
    ("en", "zh-CN", "en"),
    (None, "en-GB,en;q=0.9", "en"),
    (None, "fr-FR,zh-TW;q=0.8,en;q=0.5", "zh-CN"),
])
async def test_page_language_from_query_or_accept_language(running, merchant, lang, accept, want):
    checkout = await create_checkout(merchant)
    phone = Browser(merchant.base, MOBILE_UA)
    url = checkout["pay_url"] + (f"?lang={lang}" if lang else "")
    page = await phone.get(url, headers={"Accept-Language": accept} if accept else None)
    assert f'<html lang="{want}"'.encode() in page.body
    assert "Accept-Language" in page.headers["Vary"]


async def test_page_config_cannot_break_out_of_its_script_tag(tmp_path):
    name = "</script><script>alert(1)</script><!--"
    other = await start_server(tmp_path, **{"shop.name": name})
    try:
        merchant = Browser(f"http://127.0.0.1:{other.port}")
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]
        checkout = await create_checkout(merchant)
        body = (await Browser(merchant.base, MOBILE_UA).get(checkout["pay_url"])).body.decode()
        config = body.split('<script id="page-config" type="application/json">', 1)[1].split("</script>", 1)[0]
        assert "<" not in config and json.loads(config)["shopName"] == name
        assert "<script>alert(1)" not in body and "&lt;/script&gt;" in body
    finally:
        await other.stop(grace=1)


async def test_demo_api_key_never_reaches_the_page(running, merchant):
    checkout = await create_checkout(merchant)
    phone = Browser(merchant.base, MOBILE_UA)
    body = (await phone.get(checkout["pay_url"])).body.decode()
    assert demo.API_KEY not in body and demo.OFFICIAL_ACCOUNT_SECRET not in body
