"""``python -m wxpay.simulator`` as a real process: banner, a real call, --state across restarts."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient
from tornado.testing import bind_unused_port

from wxpay import signing
from wxpay.simulator import demo
from wxpay.xmlcodec import parse_xml

from .pay_server import signed_body

ROOT = Path(__file__).resolve().parents[2]
STARTUP_LIMIT = 30.0  # a safety net against a hung child, not a performance assertion


def free_port() -> int:
    sock, port = bind_unused_port()
    sock.close()
    return port


async def start(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wxpay.simulator", *args, cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    lines: list[str] = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), STARTUP_LIMIT)
        assert line, f"simulator exited early: {lines}"
        lines.append(line.decode().rstrip())
        if lines[-1].startswith("inspect:"):
            return proc, lines


async def post(url: str, body: bytes) -> dict[str, str]:
    resp = await AsyncHTTPClient().fetch(url, method="POST", body=body, raise_error=False)
    return parse_xml(resp.body)


async def test_standalone_serves_and_keeps_state_across_restarts(tmp_path):
    port = free_port()
    state = tmp_path / "sim-state.json"
    base = f"http://127.0.0.1:{port}"
    proc, banner = await start("--port", str(port), "--state", str(state), "--notify-time-scale", "1000")
    try:
        assert banner[0] == f"WeChat simulator listening on {base}"
        assert any(demo.API_KEY in line and demo.MCH_ID in line for line in banner)  # demo credentials shown
        reply = await post(base + "/pay/unifiedorder", signed_body({
            "body": "Demo-standalone", "out_trade_no": "standalone1", "total_fee": 1, "spbill_create_ip": "127.0.0.1",
            "notify_url": "http://127.0.0.1:9/n", "trade_type": "NATIVE", "product_id": "p"}))
        assert reply["result_code"] == "SUCCESS"
        signing.verify(reply, demo.API_KEY)
        # Written on change (debounced), before any shutdown: wait for it, then kill hard.
        for _ in range(200):
            if state.exists() and "standalone1" in state.read_text(encoding="utf-8"):
                break
            await asyncio.sleep(0.05)
        assert "standalone1" in state.read_text(encoding="utf-8")
    finally:
        proc.kill()
        await proc.wait()

    proc, _ = await start("--port", str(port), "--state", str(state))
    try:
        query = await post(base + "/pay/orderquery", signed_body({"out_trade_no": "standalone1"}))
        assert query["trade_state"] == "NOTPAY" and query["total_fee"] == "1"
        resp = await AsyncHTTPClient().fetch(base + "/_sim/orders/standalone1")
        assert json.loads(resp.body)["order"]["prepay_id"] == reply["prepay_id"]
        tokens = await AsyncHTTPClient().fetch(base + "/_sim/tokens", raise_error=False)
        assert tokens.code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), STARTUP_LIMIT)
    assert proc.returncode == 0 and b"WeChat simulator stopped" in out
    assert list(tmp_path.glob("*.tmp")) == []  # atomic writes leave no debris


async def test_config_file_and_prefix(tmp_path):
    config = tmp_path / "sim.toml"
    config.write_text(
        '[[apps]]\nappid = "wx1111222233334444"\nsecret = "s3cr3t"\n\n'
        '[[merchants]]\nmch_id = "1230000109"\napi_key = "K' + "k" * 31 + '"\nappids = ["wx1111222233334444"]\n',
        encoding="utf-8",
    )
    port = free_port()
    proc, banner = await start("--port", str(port), "--config", str(config), "--prefix", "/_wechat")
    try:
        assert not any(demo.API_KEY in line for line in banner)
        body = signed_body({"appid": "wx1111222233334444", "mch_id": "1230000109", "out_trade_no": "x00001"},
                           key="K" + "k" * 31)
        reply = await post(f"http://127.0.0.1:{port}/_wechat/pay/orderquery", body)
        assert reply["err_code"] == "ORDERNOTEXIST"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), STARTUP_LIMIT)


async def test_standalone_drops_silent_clients_caps_connections_and_sends_no_server_header():
    from tests.server.raw_http import closed_within, connect, get, request

    port = free_port()
    proc, _ = await start("--port", str(port), "--header-timeout", "3", "--max-connections", "2")
    try:
        held = [await connect(port) for _ in range(2)]
        reader, writer = await connect(port)
        refusal = await asyncio.wait_for(reader.read(), 10)
        assert refusal.startswith(b"HTTP/1.1 503 "), refusal
        writer.close()
        waits = [await closed_within(r, 20) for r, _ in held]  # the silent two: dropped by the header timeout
        assert all(w > 0 for w in waits)
        for _, w in held:
            w.close()
        reader, writer = await connect(port)
        status, headers, _ = await request(reader, writer, get("/_sim/"))
        writer.close()
        assert status == 200 and headers.get("x-content-type-options") == "nosniff" and "server" not in headers
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), STARTUP_LIMIT)


async def test_a_busy_port_is_one_line_and_exit_2():
    holder, port = bind_unused_port()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wxpay.simulator", "--port", str(port), cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), STARTUP_LIMIT)
    finally:
        holder.close()
    assert proc.returncode == 2 and out == b""
    assert err.decode() == f"wxpay.simulator: cannot listen on 127.0.0.1:{port} (--host, --port): Address already in use\n"
