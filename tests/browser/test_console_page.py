"""The operator's console in a real headless Chromium, at a desktop's and a
phone's size: search, a checkout's timeline, a refund and a cancel through
their confirmation pages, failed webhooks, the day's CSV download; no page
breaks the CSP, none is wider than the screen."""
from __future__ import annotations

import csv
import io

import pytest

from tests.server.journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status
from tests.server.payments import wait_refund

from .conftest import ADMIN, DESKTOP, PHONE, base_of, merchant_for, new_context

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def admin_page(chromium, kind: str):
    """An admin's page that records CSP refusals and script errors."""
    context = await new_context(chromium, kind, http_credentials=ADMIN, locale="en-US")
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return context, page, problems


async def fits(page) -> None:
    """Nothing wider than the viewport (tables scroll inside their own box)."""
    await page.wait_for_load_state("load")  # the stylesheet applied, not just the element parsed
    width = await page.evaluate("document.documentElement.scrollWidth")
    wide = await page.evaluate("""w => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1)
        .slice(0, 3).map(e => e.tagName + '#' + e.id + '.' + e.className)""", page.viewport_size["width"])
    assert width <= page.viewport_size["width"], f"{page.url} is {width}px wide: {wide}"


async def paid(running, amount: int, reference: str) -> dict:
    merchant = merchant_for(running)
    checkout = await create_checkout(merchant, amount, merchant_reference=reference)
    shopper, _ = await sign_in_with_wechat(base_of(running), checkout["pay_url"])
    await pay_in_simulator(shopper, (await prepay(shopper, checkout["id"]))["bridge"])
    await wait_status(shopper, checkout["id"], "paid")
    return checkout


@pytest.mark.parametrize("kind,size", [("desktop", DESKTOP), ("mobile", PHONE)])
async def test_search_then_refund_through_the_confirmation(chromium, sandbox, kind, size):
    reference = f"SO-{kind}-0042"
    checkout = await paid(sandbox, 2500, reference)
    context, page, problems = await admin_page(chromium, kind)
    assert page.viewport_size == size
    await page.goto(base_of(sandbox) + "/status")
    for tile, words in (("#tile-gross", "Gross today"), ("#tile-refunded", "Refunded today"), ("#tile-net", "Net today")):
        assert words.lower() in (await page.inner_text(tile)).lower()  # headings are upper-cased by CSS
    await fits(page)

    await page.fill("#console-q", f"  {reference} ")
    await page.click(".console-search button")
    await page.wait_for_url("**/status/search?q=*")
    assert "merchant_reference" in await page.inner_text("#hits")
    await fits(page)
    await page.click(f"#hits a[href='/status/checkouts/{checkout['id']}']")
    await page.wait_for_selector("#timeline")
    timeline = await page.inner_text("#timeline")
    assert "Payment notify: paid" in timeline and "Checkout paid" in timeline
    await page.locator("#timeline details").first.click()  # a verified notify's raw body opens in place
    assert "<return_code>" in await page.locator("#timeline details pre").first.inner_text()
    await fits(page)

    # Too much: refused on the same page, with the form to correct it.
    await page.fill("#refund-amount", "25.01")
    await page.click("#refund-form button")
    assert "more than the ¥25.00 still refundable" in await page.inner_text("#console-error")
    await fits(page)
    # A partial refund: reviewed, then confirmed.
    async def review(tab) -> None:
        await tab.fill("#refund-amount", "10")
        await tab.fill("#refund-reason", "One cup was chipped")
        await tab.click("#refund-form button")
        await tab.wait_for_selector("#confirm-form")

    await review(page)
    assert await page.inner_text("#confirm-amount") == "¥10.00"
    assert "¥15.00 stays refundable" in await page.inner_text("#confirm")
    await fits(page)
    assert await sandbox.services.refunds.for_checkout(checkout["id"]) == []
    # A colleague (or a second tab) reviews the same refund meanwhile.
    other = await context.new_page()
    await other.goto(page.url.removesuffix("/refund"))
    await review(other)
    await page.click("#confirm-form button")
    await page.wait_for_selector("#console-done")
    assert "Refund of ¥10.00 done by admin" in await page.inner_text("#console-done")
    [refund] = await sandbox.services.refunds.for_checkout(checkout["id"])
    assert (refund.amount_fen, refund.reason) == (1000, "One cup was chipped")
    await wait_refund(merchant_for(sandbox), checkout["id"], refund.out_refund_no, "succeeded")
    # The second confirmation of that same refund acts once: not at all.
    await other.click("#confirm-form button")
    await other.wait_for_selector("#console-done")
    assert "nothing was done twice" in await other.inner_text("#console-done")
    assert len(await sandbox.services.refunds.for_checkout(checkout["id"])) == 1
    await other.close()
    # Back in history, the review is asked again and shows the checkout as it is now.
    await page.go_back()
    await page.wait_for_selector("#confirm-form")
    assert "¥5.00 stays refundable" in await page.inner_text("#confirm")
    await page.go_forward()
    await page.reload()
    assert "Console: refund by admin: done" in await page.inner_text("#timeline")
    assert await page.input_value("#refund-amount") == "15.00"
    assert problems == []
    await context.close()


@pytest.mark.parametrize("kind", ["desktop", "mobile"])
async def test_cancel_failed_webhooks_and_the_days_csv(chromium, sandbox, kind):
    merchant = merchant_for(sandbox)
    checkout = await create_checkout(merchant, 700, merchant_reference="=cmd|' /C calc'!A0")
    context, page, problems = await admin_page(chromium, kind)
    await page.goto(f"{base_of(sandbox)}/status/checkouts/{checkout['id']}")
    await page.click("#cancel-form button")
    await page.wait_for_selector("#confirm-form")
    assert "No WeChat order was started" in await page.inner_text("#confirm")
    await fits(page)
    await page.click("#confirm-form button")
    await page.wait_for_selector("#console-done")
    assert "Cancel done by admin" in await page.inner_text("#console-done")
    assert (await sandbox.services.checkouts.get(checkout["id"])).status == "closed"
    assert await page.locator("#cancel-form").count() == 0

    await page.goto(base_of(sandbox) + "/status/webhooks")
    assert "No failed webhook" in await page.inner_text("main")
    await fits(page)

    await paid(sandbox, 1200, "=HYPERLINK(\"http://x\")")
    await page.goto(base_of(sandbox) + "/status")
    async with page.expect_download() as caught:
        await page.click("#tile-export button")
    download = await caught.value
    assert download.suggested_filename.endswith("-china-day.csv")
    with open(await download.path(), encoding="utf-8") as file:
        rows = list(csv.DictReader(io.StringIO(file.read())))
    mine = [r for r in rows if r["merchant_reference"].startswith("'=HYPERLINK")]
    assert mine and all(r["amount_fen"] == "1200" for r in mine)
    assert problems == []
    await context.close()
