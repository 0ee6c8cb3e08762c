"""The checkout page in real headless Chromium against a real sandbox server.

Every path a shopper can take: inside WeChat through the sandbox bridge and
through stubbed WeChat objects (WeixinJSBridge, the JS-SDK's wx), the
desktop QR code, the mobile H5 cashier, and the failure screens. The page's
payloads are checked independently of the server's own signing code paths.

The paths that carry a payload or depend on the API version run on APIv2
and on APIv3 (``sandbox_v3``: RSA payloads, which the page must pass on
unchanged and the sandbox bridge and the simulated WeChat app must pay);
the screens that do not (errors, expiry, a script that fails to load, the
result page's polling) run once, on APIv2.
"""
from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from handlers.i18n import strings
from tests.server.browser import as_json
from tests.server.journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status
from wxpay import signing
from wxpay.simulator import demo
from wxpay.v3.keys import load_public_key
from wxpay.v3.signing import lines_message, rsa_verify

from .conftest import base_of, merchant_for, new_context, start_server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
BOTH_VERSIONS = pytest.mark.parametrize("api_version", ["v2", "v3"])
MERCHANT_PUBLIC_KEY = load_public_key(demo.v3_pem("apiclient_pub.pem"))


def on(api_version: str, sandbox, sandbox_v3):
    """The module's sandbox server of ``api_version``."""
    return sandbox_v3 if api_version == "v3" else sandbox

ZH, EN = strings("zh"), strings("en")
JWEIXIN = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"
FAST = "window.WXPAY_TIMING = {poll: 150, confirm: 1500, recheck: 1500, result: 1500};"

# A stand-in for WeChat's own bridge: defined only when the test says the
# client is ready, it records every payload and answers from a script.
STUB_BRIDGE = """
window.__stub = {calls: [], answers: ["ok", "cancel", "fail", "pay"]};
window.__bridgeReady = function () {
  window.WeixinJSBridge = {invoke: function (name, payload, callback) {
    var answer = window.__stub.answers.shift();
    window.__stub.calls.push({name: name, payload: JSON.parse(JSON.stringify(payload)), answer: answer});
    if (answer === "pay") {  // like the WeChat app: pay, then tell the page "ok"
      fetch("/_wechat/_sim/pay", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({prepay_id: payload["package"].slice(10), outcome: "ok", payload: payload})})
        .then(function (r) { return r.json(); }).then(function (reply) { callback(reply.result); });
      return;
    }
    setTimeout(function () { callback({err_msg: "get_brand_wcpay_request:" + answer}); }, 0);
  }};
  document.dispatchEvent(new Event("WeixinJSBridgeReady"));
};
"""

# What the test serves in place of WeChat's jweixin-1.6.0.js.
STUB_JSSDK = """
window.__sdk = {configs: [], pays: [], ready: [], answers: ["cancel", "pay"]};
window.wx = {
  config: function (c) {
    window.__sdk.configs.push(JSON.parse(JSON.stringify(c)));
    setTimeout(function () { window.__sdk.ready.splice(0).forEach(function (f) { f(); }); }, 0);
  },
  ready: function (f) { window.__sdk.ready.push(f); },
  error: function (f) { window.__sdk.onError = f; },
  chooseWXPay: function (o) {
    var payload = {timestamp: o.timestamp, nonceStr: o.nonceStr, "package": o["package"], signType: o.signType, paySign: o.paySign};
    var answer = window.__sdk.answers.shift();
    window.__sdk.pays.push({payload: payload, keys: Object.keys(o).sort(), answer: answer});
    if (answer === "pay") {
      fetch("/_wechat/_sim/pay", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({prepay_id: payload["package"].slice(10), outcome: "ok", payload: payload})})
        .then(function (r) { return r.json(); }).then(function () { o.success({errMsg: "chooseWXPay:ok"}); });
    } else if (answer === "cancel") { o.cancel({errMsg: "chooseWXPay:cancel"}); }
    else { o.fail({errMsg: "chooseWXPay:fail"}); }
  }
};
"""


