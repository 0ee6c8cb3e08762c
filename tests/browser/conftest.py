"""Real headless Chromium (Debian's package, driven by Playwright) against a
real sandbox wxpay-server on loopback.

One browser per test module (launching is the slow part); every test gets
fresh browser contexts, so no cookie or storage leaks between tests. The
server and the browser live on the module's event loop.
"""
from __future__ import annotations

import os
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.server.browser import DESKTOP_UA, MOBILE_UA, WECHAT_UA, Browser as HttpClient
from tests.server.conftest import API_TOKEN, start_server

CHROMIUM = os.environ.get("WXPAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
ADMIN = {"username": "admin", "password": "sandbox-admin"}


async def launch(playwright: Any) -> Browser:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run .ci/ensure-chromium (apt-get install chromium) first", pytrace=False)
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox(tmp_path_factory) -> AsyncIterator[Any]:
    running = await start_server(tmp_path_factory.mktemp("sandbox"))
    try:
        yield running
    finally:
        await running.stop(grace=2)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox_v3(tmp_path_factory) -> AsyncIterator[Any]:
    """The same sandbox on APIv3 (``wechat.api_version = "v3"``): RSA payloads on the page."""
    running = await start_server(tmp_path_factory.mktemp("sandbox_v3"), **{"wechat.api_version": "v3"})
    try:
        yield running
    finally:
        await running.stop(grace=2)


def base_of(running: Any) -> str:
    return f"http://127.0.0.1:{running.port}"


def merchant_for(running: Any) -> HttpClient:
    client = HttpClient(base_of(running))
    client.token_headers = {"Authorization": f"Bearer {API_TOKEN}"}  # type: ignore[attr-defined]
    return client


async def new_context(browser: Browser, kind: str = "wechat", *, locale: str = "zh-CN", **extra: Any) -> BrowserContext:
    """A context that looks like WeChat on a phone, a phone browser, or a desktop."""
    ua, viewport, mobile = {
        "wechat": (WECHAT_UA, PHONE, True),
        "mobile": (MOBILE_UA, PHONE, True),
        "desktop": (DESKTOP_UA, DESKTOP, False),
    }[kind]
    context = await browser.new_context(
        user_agent=ua, viewport=viewport, is_mobile=mobile, has_touch=mobile, locale=locale, **extra
    )
    context.set_default_timeout(10_000)
    return context
