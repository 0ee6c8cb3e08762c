"""`wxpay-server bills` exactly as the README tells a merchant to run it, in
sandbox: a server process started on another port (`server.py --port P`)
takes a day of payments and a refund over HTTP, then `server.py bills
--date <that day> --port P` (or `--url`) from the same folder reconciles it
with the simulated WeChat's bill: exit 0 when it agrees, 1 with a planted
difference, 2 when it cannot run (no bill for the day, no server there).

Both processes run in one empty folder with no WXPAY_* variable, so they
share the default store, data/wxpay.sqlite3, as they would on a merchant's
machine.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from store.open import INDEXES
from store.sqlite import SQLiteStore
from wxpay.timeutil import CHINA_TZ

from .browser import Browser
from .conftest import API_TOKEN
from .payments import paid_checkout, refund, wait_refund
from .processes import ROOT, free_port, stop, wait_http


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}


async def bills(cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "server.py"), "bills", *args, cwd=cwd, env=env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


def china_day(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(CHINA_TZ).date().isoformat()


async def test_bills_against_a_running_sandbox_server(tmp_path):
    port = free_port()
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port)], cwd=tmp_path,
                                  env=env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/healthz", server)
        merchant = Browser(base)
        merchant.token_headers = {"Authorization": f"Bearer {API_TOKEN}"}  # type: ignore[attr-defined]
        paid = [await paid_checkout(merchant, base, amount) for amount in (1234, 500)]
        r = await refund(merchant, paid[0]["id"], {"amount_fen": 234, "out_refund_no": "bill-e2e-r1"})
        assert r.code == 201, r.body
        await wait_refund(merchant, paid[0]["id"], "bill-e2e-r1", "succeeded")
        day = china_day(paid[1]["paid_at"])

        # The README's command, with the port the server was started on: no differences, exit 0.
        code, out, err = await bills(tmp_path, "--date", day, "--port", str(port))
        assert (code, err) == (0, ""), out + err
        assert out.rstrip().endswith("No differences."), out
        code, out, err = await bills(tmp_path, "--date", day, "--json", "--url", base)
        assert (code, err) == (0, ""), out + err
        report = json.loads(out)
        if day == china_day(paid[0]["paid_at"]):  # (both paid the same China day: all but certain)
            assert report["wechat"] == report["ours"] == {"payments": 2, "refunds": 1}

        # A difference planted in the store the server shares: exit 1, and it is named.
        store = SQLiteStore(tmp_path / "data" / "wxpay.sqlite3")
        await store.open(INDEXES)
        try:
            tampered = paid[1]["paid_out_trade_no"]
            assert await store.update_if("orders", tampered, {}, {"total_fee": 499})
        finally:
            await store.close()
        code, out, err = await bills(tmp_path, "--date", day, "--json", "--port", str(port))
        assert code == 1, out + err
        [difference] = json.loads(out)["differences"]
        assert (difference["kind"], difference["out_trade_no"]) == ("amount_mismatch", tampered)

        # A day without a bill: could not run, exit 2, one line.
        tomorrow = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
        code, out, err = await bills(tmp_path, "--date", tomorrow, "--port", str(port))
        assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1 and "no bill" in err.lower(), err
    finally:
        stop(server)
    # No server on that port any more: exit 2, one line saying what to check.
    code, out, err = await bills(tmp_path, "--date", day, "--port", str(port))
    assert (code, out) == (2, ""), out + err
    [line] = err.strip().splitlines()
    assert f"is the sandbox server running at http://127.0.0.1:{port}? name it with --port or --url" in line
    assert "Traceback" not in (tmp_path / "server.log").read_text()


async def test_bills_port_and_url_are_for_sandbox_only(tmp_path):
    from tests.config.livecfg import write_live_config, write_pem_pair

    config = write_live_config(tmp_path, *write_pem_pair(tmp_path))
    code, out, err = await bills(tmp_path, "--date", "2026-01-01", "--config", str(config), "--port", "9000")
    assert (code, out) == (2, "")
    assert err.strip() == ("wxpay-server bills: --port and --url name a sandbox server; "
                           "in live mode the bill comes from WeChat")
    code, _out, err = await bills(tmp_path, "--date", "2026-01-01", "--port", "9000", "--url", "http://127.0.0.1:9000")
    assert code == 2 and "not allowed with argument" in err
