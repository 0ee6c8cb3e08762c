"""`make zipapp` builds one file that runs the same server (slow: it pip-installs)."""
from __future__ import annotations

import subprocess

import pytest

from .browser import Browser, as_json
from .processes import ROOT, free_port, spawn, stop, wait_http


@pytest.mark.slow
async def test_the_zipapp_serves_the_journey_start(tmp_path):
    built = subprocess.run(["make", "zipapp"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    pyz = ROOT / "dist" / "wxpay-server.pyz"
    port = free_port()
    env = {"WXPAY_STORE_SQLITE_PATH": str(tmp_path / "z.sqlite3"), "SHIV_ROOT": str(tmp_path / "shiv")}
    proc = spawn([str(pyz), "--port", str(port)], env, log_path=tmp_path / "pyz.log")
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", proc, tries=300)
        merchant = Browser(f"http://127.0.0.1:{port}")
        r = await merchant.post(
            "/api/checkouts", json_body={"amount_fen": 100, "description": "tea"},
            headers={"Authorization": "Bearer sandbox-merchant-token"},
        )
        assert r.code == 201
        page = await merchant.get(as_json(r)["pay_url"])
        assert page.code == 200 and b"tea" in page.body  # templates and static files are inside
    finally:
        stop(proc)
