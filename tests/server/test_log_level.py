"""server.log_level in a real process: at INFO (the default) the log names
a failed WeChat call with its cause and host, once; at WARNING (set through
the older WXPAY_LOG_LEVEL) it does not; DEBUG adds a line per attempt."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.wxpay import wire_faults as wf

from .browser import DESKTOP_UA, Browser
from .conftest import API_TOKEN
from .journey import create_checkout
from .processes import ROOT, free_port, stop, wait_http


async def log_of_a_refused_prepay(tmp_path, **env: str) -> str:
    port, wechat = free_port(), wf.closed_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", str(port)], cwd=tmp_path,
            env={**base_env, "WXPAY_WECHAT_PAY_BASE": f"http://127.0.0.1:{wechat}", "WXPAY_RECONCILER_ENABLED": "false",
                 **env},
            stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/healthz", proc)
        merchant = Browser(base)
        merchant.token_headers = {"Authorization": f"Bearer {API_TOKEN}"}  # type: ignore[attr-defined]
        checkout = await create_checkout(merchant)
        desktop = Browser(base, DESKTOP_UA)
        await desktop.get(f"/pay/{checkout['id']}")
        assert (await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)).code == 502
    finally:
        stop(proc)
    return log.read_text().replace(str(wechat), "WECHAT")


@pytest.mark.parametrize("env, info, debug", [
    ({}, 1, 0),
    ({"WXPAY_LOG_LEVEL": "WARNING"}, 0, 0),
    ({"WXPAY_SERVER_LOG_LEVEL": "DEBUG", "WXPAY_LOG_LEVEL": "WARNING"}, 1, 1),
])
async def test_the_level_decides_what_the_log_says_about_wechat(tmp_path, env, info, debug):
    text = await log_of_a_refused_prepay(tmp_path, **env)
    lines = text.splitlines()
    summary = [ln for ln in lines if " INFO wxpay.client: wechat unifiedorder failed: cause=refused host=127.0.0.1:WECHAT " in ln]
    attempts = [ln for ln in lines if "DEBUG wxpay.client: wechat unifiedorder attempt failed: cause=refused" in ln]
    assert (len(summary), len(attempts)) == (info, debug), text
    assert "Traceback" not in text
