"""What shoppers see besides the checkout's own screens, in real headless Chromium
at a phone's and a desktop's size: the error pages (a pay link that does not
exist, a WeChat sign-in that failed, too many sign-ins, WeChat away), the
simulated H5 cashier, and a checkout refunded in part or in full.

Every page is checked under the CSP it is served with: its stylesheet
applies, it has no script or inline style, Chromium reports no violation,
and nothing overflows the phone's width.
"""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from handlers.base import PAGE_CSP
from handlers.i18n import strings
from tests.server.browser import WECHAT_UA, Browser, as_json
from tests.server.journey import create_checkout, wait_status
from tests.server.payments import paid_checkout, refund, wait_refund
from wxpay.simulator import cashier

from .conftest import DESKTOP, base_of, merchant_for, new_context

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

ZH, EN = strings("zh"), strings("en")
SIZES = ["phone", "desktop"]
FAST = "window.WXPAY_TIMING = {poll: 150, confirm: 1500, recheck: 1500, result: 1500};"


async def open_page(context, size: str):
    page = await context.new_page()
    if size == "desktop":
        await page.set_viewport_size(DESKTOP)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.violations = violations  # type: ignore[attr-defined]
    return page


async def check_under_csp(page, response, csp: str) -> None:
    """Served with ``csp``; styled by its own stylesheet; no script, no inline style, no violation;
    nothing wider than the window."""
    assert response.headers["content-security-policy"] == csp
    facts = await page.evaluate("""() => ({
        scripts: document.scripts.length,
        inlineStyles: document.querySelectorAll('[style], style').length,
        sheets: document.styleSheets.length,
        rules: Array.from(document.styleSheets).reduce((n, s) => n + s.cssRules.length, 0),
        overflow: document.documentElement.scrollWidth - window.innerWidth,
    })""")
    assert facts["scripts"] == 0 and facts["inlineStyles"] == 0, facts
    assert facts["sheets"] == 1 and facts["rules"] > 10, facts  # the stylesheet loaded under the CSP
    assert facts["overflow"] <= 0, facts
    assert page.violations == []


# -- error pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_a_pay_link_that_does_not_exist_says_so_in_the_shoppers_language(chromium, sandbox, size):
    missing = base_of(sandbox) + "/pay/co_000000000000000000000000"
    for locale, query, t in (("zh-CN", "", ZH), ("zh-CN", "?lang=en", EN), ("en-US", "", EN)):
        context = await new_context(chromium, "wechat" if size == "phone" else "desktop", locale=locale)
        page = await open_page(context, size)
        response = await page.goto(missing + query)
        assert response.status == 404
        await check_under_csp(page, response, PAGE_CSP)
        assert await page.get_attribute("html", "lang") == t["html_lang"]
        assert await page.inner_text("h1") == t["err_not_found_title"]
        assert await page.inner_text("#error-text") == t["err_not_found_text"]
        assert await page.inner_text("#error-code") == "checkout_not_found"  # small, for support
        assert await page.inner_text(".merchant") == sandbox.settings.shop.name
        assert "No checkout with this id" not in await page.content()  # the API's words stay in the API
        box = await page.locator(".screen").bounding_box()
        assert box["width"] <= 480 + 1 and box["x"] >= 0  # one column, centred on a desktop
        await context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_a_failed_wechat_sign_in_offers_the_pay_page_again(chromium, sandbox, size):
    merchant = merchant_for(sandbox)
    checkout = await create_checkout(merchant, 800)
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "sns/oauth2/access_token", "kind": "http500"})
    context = await new_context(chromium, "wechat")
    page = await open_page(context, size)
    response = await page.goto(checkout["pay_url"])
    assert response.status == 502 and "/oauth/callback?" in page.url
    await check_under_csp(page, response, PAGE_CSP)
    assert await page.inner_text("h1") == ZH["err_unavailable_title"]
    action = page.locator("#error-action")
    assert await action.inner_text() == ZH["err_signin_action"]
    assert await action.get_attribute("href") == f"/pay/{checkout['id']}"  # never the callback (its code is spent)
    await action.click()  # the fault was one-shot: this sign-in goes through
    await page.wait_for_selector("body[data-screen=idle]")
    assert page.url.split("#")[0] == checkout["pay_url"]
    await context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_too_many_sign_ins_says_how_long_to_wait(chromium, sandbox, size):
    checkout = await create_checkout(merchant_for(sandbox), 800)
    quota = sandbox.services.oauth.quota
    # The quota's clock held in the middle of the current window, so both sign-ins below count in
    # the same one (a real clock could cross into the next window between them).
    seconds = quota.window.total_seconds()
    middle = datetime.fromtimestamp(math.floor(time.time() / seconds) * seconds + seconds / 2, timezone.utc)
    saved = quota.limit, quota.now
    quota.limit, quota.now = 1, (lambda: middle)
    try:
        await Browser(base_of(sandbox), WECHAT_UA).follow(checkout["pay_url"])  # the window's one sign-in, if free
        context = await new_context(chromium, "wechat", locale="en-US")
        page = await open_page(context, size)
        response = await page.goto(checkout["pay_url"])
    finally:
        quota.limit, quota.now = saved
    assert response.status == 429
    await check_under_csp(page, response, PAGE_CSP)
    assert response.headers["retry-after"] == str(int(seconds / 2))
    assert await page.inner_text("h1") == EN["err_busy_title"]
    assert await page.inner_text("#error-text") == f"Please wait {int(seconds / 120)} minutes and try again."
    assert await page.inner_text("#error-code") == "too_many_sign_ins"
    await page.click("#error-action")  # the way back is the pay page, which signs in afresh
    await page.wait_for_selector("body[data-screen=idle]")
    await context.close()