async def block_sandbox_bridge(context) -> None:
    """Make the page meet only what a real WeChat client provides (as in live mode)."""

    async def empty(route):
        await route.fulfill(status=200, content_type="application/javascript", body="/* no sandbox bridge */")

    await context.route("**/_sandbox/bridge.js", empty)


async def capture_prepay(page) -> dict:
    """Record the prepay reply the page receives (it may navigate away right after)."""
    captured: dict = {}

    async def handle(route):
        response = await route.fetch()
        captured.update(await response.json())
        await route.fulfill(response=response)

    await page.route("**/prepay", handle)
    return captured


async def screen(page, name: str) -> None:
    await page.wait_for_selector(f"body[data-screen={name}]")


async def open_in_wechat(context, pay_url: str):
    """Open the pay URL in the browser and let it walk the silent OAuth chain."""
    page = await context.new_page()
    hops: list[str] = []
    page.on("request", lambda r: hops.append(r.url) if r.is_navigation_request() else None)
    response = await page.goto(pay_url)
    assert response.status == 200
    assert page.url.split("#")[0] == pay_url  # the browser keeps authorize's #wechat_redirect
    assert any("/_wechat/connect/oauth2/authorize" in h for h in hops) and any("/oauth/callback?" in h for h in hops)
    assert any(c["name"] == "wx_openid" for c in await context.cookies())
    return page


def check_pay_sign(payload: dict, appid: str = demo.OFFICIAL_ACCOUNT_APPID, api_version: str = "v2") -> None:
    """§13.1: paySign over exactly appId, timeStamp, nonceStr, package, signType with the API key;
    APIv3: signType RSA, SHA256withRSA over appId, timeStamp, nonceStr, package (the merchant key)."""
    fields = {
        "appId": payload.get("appId", appid),
        "timeStamp": payload.get("timeStamp", payload.get("timestamp")),
        "nonceStr": payload["nonceStr"],
        "package": payload["package"],
        "signType": payload["signType"],
    }
    assert fields["appId"] == appid
    if api_version == "v3":
        assert fields["signType"] == "RSA"
        lines = lines_message(fields["appId"], fields["timeStamp"], fields["nonceStr"], fields["package"])
        assert rsa_verify(MERCHANT_PUBLIC_KEY, lines, base64.b64decode(payload["paySign"]))
        return
    assert payload["paySign"] == signing.sign(fields, demo.API_KEY, fields["signType"])


@BOTH_VERSIONS
async def test_sandbox_journey_from_pay_url_to_paid_by_clicking(chromium, sandbox, sandbox_v3, api_version):
    sandbox = on(api_version, sandbox, sandbox_v3)
    merchant = merchant_for(sandbox)
    checkout = await create_checkout(merchant, 1234, return_url="https://shop.example.com/orders/42")
    context = await new_context(chromium, "wechat")
    page = await open_in_wechat(context, checkout["pay_url"])
    # Chinese by default: the shop, what is bought, the amount in yuan, one pay button.
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await page.inner_text("#what") == "Green tea"
    assert await page.inner_text("#amount-value") == "12.34"
    assert (await page.inner_text("#pay-button")).strip() == "立即支付"
    await screen(page, "idle")

    await page.click("#pay-button")
    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    assert (await dialog.get_by_role("heading").inner_text()) == "模拟微信支付"
    assert "¥12.34" in await dialog.inner_text()
    await dialog.get_by_role("button", name=ZH["sim_pay"]).click()

    await screen(page, "paid")
    assert await page.inner_text("#screen-paid h2") == ZH["paid_title"]
    # Focus moved to the new screen's heading; the way back is the merchant's URL.
    assert await page.evaluate("document.activeElement.textContent") == ZH["paid_title"]
    assert await page.get_attribute("#back", "href") == "https://shop.example.com/orders/42"
    view = as_json(await merchant.get(f"/api/checkouts/{checkout['id']}", headers=merchant.token_headers))
    assert view["status"] == "paid"
    order = await sandbox.services.orders.require(view["paid_out_trade_no"])
    assert order.sign_type == {"v2": "MD5", "v3": "RSA"}[api_version]
    await context.close()


