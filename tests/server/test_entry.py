"""The entry point as an operator meets it: refusing unsafe live settings,
and a graceful stop that lets an in-flight payment request finish."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

from tornado.httpclient import AsyncHTTPClient

from .browser import DESKTOP_UA, Browser, as_json
from .journey import create_checkout
from .processes import ROOT, free_port, spawn, stop, wait_http


def test_live_mode_refuses_to_start_with_one_line_per_problem(tmp_path):
    env = {"WXPAY_MODE": "live", "WXPAY_SERVER_PUBLIC_URL": "http://pay.example.com"}
    proc = subprocess.run(
        [sys.executable, "server.py", "--port", "0"], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    err = proc.stderr
    for needle in ("appid", "mch_id", "api_key", "cookie_secret", "admin", "https"):
        assert needle in err, err
    assert len([ln for ln in err.splitlines() if ln.strip().startswith("-")]) >= 6, err


async def test_sigterm_finishes_the_request_in_flight(tmp_path):
    port = free_port()
    env = {"WXPAY_STORE_SQLITE_PATH": str(tmp_path / "db.sqlite3"), "WXPAY_RECONCILER_ENABLED": "false"}
    proc = spawn(["server.py", "--port", str(port)], env, log_path=tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/healthz", proc)
        merchant = Browser(base)
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}
        checkout = await create_checkout(merchant)
        # WeChat will take 1.5 s to answer unifiedorder.
        await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "pay/unifiedorder", "kind": "latency", "seconds": 1.5})
        desktop = Browser(base, DESKTOP_UA)
        await desktop.get(checkout["pay_url"])
        pending = asyncio.ensure_future(desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        reply = await pending
        assert reply.code == 200, reply.body
        assert as_json(reply)["code_url"].startswith("weixin://")
        assert await asyncio.to_thread(proc.wait, 20) == 0
        # It no longer accepts connections.
        try:
            await AsyncHTTPClient().fetch(f"{base}/healthz", request_timeout=2)
            raise AssertionError("server still answering after SIGTERM")
        except OSError:
            pass
    finally:
        stop(proc)
    log = (tmp_path / "server.log").read_text()
    assert "stopping" in log
