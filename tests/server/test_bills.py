"""`wxpay-server bills --date`: the day's bill from the simulated WeChat
(APIv2 pay/downloadbill; APIv3 the two steps of /v3/bill/tradebill, the
file checked against its SHA1) against the store, clean and with planted
mismatches, as a real command and through server.main."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import server
from wxpay.simulator import demo
from wxpay.simulator.clock import Clock
from wxpay.timeutil import CHINA_TZ

from .conftest import BOTH_VERSIONS
from .payments import paid_checkout, refund, wait_refund

ROOT = Path(__file__).resolve().parents[2]


class LaterClock(Clock):
    """WeChat's bill for day T is ready from 09:00 China time on T+1."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return super().now() + self.ahead


def write_config(tmp_path: Path, base_url: str, api_version: str = "v2") -> Path:
    cfg = tmp_path / "bills.toml"
    cfg.write_text(
        f'[server]\npublic_url = "{base_url}"\n\n[store]\nsqlite_path = "{tmp_path / "wxpay.sqlite3"}"\n'
        f'\n[wechat]\napi_version = "{api_version}"\n',
        encoding="utf-8",
    )
    return cfg


async def a_day_of_trade(running, base_url, merchant) -> tuple[str, list[dict]]:
    """Two payments and one partial refund; returns the China day and the checkouts."""
    checkouts = [await paid_checkout(merchant, base_url, amount) for amount in (1234, 500)]
    r = await refund(merchant, checkouts[0]["id"], {"amount_fen": 234, "out_refund_no": "bill-r1"})
    assert r.code == 201
    await wait_refund(merchant, checkouts[0]["id"], "bill-r1", "succeeded")
    order = await running.services.orders.require(checkouts[0]["paid_out_trade_no"])
    day = order.time_end.astimezone(CHINA_TZ).date().isoformat()
    running.simulator.clock = LaterClock(timedelta(days=1, hours=10))
    return day, checkouts


YESTERDAY = timedelta(days=1, hours=10)  # the bill of the trades' day is ready by now


async def a_day_of_trade_yesterday(running, base_url, merchant) -> tuple[str, list[dict]]:
    """The same trades, moved back a day and ten hours on both sides (WeChat's
    records and the store), so that their bill is ready while every clock keeps
    the real time: APIv3 signs both ways with timestamps checked against it."""
    checkouts = [await paid_checkout(merchant, base_url, amount) for amount in (1234, 500)]
    r = await refund(merchant, checkouts[0]["id"], {"amount_fen": 234, "out_refund_no": "bill-r1"})
    assert r.code == 201
    await wait_refund(merchant, checkouts[0]["id"], "bill-r1", "succeeded")
    store, sim = running.services.store, running.simulator
    for checkout in checkouts:
        no = checkout["paid_out_trade_no"]
        doc = await store.get("orders", no)
        await store.update_if("orders", no, {}, {k: doc[k] - YESTERDAY for k in ("created_at", "paid_at", "time_end")})
        sim.pay.order(demo.MCH_ID, no).paid_at -= YESTERDAY
    doc = await store.get("refunds", "bill-r1")
    await store.update_if("refunds", "bill-r1", {}, {"created_at": doc["created_at"] - YESTERDAY})
    sim.pay.refund_by_no(demo.MCH_ID, "bill-r1").created_at -= YESTERDAY
    order = await running.services.orders.require(checkouts[0]["paid_out_trade_no"])
    return order.time_end.astimezone(CHINA_TZ).date().isoformat(), checkouts


async def run_cli(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXPAY_") and k != "MONGODB_URI"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", "bills", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


@BOTH_VERSIONS
async def test_a_clean_day_exits_0_and_a_planted_mismatch_exits_1(running, base_url, merchant, tmp_path, capsys,
                                                                  api_version):
    day, checkouts = await a_day_of_trade_yesterday(running, base_url, merchant)
    cfg = write_config(tmp_path, base_url, api_version)
    # The other version's bill endpoint is down: the command asks the configured version's.
    other = {"v2": "v3/bill/tradebill", "v3": "pay/downloadbill"}[api_version]
    fault = await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": other, "kind": "http500", "count": None})
    assert fault.code == 200

    code, out, err = await run_cli("--date", day, "--json", "--config", str(cfg))
    assert code == 0, (out, err)
    report = json.loads(out)
    assert report["clean"] is True and report["date"] == day
    assert report["wechat"] == {"payments": 2, "refunds": 1} == report["ours"]

    # Plant mismatches in the store after the fact.
    store = running.services.store
    tampered = checkouts[1]["paid_out_trade_no"]
    await store.update_if("orders", tampered, {}, {"total_fee": 499})
    await store.update_if("refunds", "bill-r1", {}, {"state": "closed"})
    code = await server.main(["bills", "--date", day, "--json", "--config", str(cfg)])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    kinds = sorted((d["kind"], d["out_refund_no"] or d["out_trade_no"]) for d in report["differences"])
    assert kinds == [("amount_mismatch", tampered), ("refund_state_mismatch", "bill-r1")]
    amount = next(d for d in report["differences"] if d["kind"] == "amount_mismatch")
    assert (amount["wechat"]["total_fee"], amount["ours"]["total_fee"]) == (500, 499)

    # A payment WeChat has that the store lost, in the human-readable report.
    await store.delete_if("orders", tampered)
    code = await server.main(["bills", "--date", day, "--config", str(cfg)])
    text = capsys.readouterr().out
    assert code == 1
    assert f"paid_at_wechat_not_here     {tampered}" in text and "difference(s)" in text


async def test_no_bill_yet_is_could_not_run(running, base_url, merchant, tmp_path, capsys):
    cfg = write_config(tmp_path, base_url)
    tomorrow = (datetime.now(CHINA_TZ) + timedelta(days=1)).date().isoformat()
    assert await server.main(["bills", "--date", tomorrow, "--config", str(cfg)]) == 2
    assert "no bill" in capsys.readouterr().err.lower()
    assert await server.main(["bills", "--date", "26-11-2026", "--config", str(cfg)]) == 2
    assert await server.main(["bills", "--config", str(cfg)]) == 2  # --date is required
    # WeChat unreachable is "could not run" too, not "differences".
    unreachable = tmp_path / "down.toml"
    unreachable.write_text(
        f'[server]\npublic_url = "http://127.0.0.1:9"\n\n[store]\nsqlite_path = "{tmp_path / "wxpay.sqlite3"}"\n'
    )
    assert await server.main(["bills", "--date", "2026-01-01", "--config", str(unreachable)]) == 2


async def test_a_sandbox_server_on_another_port_is_named_with_port(running, base_url, merchant, tmp_path, capsys):
    """``make run ARGS="--port 9000"`` then ``bills``: without --port the CLI
    asked port 8000 (server.port's default) and could not run."""
    day, _ = await a_day_of_trade(running, base_url, merchant)
    cfg = tmp_path / "port-only.toml"
    cfg.write_text(f'[store]\nsqlite_path = "{tmp_path / "wxpay.sqlite3"}"\n', encoding="utf-8")
    assert await server.main(["bills", "--date", day, "--json", "--config", str(cfg), "--port", str(running.port)]) == 0
    assert json.loads(capsys.readouterr().out)["clean"] is True