async def test_sandbox_sheet_cancel_and_fail_lead_to_their_screens(chromium, sandbox):
    checkout = await create_checkout(merchant_for(sandbox), 500)
    context = await new_context(chromium, "wechat", locale="en-US")
    page = await open_in_wechat(context, checkout["pay_url"])
    assert await page.get_attribute("html", "lang") == "en"  # from Accept-Language
    dialog = page.get_by_role("dialog")

    await page.click("#pay-button")
    await dialog.get_by_role("button", name=EN["sim_cancel"]).click()
    await screen(page, "cancelled")
    assert await page.evaluate("document.activeElement.textContent") == EN["cancelled_title"]

    await page.click("#screen-cancelled .pay-again")
    await dialog.get_by_role("button", name=EN["sim_fail"]).click()
    await screen(page, "failed")

    await page.click("#screen-failed .pay-again")
    await dialog.get_by_role("button", name=EN["sim_pay"]).click()
    await screen(page, "paid")
    assert await page.is_visible("#close-hint")  # no return_url: say so instead of a dead link
    await context.close()


@BOTH_VERSIONS
async def test_stubbed_bridge_gets_a_valid_payload_and_ok_is_not_believed(chromium, sandbox, sandbox_v3, api_version):
    sandbox = on(api_version, sandbox, sandbox_v3)
    checkout = await create_checkout(merchant_for(sandbox), 888)
    context = await new_context(chromium, "wechat")
    await block_sandbox_bridge(context)
    await context.add_init_script(FAST + STUB_BRIDGE)
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = await open_in_wechat(context, checkout["pay_url"])

    # The client is not ready yet: the page waits for WeixinJSBridgeReady.
    await page.click("#pay-button")
    await screen(page, "working")
    # A selector, not wait_for_function: the page's CSP forbids eval, which a polled string predicate needs
    # (it failed whenever the title was not there at the first look).
    await page.locator("#working-title", has_text=ZH["working_wechat"]).wait_for()
    await page.evaluate("window.__bridgeReady()")

    # 1. "ok" from the front end, but WeChat never told the server: the page polls, then
    #    says it could not confirm (with "check again"), never "paid".
    await screen(page, "unconfirmed")
    assert await page.is_visible("#screen-unconfirmed .check-again")
    status = as_json(await merchant_for(sandbox).get(f"/pay/{checkout['id']}/status"))
    assert status["status"] == "open"
    # 2. cancel, 3. fail.
    await page.click("#screen-unconfirmed .pay-again")
    await screen(page, "cancelled")
    await page.click("#screen-cancelled .pay-again")
    await screen(page, "failed")
    # 4. the stub pays like the WeChat app, then answers ok: paid once the server says so.
    await page.click("#screen-failed .pay-again")
    await screen(page, "paid")

    calls = await page.evaluate("window.__stub.calls")
    assert [c["answer"] for c in calls] == ["ok", "cancel", "fail", "pay"]
    assert {c["name"] for c in calls} == {"getBrandWCPayRequest"}
    for call in calls:
        payload = call["payload"]
        assert set(payload) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
        assert isinstance(payload["timeStamp"], str) and payload["timeStamp"].isdigit()
        check_pay_sign(payload, api_version=api_version)  # the server's payload, passed on unchanged
    assert len({c["payload"]["package"] for c in calls}) == 1  # one prepay_id, reused
    assert not any(u.startswith("https://res.wx.qq.com") for u in requested)  # no JS-SDK outside JSSDK mode
    await context.close()


