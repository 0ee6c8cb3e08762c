"""One real APIv3 server on loopback, driven through most of what /metrics
can say, scraped as Prometheus would scrape it.

The server trusts WeChat's platform certificate (so certificates have an
end date), sends webhooks to a receiver that refuses them (an event waits,
then is given up), takes a paid checkout after a SIGNTEST probe, a forged
notify, a WeChat call that fails, a refund, a token and a ticket, and one
reconciler pass. /metrics is scraped while a webhook event waits and again
at the end, beside /status.json.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.server.browser import DESKTOP_UA, Browser, as_json
from tests.server.conftest import start_server
from tests.server.payments import Receiver, paid_checkout, refund, wait_for, wait_refund, webhook_overrides
from tests.server.test_admin_status import ADMIN
from tests.server.versions import FAULT_ENDPOINTS, payment_notify, post_notify, refused
from tests.server.journey import create_checkout


@dataclass
class Scraped:
    """What Prometheus and an operator would have read."""

    scrapes: list[str]  # the /metrics bodies, in order
    status: dict[str, Any]  # /status.json, read right after the last scrape

    @property
    def last(self) -> str:
        return self.scrapes[-1]


def samples(text: str) -> dict[str, list[dict[str, str]]]:
    """Each sample name in an exposition → the label sets it was seen with."""
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


async def scrape(browser: Browser) -> str:
    r = await browser.get("/metrics", headers=ADMIN)
    assert r.code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.code
    return r.body.decode()


async def status(browser: Browser) -> dict[str, Any]:
    return as_json(await browser.get("/status.json", headers=ADMIN))


async def run(tmp_path: Path) -> Scraped:
    receiver = Receiver()
    receiver.fail_all = True
    overrides = webhook_overrides(receiver, **{"webhooks.max_attempts": 2, "webhooks.retry_base_s": 0.5})
    # A store path with a quote, a backslash and a space: the location label must be escaped.
    where = tmp_path / 'odd "dir" \\ here'
    where.mkdir()
    running = await start_server(tmp_path, **{"wechat.api_version": "v3", "wechat.platform_certificates": True,
                                              "store.sqlite_path": str(where / "wxpay.sqlite3"), **overrides})
    try:
        merchant = Browser(f"http://127.0.0.1:{running.port}")
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]
        sim = "/_wechat/_sim/faults"
        assert (await merchant.post(sim, json_body={"endpoint": "notify", "kind": "signtest", "count": 1})).code == 200
        checkout = await paid_checkout(merchant, merchant.base, 900)  # the probe first, then the real notify

        async def waiting() -> bool:
            hooks = (await status(merchant))["webhooks"]
            return hooks["pending"] > 0 and hooks["attempts"]["will_retry"] > 0
        await wait_for(waiting)
        scrapes = [await scrape(merchant)]  # an event waits: its age is on the scrape

        (paid,) = await running.services.store.find("orders", {"state": "paid"}, limit=2)
        forged = payment_notify(running, "v3", paid["out_trade_no"], forged=True)
        assert refused("v3", await post_notify(merchant, "/notify/pay", forged))
        fault = {"endpoint": FAULT_ENDPOINTS["v3"]["order_native"], "kind": "http500", "count": 1}
        assert (await merchant.post(sim, json_body=fault)).code == 200
        unpaid = await create_checkout(merchant, 300)
        desktop = Browser(merchant.base, DESKTOP_UA)
        await desktop.get(f"/pay/{unpaid['id']}")
        assert (await desktop.post(f"/pay/{unpaid['id']}/prepay", json_body={}, xsrf=True)).code == 502
        assert (await refund(merchant, checkout["id"], {"amount_fen": 400, "out_refund_no": "mon-r"})).code == 201
        await wait_refund(merchant, checkout["id"], "mon-r", "succeeded")
        await running.services.tokens.jsapi_ticket()  # a token and a ticket cached
        await running.services.reconciler.run_once()

        async def given_up() -> bool:
            return (await status(merchant))["webhooks"]["failed"] > 0
        await wait_for(given_up, tries=400, delay=0.025)
        scrapes.append(await scrape(merchant))
        return Scraped(scrapes, await status(merchant))
    finally:
        await running.stop(grace=1)
        receiver.server.stop()


if __name__ == "__main__":  # dump a scrape and /status.json for a look: python -m tests.monitoring.scenario DIR
    import asyncio
    import sys
    import tempfile

    got = asyncio.run(run(Path(tempfile.mkdtemp())))
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    (out / "metrics.txt").write_text(got.last)
    (out / "status.json").write_text(json.dumps(got.status, indent=1))
