"""Steps after the payment, shared by the refund, cancel, webhook and bill tests."""
from __future__ import annotations

import asyncio
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from service.webhook_signature import WebhookVerificationError, verify_webhook

from .browser import DESKTOP_UA, Browser, as_json
from .journey import create_checkout, wait_status

WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"


async def native_prepay(base_url: str, checkout_id: str) -> tuple[Browser, dict]:
    desktop = Browser(base_url, DESKTOP_UA)
    await desktop.get(f"/pay/{checkout_id}")
    r = await desktop.post(f"/pay/{checkout_id}/prepay", json_body={}, xsrf=True)
    assert r.code == 200, r.body
    return desktop, as_json(r)


async def scan_and_pay(browser: Browser, code_url: str) -> None:
    r = await browser.post("/_wechat/_sim/scan", json_body={"code_url": code_url, "outcome": "ok"})
    assert r.code == 200, r.body


async def paid_checkout(merchant: Browser, base_url: str, amount: int = 1000) -> dict:
    """A checkout paid by Native QR scan, confirmed through the notify."""
    checkout = await create_checkout(merchant, amount)
    desktop, result = await native_prepay(base_url, checkout["id"])
    await scan_and_pay(desktop, result["code_url"])
    await wait_status(desktop, checkout["id"], "paid")
    return await get_checkout(merchant, checkout["id"])


async def get_checkout(merchant: Browser, checkout_id: str) -> dict:
    r = await merchant.get(f"/api/checkouts/{checkout_id}", headers=merchant.token_headers)
    assert r.code == 200, r.body
    return as_json(r)


async def refund(merchant: Browser, checkout_id: str, body: dict, headers: dict | None = None):
    return await merchant.post(
        f"/api/checkouts/{checkout_id}/refunds", json_body=body, headers={**merchant.token_headers, **(headers or {})}
    )


async def wait_refund(merchant: Browser, checkout_id: str, out_refund_no: str, want: str, *, tries: int = 250) -> dict:
    """Poll the refunds list (bounded) until ``out_refund_no`` is in state ``want``."""
    seen = None
    for _ in range(tries):
        r = await merchant.get(f"/api/checkouts/{checkout_id}/refunds", headers=merchant.token_headers)
        items = {i["out_refund_no"]: i for i in as_json(r)["items"]}
        seen = items.get(out_refund_no)
        if seen and seen["state"] == want:
            return seen
        await asyncio.sleep(0.02)
    raise AssertionError(f"refund {out_refund_no} stayed {seen} (wanted {want})")


async def wait_for(predicate, *, tries: int = 300, delay: float = 0.02) -> None:
    """Await an async predicate (bounded)."""
    for _ in range(tries):
        if await predicate():
            return
        await asyncio.sleep(delay)
    raise AssertionError("condition not reached")


class Receiver:
    """A merchant's webhook endpoint: a real Tornado app on 127.0.0.1 that
    refuses the first ``fail_first`` deliveries (HTTP 500), then accepts,
    verifying each signature with the documented function."""

    def __init__(self, *, fail_first: int = 0, secret: str = WEBHOOK_SECRET) -> None:
        self.fail_first = fail_first
        self.secret = secret
        self.seen: list[dict[str, Any]] = []
        self.fail_all = False
        receiver = self

        class Hook(tornado.web.RequestHandler):
            def check_xsrf_cookie(self) -> None:
                return None

            def post(self) -> None:
                receiver._receive(self)

        sock, self.port = bind_unused_port()
        self.server = HTTPServer(tornado.web.Application([(r"/hook", Hook)]))
        self.server.add_sockets([sock])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _receive(self, handler: tornado.web.RequestHandler) -> None:
        body = handler.request.body
        try:
            verify_webhook(self.secret, handler.request.headers.get("Wxpay-Signature", ""), body)
            verified = True
        except WebhookVerificationError:
            verified = False
        fail = self.fail_all or len(self.seen) < self.fail_first or not verified
        self.seen.append({
            "event_id": handler.request.headers.get("Wxpay-Event-Id"),
            "type": handler.request.headers.get("Wxpay-Event-Type"),
            "verified": verified,
            "status": 500 if fail else 200,
            "body": body,
        })
        handler.set_status(500 if fail else 200)
        handler.finish("no" if fail else "ok")

    def successes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.seen:
            if s["status"] == 200:
                out[s["event_id"]] = out.get(s["event_id"], 0) + 1
        return out

    def stop(self) -> None:
        self.server.stop()


def webhook_overrides(receiver: Receiver, **more: Any) -> dict[str, Any]:
    return {
        "webhooks.url": receiver.url,
        "webhooks.secret": receiver.secret,
        "webhooks.poll_interval_s": 0.05,
        "webhooks.retry_base_s": 0.05,
        "webhooks.max_attempts": 5,
        **more,
    }