@BOTH_VERSIONS
async def test_jssdk_path_loads_jweixin_and_passes_a_signed_config(chromium, tmp_path, api_version):
    running = await start_server(tmp_path, **{"wechat.use_jssdk": True, "wechat.api_version": api_version})
    try:
        checkout = await create_checkout(merchant_for(running), 2500)
        context = await new_context(chromium, "wechat")
        await block_sandbox_bridge(context)
        await context.add_init_script(FAST)
        fetched: list[str] = []

        async def jweixin(route):
            fetched.append(route.request.url)
            await route.fulfill(status=200, content_type="application/javascript", body=STUB_JSSDK)

        await context.route(JWEIXIN, jweixin)
        page = await open_in_wechat(context, checkout["pay_url"])
        assert fetched == []  # loaded only when a payment needs it

        await page.click("#pay-button")
        await screen(page, "cancelled")
        await page.click("#screen-cancelled .pay-again")
        await screen(page, "paid")
        assert fetched == [JWEIXIN]  # once, then reused

        sdk = await page.evaluate("window.__sdk")
        ticket = await running.services.tokens.jsapi_ticket()
        page_url = page.url.split("#")[0]
        for config in sdk["configs"]:
            assert config["appId"] == demo.OFFICIAL_ACCOUNT_APPID and "chooseWXPay" in config["jsApiList"]
            raw = f"jsapi_ticket={ticket}&noncestr={config['nonceStr']}&timestamp={config['timestamp']}&url={page_url}"
            assert config["signature"] == hashlib.sha1(raw.encode()).hexdigest()
        assert [p["answer"] for p in sdk["pays"]] == ["cancel", "pay"]
        for pay in sdk["pays"]:
            assert pay["keys"] == ["cancel", "fail", "nonceStr", "package", "paySign", "signType", "success", "timestamp"]
            # lower-case timestamp in the call, signed as timeStamp with appId
            check_pay_sign(pay["payload"], api_version=api_version)
        await context.close()
    finally:
        await running.stop(grace=2)


@BOTH_VERSIONS
async def test_desktop_shows_the_qr_code_and_a_simulated_scan_pays(chromium, sandbox, sandbox_v3, api_version):
    sandbox = on(api_version, sandbox, sandbox_v3)
    checkout = await create_checkout(merchant_for(sandbox), 4900)
    context = await new_context(chromium, "desktop")
    page = await context.new_page()
    prepay = await capture_prepay(page)
    await page.goto(checkout["pay_url"])
    await screen(page, "qr")
    assert prepay["trade_type"] == "NATIVE" and prepay["code_url"].startswith("weixin://wxpay/")
    await screen(page, "qr")
    qr = page.locator("#qr-img")
    assert await qr.is_visible()
    assert await qr.get_attribute("src") == prepay["qr_svg"]
    assert await qr.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0  # a real, decodable image
    assert (await qr.bounding_box())["width"] >= 200

    await page.click(".sim-scan")
    await page.get_by_role("dialog").get_by_role("button", name=ZH["sim_pay"]).click()
    await screen(page, "paid")
    await context.close()


@BOTH_VERSIONS
async def test_mobile_browser_goes_to_mweb_url_and_the_result_page_asks_the_server(chromium, sandbox, sandbox_v3, api_version):
    sandbox = on(api_version, sandbox, sandbox_v3)
    checkout = await create_checkout(merchant_for(sandbox), 1500)
    context = await new_context(chromium, "mobile")
    page = await context.new_page()
    await page.goto(checkout["pay_url"])
    await screen(page, "idle")
    prepay = await capture_prepay(page)
    await page.click("#pay-button")
    await page.wait_for_url(lambda url: url.startswith(base_of(sandbox) + "/_wechat/_sim/mweb"))
    assert prepay["trade_type"] == "MWEB"
    want, got = urlsplit(prepay["mweb_url"]), urlsplit(page.url)
    assert (got.path, parse_qs(got.query)) == (want.path, parse_qs(want.query))
    assert parse_qs(got.query)["redirect_url"] == [f"{checkout['pay_url']}/result"]

    await page.click("button[value=ok]")  # the simulated H5 cashier, then back to the result page
    await page.wait_for_url(f"{checkout['pay_url']}/result")
    await screen(page, "paid")
    await context.close()


async def test_prepay_failure_shows_a_clear_error_and_retry_works(chromium, sandbox):
    merchant = merchant_for(sandbox)
    checkout = await create_checkout(merchant, 990)
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "pay/unifiedorder", "kind": "http500", "count": None})
    try:
        context = await new_context(chromium, "wechat")
        page = await open_in_wechat(context, checkout["pay_url"])
        await page.click("#pay-button")
        await screen(page, "error")
        assert await page.inner_text("#error-text") == ZH["error_service"]
        assert await page.evaluate("document.activeElement.textContent") == ZH["error_title"]
    finally:
        await merchant.request("DELETE", "/_wechat/_sim/faults")
    await page.click("#retry")
    await page.get_by_role("dialog").get_by_role("button", name=ZH["sim_pay"]).click()
    await screen(page, "paid")
    await context.close()


