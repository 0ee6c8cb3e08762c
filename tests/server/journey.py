"""Steps of the payment journey, shared by the end-to-end tests."""
from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

from .browser import WECHAT_UA, Browser, as_json


async def create_checkout(merchant: Browser, amount: int = 1234, **extra) -> dict:
    r = await merchant.post(
        "/api/checkouts",
        json_body={"amount_fen": amount, "description": "Green tea", **extra},
        headers=merchant.token_headers,
    )
    assert r.code == 201, r.body
    return as_json(r)


async def sign_in_with_wechat(base_url: str, pay_url: str) -> tuple[Browser, list[str]]:
    """Open the pay URL inside WeChat and follow the silent OAuth chain."""
    shopper = Browser(base_url, WECHAT_UA)
    page, hops = await shopper.follow(pay_url)
    assert page.code == 200, page.body
    return shopper, hops


async def prepay(shopper: Browser, checkout_id: str, **body) -> dict:
    r = await shopper.post(f"/pay/{checkout_id}/prepay", json_body=body, xsrf=True)
    assert r.code == 200, r.body
    return as_json(r)


async def pay_in_simulator(shopper: Browser, payload: dict, outcome: str = "ok") -> dict:
    prepay_id = payload["package"].split("=", 1)[1]
    r = await shopper.post(
        "/_wechat/_sim/pay", json_body={"prepay_id": prepay_id, "outcome": outcome, "payload": payload}
    )
    assert r.code == 200, r.body
    return as_json(r)


async def wait_status(browser: Browser, checkout_id: str, want: str, *, tries: int = 200) -> dict:
    """Poll the page's status endpoint (bounded) until it says ``want``."""
    status = {}
    for _ in range(tries):
        status = as_json(await browser.get(f"/pay/{checkout_id}/status"))
        if status["status"] == want:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"status stayed {status} (wanted {want})")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
