"""Why WeChat failed, as the operator sees it: one INFO line per failed call,
and the "WeChat calls" panel of /status, /status.json and /metrics (the last
failure per endpoint, counts by cause, the latest failures), through a real
server: its simulated WeChat answering 500, malformed XML and a bad
signature, and a WeChat address where nothing listens."""
from __future__ import annotations

import logging

from tests.wxpay import wire_faults as wf

from .browser import DESKTOP_UA, Browser, as_json
from .conftest import API_TOKEN, start_server
from .journey import create_checkout
from .test_admin_status import ADMIN, metrics


async def failed_prepay(base_url: str, merchant: Browser) -> dict:
    checkout = await create_checkout(merchant)
    desktop = Browser(base_url, DESKTOP_UA)
    await desktop.get(f"/pay/{checkout['id']}")
    r = await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    assert r.code == 502, r.body
    return as_json(r)


async def test_each_cause_on_status_json_the_page_and_metrics(running, base_url, merchant, caplog):
    caplog.set_level(logging.INFO, logger="wxpay")
    for kind in ("http500", "malformed", "bad_sign"):
        r = await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "pay/unifiedorder", "kind": kind, "count": 1})
        assert r.code in (200, 201), r.body
        await failed_prepay(base_url, merchant)

    figures = as_json(await merchant.get("/status.json", headers=ADMIN))
    failures = figures["wechat_failures"]
    assert failures["by_cause"] == {"bad_signature": 1, "http_500": 1, "malformed_reply": 1}
    assert [x["cause"] for x in failures["latest"]] == ["bad_signature", "malformed_reply", "http_500"]  # newest first
    host = f"127.0.0.1:{running.port}"
    assert {x["host"] for x in failures["latest"]} == {host}
    assert all(x["endpoint"] == "unifiedorder" and x["hint"] and x["at"] for x in failures["latest"])
    [row] = [e for e in figures["wechat"] if e["endpoint"] == "unifiedorder"]
    assert row["failures_by_cause"] == {"bad_signature": 1, "http_500": 1, "malformed_reply": 1}
    assert row["last_failure"]["cause"] == "bad_signature" and row["last_failure"]["host"] == host

    html = (await merchant.get("/status", headers=ADMIN)).body.decode()
    for text in ("WeChat calls", "Failures by cause", "Latest failures", "malformed_reply", "http_500",
                 "bad_signature", "check the API key"):
        assert text in html, text

    scraped = metrics((await merchant.get("/metrics", headers=ADMIN)).body)
    for cause in ("http_500", "malformed_reply", "bad_signature"):
        assert scraped[("wxpay_wechat_call_failures_total", (("cause", cause), ("endpoint", "unifiedorder")))] == 1

    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "wechat unifiedorder" in r.getMessage()]
    assert [line.split()[3] for line in info] == ["cause=http_500", "cause=malformed_reply", "cause=bad_signature"]
    assert all(f"host={host}" in line for line in info)


async def test_a_wechat_address_where_nothing_listens_is_refused(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="wxpay")
    port = wf.closed_port()
    instance = await start_server(tmp_path, **{"wechat.pay_base": f"http://127.0.0.1:{port}"})
    try:
        base_url = f"http://127.0.0.1:{instance.port}"
        merchant = Browser(base_url)
        merchant.token_headers = {"Authorization": f"Bearer {API_TOKEN}"}  # type: ignore[attr-defined]
        await failed_prepay(base_url, merchant)
        figures = as_json(await merchant.get("/status.json", headers=ADMIN))
    finally:
        await instance.stop(grace=1)
    [latest] = figures["wechat_failures"]["latest"]
    assert (latest["endpoint"], latest["cause"], latest["host"]) == ("unifiedorder", "refused", f"127.0.0.1:{port}")
    assert "refused" in latest["detail"].lower() and "firewall" in latest["hint"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.name.startswith("wxpay")]
    assert line.startswith(f"wechat unifiedorder failed: cause=refused host=127.0.0.1:{port} ")