async def test_expired_checkout_shows_expired_and_no_pay_button(chromium, sandbox):
    checkout = await create_checkout(merchant_for(sandbox), 100)
    past = sandbox.services.now() - timedelta(minutes=1)
    await sandbox.services.store.update_if("checkouts", checkout["id"], {}, {"expires_at": past})
    context = await new_context(chromium, "mobile")
    page = await context.new_page()
    await page.goto(checkout["pay_url"] + "?lang=en")
    await screen(page, "expired")
    assert await page.inner_text("#screen-expired h2") == EN["expired_title"]
    assert not await page.is_visible("#pay-button")
    await context.close()


async def test_page_says_so_when_its_script_does_not_load(chromium, sandbox):
    checkout = await create_checkout(merchant_for(sandbox), 100)
    context = await new_context(chromium, "mobile")
    await context.route("**/static/pay.js*", lambda route: route.abort())
    page = await context.new_page()
    await page.goto(checkout["pay_url"])
    notice = page.locator(".load-failed")
    await notice.wait_for(state="visible")
    assert ZH["loading_failed"] in await notice.inner_text()
    assert await page.is_disabled("#pay-button")
    await context.close()


async def test_paid_checkout_reopened_shows_paid(chromium, sandbox):
    merchant = merchant_for(sandbox)
    checkout = await create_checkout(merchant, 300)
    context = await new_context(chromium, "wechat")
    page = await open_in_wechat(context, checkout["pay_url"])
    await page.click("#pay-button")
    await page.get_by_role("dialog").get_by_role("button", name=ZH["sim_pay"]).click()
    await wait_status(merchant, checkout["id"], "paid")
    await page.goto(checkout["pay_url"])
    await screen(page, "paid")
    assert not await page.is_visible("#pay-button")
    await context.close()


async def test_result_page_asks_the_server_and_does_not_trust_the_return(chromium, sandbox):
    merchant = merchant_for(sandbox)
    checkout = await create_checkout(merchant, 700)
    shopper, _ = await sign_in_with_wechat(base_of(sandbox), checkout["pay_url"])
    payment = await prepay(shopper, checkout["id"])
    context = await new_context(chromium, "mobile")
    await context.add_init_script(FAST)
    page = await context.new_page()
    # Back from the cashier before paying: the page polls, then says it cannot confirm.
    await page.goto(checkout["pay_url"] + "/result")
    await screen(page, "unconfirmed")
    # Paid afterwards: "check again" asks the server, which now says paid.
    await pay_in_simulator(shopper, payment["bridge"])
    await wait_status(merchant, checkout["id"], "paid")
    await page.click("#screen-unconfirmed .check-again")
    await screen(page, "paid")
    await context.close()


@BOTH_VERSIONS
async def test_the_demo_shop_as_the_readme_says_buy_then_pay(chromium, sandbox, sandbox_v3, api_version):
    sandbox = on(api_version, sandbox, sandbox_v3)
    """The README's first instruction: open /, pick a product, pay (desktop: the QR code)."""
    context = await new_context(chromium, "desktop")
    page = await context.new_page()
    await page.goto(base_of(sandbox) + "/")
    products = page.locator(".catalogue li")
    assert await products.count() == len(sandbox.settings.shop.catalogue)
    await products.first.get_by_role("button").click()
    await page.wait_for_url("**/pay/co_*")
    await screen(page, "qr")
    await page.click(".sim-scan")
    await page.get_by_role("dialog").get_by_role("button", name=ZH["sim_pay"]).click()
    await screen(page, "paid")
    checkout_id = page.url.rsplit("/", 1)[1]
    assert (await sandbox.services.checkouts.get(checkout_id)).status == "paid"
    await context.close()