# -- the simulated H5 cashier -------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_h5_cashier_looks_like_the_sheet_and_its_three_buttons_work(chromium, sandbox, size):
    merchant = merchant_for(sandbox)
    checkout = await create_checkout(merchant, 1500, description="明前龙井 Green tea 100g")
    context = await new_context(chromium, "mobile")
    await context.add_init_script(FAST)
    page = await open_page(context, size)
    await page.goto(checkout["pay_url"])
    for outcome, label, after in (("cancel", ZH["sim_cancel"], "unconfirmed"), ("fail", ZH["sim_fail"], "unconfirmed"),
                                  ("ok", ZH["sim_pay"], "paid")):
        button = "#pay-button" if outcome == "cancel" else "#screen-unconfirmed .pay-again"
        async with page.expect_navigation(url=lambda url: "/_wechat/_sim/mweb" in url) as nav:
            await page.click(button)
        response = await nav.value
        await check_under_csp(page, response, cashier.CSP)
        sheet = page.get_by_role("main")
        assert await sheet.get_by_role("heading").inner_text() == cashier.TEXTS["zh"]["title"]
        assert await page.inner_text(".merchant") == sandbox.settings.shop.name  # the H5 site's name
        assert await page.inner_text(".amount") == "¥15.00"
        assert await page.inner_text(".what") == f"{sandbox.settings.shop.name}-明前龙井 Green tea 100g"
        assert await page.inner_text(".badge") == "SANDBOX"
        for name in (ZH["sim_pay"], ZH["sim_cancel"], ZH["sim_fail"]):  # the sheet's words, the sheet's buttons
            assert await sheet.get_by_role("button", name=name, exact=True).is_visible()
        box = await page.locator(".sheet").bounding_box()
        assert box["width"] <= 480 + 1 and box["y"] + box["height"] <= (await page.evaluate("innerHeight")) + 1
        await sheet.get_by_role("button", name=label, exact=True).click()
        await page.wait_for_url(f"{checkout['pay_url']}/result")
        await page.wait_for_selector(f"body[data-screen={after}]")
    await wait_status(merchant, checkout["id"], "paid")
    await context.close()


async def test_the_h5_cashier_speaks_english_to_an_english_browser_and_refuses_in_wechats_words(chromium, sandbox):
    checkout = await create_checkout(merchant_for(sandbox), 990)
    context = await new_context(chromium, "mobile", locale="en-US")
    page = await open_page(context, "phone")
    await page.goto(checkout["pay_url"])
    async with page.expect_navigation(url=lambda url: "/_wechat/_sim/mweb" in url):
        await page.click("#pay-button")
    assert await page.get_by_role("heading").inner_text() == cashier.TEXTS["en"]["title"]
    assert await page.get_by_role("button", name=cashier.TEXTS["en"]["pay"], exact=True).is_visible()
    cashier_url = page.url
    other = await open_page(context, "phone")
    response = await other.goto(cashier_url)  # typed in: no Referer, as WeChat refuses it (§13.6)
    await check_under_csp(other, response, cashier.CSP)
    assert response.headers["x-sim-error"] == "NO_REFERER"
    assert await other.inner_text(".refusal") == "商家参数格式有误，请联系商家解决"
    assert await other.get_by_role("button").count() == 0
    await context.close()


# -- refunded --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_a_refunded_checkout_tells_the_shopper_so(chromium, sandbox, size):
    merchant = merchant_for(sandbox)
    base = base_of(sandbox)
    checkout = await paid_checkout(merchant, base, 2000)
    r = await refund(merchant, checkout["id"], {"amount_fen": 550, "out_refund_no": f"part-{size}"})
    assert r.code == 201, r.body
    await wait_refund(merchant, checkout["id"], f"part-{size}", "succeeded")
    context = await new_context(chromium, "wechat")
    page = await open_page(context, size)
    await page.goto(checkout["pay_url"])
    await page.wait_for_selector("body[data-screen=partially_refunded]")
    assert await page.inner_text("#screen-partially_refunded h2") == ZH["partially_refunded_title"]
    assert await page.inner_text("#refunded-value") == "5.50"
    assert not await page.is_visible("#pay-button")
    assert (await page.evaluate("document.documentElement.scrollWidth - innerWidth")) <= 0

    r = await refund(merchant, checkout["id"], {"amount_fen": 1450, "out_refund_no": f"rest-{size}"})
    assert r.code == 201, r.body
    await wait_refund(merchant, checkout["id"], f"rest-{size}", "succeeded")
    status = as_json(await merchant.get(f"/pay/{checkout['id']}/status"))
    assert (status["status"], status["paid"], status["refunded_fen"]) == ("refunded", True, 2000)
    await page.goto(checkout["pay_url"] + "?lang=en")
    await page.wait_for_selector("body[data-screen=refunded]")
    assert await page.inner_text("#screen-refunded h2") == EN["refunded_title"]
    assert await page.inner_text("#screen-refunded p") == EN["refunded_text"]
    await context.close()
