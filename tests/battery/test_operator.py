"""What an operator meets on a first live deployment: WeChat failing in the
ways a network fails, a start-up that cannot happen, and the bills command
in sandbox.

- WeChat's address is a real socket on 127.0.0.1 that refuses, does not
  resolve (a ``.invalid`` name), presents a self-signed certificate,
  answers 502, resets or hangs up; the prepay fails with 502 and the case
  records the cause the log line (INFO) and /status name.
- ``python server.py`` and ``server.py bills`` as processes over a busy
  port, an unusable SQLite path and an unreachable MongoDB: exit status,
  how many lines on stderr, whether a traceback appeared.
- A sandbox server process paid twice and refunded once, then ``server.py
  bills --date <today> --port P``: its exit status.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.server.payments import paid_checkout, refund, wait_refund
from tests.server.processes import ROOT, free_port, stop, wait_http
from tests.wxpay import wire_faults as wf
from wxpay.timeutil import CHINA_TZ

from . import logwatch
from .harness import Client, browser, start_server
from .results import record

WIRE = ("refused", "dns", "tls_certificate", "http_502", "reset", "closed")


async def _pay_base(kind: str, tmp_path: Path, stack: list) -> str:
    if kind == "refused":
        return f"http://127.0.0.1:{wf.closed_port()}"
    if kind == "dns":
        return "https://api.mch.wxpay-battery.invalid"
    if kind == "tls_certificate":
        context, _cert = wf.tls_context(tmp_path)
        manager = wf.tls_server(context)
        stack.append(manager)
        return f"https://127.0.0.1:{manager.__enter__()}"
    handler = {"http_502": wf.bad_gateway, "reset": wf.reset, "closed": wf.hang_up}[kind]
    manager = wf.serve(handler)
    stack.append(manager)
    return f"http://127.0.0.1:{await manager.__aenter__()}"


@pytest.mark.parametrize("kind", WIRE)
async def test_why_wechat_failed_is_in_the_log_and_on_status(tmp_path, kind, caplog):
    caplog.set_level(logging.DEBUG)
    stack: list = []
    try:
        pay_base = await _pay_base(kind, tmp_path, stack)
        running = await start_server(tmp_path, **{"wechat.pay_base": pay_base})
        try:
            client = Client(running)
            checkout = await client.checkout(2100)
            desktop = browser(client.base)
            await desktop.get(f"/pay/{checkout['id']}")
            reply = await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
            logwatch.add_text(reply.body)
            failures = running.services.call_stats.failures()
        finally:
            await running.stop(grace=1)
    finally:
        for manager in reversed(stack):
            if hasattr(manager, "__aexit__"):
                await manager.__aexit__(None, None, None)
            else:
                manager.__exit__(None, None, None)
    assert reply.code == 502, reply.body
    info = [r.getMessage() for r in caplog.records
            if r.levelno == logging.INFO and r.getMessage().startswith("wechat unifiedorder failed:")]
    [latest] = failures["latest"]
    assert latest["cause"] == kind and failures["by_cause"] == {kind: 1}
    assert len(info) == 1 and f"cause={kind} " in info[0]
    record("dependencies", f"WeChat's address {kind}: the cause in the log and on /status", "pass",
           reply=reply.code, cause_on_status=latest["cause"], host=latest["host"], info_lines=len(info),
           detail=latest["detail"])


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}
    return subprocess.run([sys.executable, str(ROOT / "server.py"), *args], cwd=cwd, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


def test_start_up_refusals_are_one_line(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    (tmp_path / "plain-file").write_text("x")
    mongo = f"mongodb://127.0.0.1:{wf.closed_port()}/?serverSelectionTimeoutMS=500"
    cases = {
        "busy port": (["--port", str(holder.getsockname()[1])], {}),
        "SQLite folder that cannot be created": (["--port", "0"], {"WXPAY_STORE_SQLITE_PATH": str(tmp_path / "plain-file" / "x" / "db")}),
        "SQLite path that is a folder": (["--port", "0"], {"WXPAY_STORE_SQLITE_PATH": str(tmp_path)}),
        "MongoDB unreachable": (["--port", "0"], {"WXPAY_STORE_MONGODB_URI": mongo}),
        "MongoDB URI with a bad port": (["--port", "0"], {"WXPAY_STORE_MONGODB_URI": "mongodb://db:port/"}),
        "bills, MongoDB unreachable": (["bills", "--date", "2026-01-01"], {"WXPAY_STORE_MONGODB_URI": mongo}),
        "bills, no store in this folder": (["bills", "--date", "2026-01-01"], {}),
    }
    seen = {}
    try:
        for name, (args, env) in cases.items():
            proc = _run(args, tmp_path, **env)
            lines = proc.stderr.strip().splitlines()
            seen[name] = {"exit": proc.returncode, "stderr_lines": len(lines),
                          "traceback": "Traceback" in proc.stderr, "line": lines[0] if lines else ""}
    finally:
        holder.close()
    bad = {name: s for name, s in seen.items() if (s["exit"], s["stderr_lines"], s["traceback"]) != (2, 1, False)}
    assert not bad, bad
    record("dependencies", "start-up refusals: one line, no traceback", "pass",
           **{name: f"exit {s['exit']}: {s['line']}" for name, s in seen.items()})


async def test_bills_in_sandbox_on_the_day(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}
    server = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", server)
        client = Client(None, base=f"http://127.0.0.1:{port}", token="sandbox-merchant-token",
                        sim_base=f"http://127.0.0.1:{port}/_wechat")
        client.merchant.token_headers = client.auth  # type: ignore[attr-defined]
        paid = [await paid_checkout(client.merchant, client.base, amount) for amount in (2200, 300)]
        assert (await refund(client.merchant, paid[0]["id"], {"amount_fen": 200, "out_refund_no": "bat-r1"})).code == 201
        await wait_refund(client.merchant, paid[0]["id"], "bat-r1", "succeeded")
        day = datetime.fromisoformat(paid[1]["paid_at"]).astimezone(CHINA_TZ).date().isoformat()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "server.py"), "bills", "--date", day, "--port", str(port), cwd=tmp_path,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        stop(server)
    assert proc.returncode == 0, (out, err)
    record("dependencies", "bills --date <today> --port P against a sandbox server", "pass",
           exit=proc.returncode, report=out.decode().strip().splitlines()[-1])
