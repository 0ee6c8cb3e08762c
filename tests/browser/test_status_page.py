"""/status in a real browser: refused without credentials, the figures with them;
and in live mode the page has no sandbox bridge at all."""
from __future__ import annotations

import pytest
from playwright.async_api import Error as PlaywrightError

from tests.server.browser import DESKTOP_UA
from tests.server.browser import Browser as HttpBrowser
from tests.server.journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status
from tests.server.live import start_live

from .conftest import ADMIN, base_of, merchant_for, new_context

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def test_status_refuses_without_credentials_and_shows_figures_with_them(chromium, sandbox):
    merchant = merchant_for(sandbox)
    checkout = await create_checkout(merchant, 1234)
    shopper, _ = await sign_in_with_wechat(base_of(sandbox), checkout["pay_url"])
    result = await prepay(shopper, checkout["id"])
    await pay_in_simulator(shopper, result["bridge"])
    await wait_status(shopper, checkout["id"], "paid")

    # No credentials: a 401 Basic challenge, which the browser cannot answer.
    anonymous = await new_context(chromium, "desktop")
    page = await anonymous.new_page()
    seen: list = []
    page.on("response", lambda r: seen.append((r.status, r.headers.get("www-authenticate", ""))))
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        await page.goto(base_of(sandbox) + "/status")
    assert [(status, header.split(" ")[0]) for status, header in seen] == [(401, "Basic")]
    await anonymous.close()
    # Wrong credentials: refused too (and counted against this source).
    wrong = await new_context(chromium, "desktop", http_credentials={"username": "admin", "password": "nope"})
    page = await wrong.new_page()
    response = await page.goto(base_of(sandbox) + "/status")
    assert response.status == 401 and await page.locator("#tile-today").count() == 0
    assert sandbox.app.settings["admin_lockout"].failures("127.0.0.1") >= 1
    await wrong.close()

    admin = await new_context(chromium, "desktop", http_credentials=ADMIN)
    page = await admin.new_page()
    response = await page.goto(base_of(sandbox) + "/status")
    assert response.status == 200
    assert await page.inner_text("h1") == "wxpay-server status"
    assert await page.inner_text(".mode") == "SANDBOX"
    assert "¥12.34" in await page.inner_text("#tile-today")
    assert "sqlite" in await page.inner_text("#tile-store")
    assert result["out_trade_no"] in await page.inner_text("#orders")
    assert "paid" in await page.inner_text("#notifies")
    row = page.locator("#wechat tr", has_text="unifiedorder")
    assert "100.0%" in await row.inner_text()
    chart = page.locator("svg.chart")
    assert await chart.is_visible() and (await chart.bounding_box())["width"] > 300
    assert "1 orders, 1 notifies" in await chart.get_attribute("aria-label")
    await admin.close()


async def test_live_mode_page_has_no_sandbox_bridge(chromium, tmp_path):
    live = await start_live(tmp_path)
    try:
        checkout, _ = await live.services.checkouts.create({"amount_fen": 4200, "description": "Tea"})
        context = await new_context(chromium, "mobile")
        requested: list[str] = []
        context.on("request", lambda r: requested.append(r.url))
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{live.port}/pay/{checkout.id}")
        await page.wait_for_selector("body[data-screen=idle]")
        assert await page.inner_text("#amount-value") == "42.00"
        assert await page.evaluate("[typeof WeixinJSBridge, typeof wx, typeof WeixinSandbox]") == ["undefined"] * 3
        assert not any("/_sandbox/" in u for u in requested)
        assert await page.locator(".badge").count() == 0
        response = await page.goto(f"http://127.0.0.1:{live.port}/_sandbox/bridge.js")
        assert response.status == 404
        await context.close()
    finally:
        await live.stop(grace=1)


async def test_the_wechat_calls_panel_says_why_at_phone_and_desktop_sizes(chromium, sandbox):
    """(Last in this module: it makes the shared server's unifiedorder fail once.)"""
    merchant = merchant_for(sandbox)
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "pay/unifiedorder", "kind": "http500", "count": 1})
    checkout = await create_checkout(merchant, 600)
    desktop = HttpBrowser(base_of(sandbox), DESKTOP_UA)
    await desktop.get(f"/pay/{checkout['id']}")
    assert (await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)).code == 502

    for kind in ("mobile", "desktop"):
        admin = await new_context(chromium, kind, http_credentials=ADMIN)
        page = await admin.new_page()
        assert (await page.goto(base_of(sandbox) + "/status")).status == 200
        causes = page.locator("#wechat-causes li", has_text="http_500")
        assert await causes.is_visible()
        assert "WeChat (or a proxy in the way) answered HTTP 500" in await causes.inner_text()
        row = page.locator("#wechat-failures tbody tr").first
        await row.scroll_into_view_if_needed()
        assert await row.is_visible()
        text = await row.inner_text()
        assert "unifiedorder" in text and "http_500" in text and f"127.0.0.1:{sandbox.port}" in text
        last = page.locator("#wechat tr", has_text="unifiedorder").locator(".cause")
        assert await last.inner_text() == "http_500" and "500" in await last.get_attribute("title")
        # The tables scroll inside their own boxes: the page itself never scrolls sideways.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), kind
        await admin.close()
