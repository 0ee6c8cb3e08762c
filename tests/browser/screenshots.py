"""Screenshots of every checkout screen, the shopper's error page, the simulated
H5 cashier, /status and the operator's console, for docs/screenshots/.

    .venv/bin/python -m tests.browser.screenshots [--out docs/screenshots] [--only admin]

Starts a real sandbox server, drives Debian's Chromium through each screen
at a phone's viewport (Chinese, the page's default) and saves small PNGs.
Chinese text needs a CJK font (Debian: apt-get install fonts-wqy-microhei).
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from playwright.async_api import async_playwright

from tests.browser.conftest import ADMIN, PHONE, base_of, launch, merchant_for, new_context
from tests.server.conftest import start_server
from tests.server.journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status
from tests.server.payments import paid_checkout, refund, wait_refund
from wxpay import signing
from wxpay.xmlcodec import build_xml

ROOT = Path(__file__).resolve().parents[2]
RETURN_URL = "https://shop.example.com/orders/42"


async def shoot(page, out: Path, name: str, **kw) -> Path:
    path = out / f"{name}.png"
    await page.screenshot(path=str(path), animations="disabled", caret="hide", **kw)
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size // 1024} KB")
    return path


async def busy_day(running) -> None:
    """A few payments, a refused notify, a reconciler pass: a /status worth looking at."""
    merchant = merchant_for(running)
    base = base_of(running)
    last = None
    for amount in (1234, 4900, 2500, 990):
        checkout = await create_checkout(merchant, amount)
        shopper, _ = await sign_in_with_wechat(base, checkout["pay_url"])
        last = await prepay(shopper, checkout["id"])
        await pay_in_simulator(shopper, last["bridge"])
        await wait_status(shopper, checkout["id"], "paid")
    checkout = await create_checkout(merchant, 1800)
    shopper, _ = await sign_in_with_wechat(base, checkout["pay_url"])
    await prepay(shopper, checkout["id"])  # left unpaid
    forged = {"return_code": "SUCCESS", "result_code": "SUCCESS", "out_trade_no": last["out_trade_no"],
              "nonce_str": signing.make_nonce(), "total_fee": 1234}
    forged["sign"] = signing.sign(forged, "0" * 32, "MD5")
    await merchant.post("/notify/pay", body=build_xml(forged))
    await running.services.tokens.jsapi_ticket()
    await running.services.reconciler.run_once()


async def admin_shots(browser, running, out: Path) -> None:
    """/status after a small busy day, and the console: search, a checkout's page, a refund's confirmation."""
    await busy_day(running)
    merchant = merchant_for(running)
    checkout = await create_checkout(merchant, 3800, description="明前龙井 Green tea 100g",
                                     merchant_reference="SO-2026-0042")
    shopper, _ = await sign_in_with_wechat(base_of(running), checkout["pay_url"])
    await pay_in_simulator(shopper, (await prepay(shopper, checkout["id"]))["bridge"])
    await wait_status(shopper, checkout["id"], "paid")
    await refund(merchant, checkout["id"], {"amount_fen": 1200, "out_refund_no": "R-2026-0042-1", "reason": "One cup chipped"})
    await wait_refund(merchant, checkout["id"], "R-2026-0042-1", "succeeded")
    context = await new_context(browser, "desktop", http_credentials=ADMIN, locale="en-US")
    page = await context.new_page()
    await page.set_viewport_size({"width": 820, "height": 1180})
    await page.goto(base_of(running) + "/status")
    await shoot(page, out, "8-status")
    await page.set_viewport_size({"width": 1000, "height": 1500})
    await page.goto(f"{base_of(running)}/status/checkouts/{checkout['id']}")
    await page.locator("#timeline details").first.click()
    await shoot(page, out, "console-checkout")
    await context.close()
    context = await new_context(browser, "mobile", http_credentials=ADMIN, locale="en-US")
    page = await context.new_page()
    await page.goto(base_of(running) + "/status/search?q=SO-2026-0042")
    await page.wait_for_load_state("load")
    await shoot(page, out, "console-search")
    await page.goto(f"{base_of(running)}/status/checkouts/{checkout['id']}")
    await page.fill("#refund-amount", "30")
    await page.click("#refund-form button")
    await page.wait_for_load_state("load")
    await shoot(page, out, "console-refund-refused")
    await page.fill("#refund-amount", "26")
    await page.click("#refund-form button")
    await page.wait_for_selector("#confirm-form")
    await page.wait_for_load_state("load")
    await shoot(page, out, "console-refund-confirm")
    await context.close()


async def run(out: Path, only: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wxpay-shots-"))
    running = await start_server(tmp)
    merchant = merchant_for(running)
    try:
        async with async_playwright() as playwright:
            browser = await launch(playwright)
            if only == "admin":
                await admin_shots(browser, running, out)
                await browser.close()
                return
            # Inside WeChat (the sandbox bridge plays the client): idle, the sheet, paid.
            checkout = await create_checkout(merchant, 1234, description="明前龙井 Green tea 100g", return_url=RETURN_URL)
            context = await new_context(browser, "wechat")
            page = await context.new_page()
            await page.goto(checkout["pay_url"])
            await page.wait_for_selector("body[data-screen=idle]")
            await shoot(page, out, "1-idle")
            await page.click("#pay-button")
            await page.get_by_role("dialog").wait_for()
            await shoot(page, out, "3-sandbox-sheet")
            await page.get_by_role("dialog").get_by_role("button", name="确认支付").click()
            await page.wait_for_selector("body[data-screen=paid]")
            await shoot(page, out, "4-paid")
            # Cancelled, then failed.
            checkout = await create_checkout(merchant, 4900, description="搪瓷杯 Enamel mug", return_url=RETURN_URL)
            await page.goto(checkout["pay_url"])
            await page.click("#pay-button")
            await page.get_by_role("dialog").get_by_role("button", name="取消").click()
            await page.wait_for_selector("body[data-screen=cancelled]")
            await shoot(page, out, "5-cancelled")
            await page.click("#screen-cancelled .pay-again")
            await page.get_by_role("dialog").get_by_role("button", name="模拟支付失败").click()
            await page.wait_for_selector("body[data-screen=failed]")
            await shoot(page, out, "6-failed")
            await context.close()
            # Expired.
            checkout = await create_checkout(merchant, 2500, description="白茶 White tea", return_url=RETURN_URL)
            past = running.services.now() - timedelta(minutes=1)
            await running.services.store.update_if("checkouts", checkout["id"], {}, {"expires_at": past})
            context = await new_context(browser, "mobile")
            page = await context.new_page()
            await page.goto(checkout["pay_url"])
            await page.wait_for_selector("body[data-screen=expired]")
            await shoot(page, out, "7-expired")
            await context.close()
            # The QR code, as a desktop browser gets it (phone-sized window for the docs).
            checkout = await create_checkout(merchant, 990, description="茶包 Tea bags")
            context = await new_context(browser, "desktop")
            page = await context.new_page()
            await page.set_viewport_size(PHONE)
            await page.goto(checkout["pay_url"])
            await page.wait_for_selector("body[data-screen=qr]")
            await page.locator("#qr-img").evaluate("img => img.decode()")
            await shoot(page, out, "2-qr")
            await context.close()
            # The H5 cashier (the simulator's), as a phone browser reaches it from the pay page.
            checkout = await create_checkout(merchant, 1500, description="明前龙井 Green tea 100g")
            context = await new_context(browser, "mobile")
            page = await context.new_page()
            await page.goto(checkout["pay_url"])
            await page.click("#pay-button")
            await page.wait_for_url("**/_sim/mweb*")
            await shoot(page, out, "h5-cashier")
            await context.close()
            # Refunded: in part, then in full.
            checkout = await paid_checkout(merchant, base_of(running), 3800)
            await refund(merchant, checkout["id"], {"amount_fen": 1200, "out_refund_no": "shot-part"})
            await wait_refund(merchant, checkout["id"], "shot-part", "succeeded")
            context = await new_context(browser, "wechat")
            page = await context.new_page()
            await page.goto(checkout["pay_url"])
            await page.wait_for_selector("body[data-screen=partially_refunded]")
            await shoot(page, out, "partially-refunded")
            await refund(merchant, checkout["id"], {"amount_fen": 2600, "out_refund_no": "shot-rest"})
            await wait_refund(merchant, checkout["id"], "shot-rest", "succeeded")
            await page.goto(checkout["pay_url"])
            await page.wait_for_selector("body[data-screen=refunded]")
            await shoot(page, out, "refunded")
            # The error page: a pay link that does not exist.
            await page.goto(base_of(running) + "/pay/co_000000000000000000000000")
            await shoot(page, out, "error-page")
            await context.close()
            await admin_shots(browser, running, out)
            await browser.close()
    finally:
        await running.stop(grace=2)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", choices=["admin"], help="only /status and the console's screenshots")
    args = parser.parse_args(argv)
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True) if shutil.which("fc-list") else None
    if fonts is not None and not fonts.stdout.strip():
        print("warning: no CJK font installed; Chinese text will show as boxes (apt-get install fonts-wqy-microhei)",
              file=sys.stderr)
    print(f"writing screenshots to {args.out}")
    asyncio.run(run(args.out, args.only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
