"""Two server processes on one store share one WeChat token refresh.

Real OS processes: a standalone simulator and two servers on the same
SQLite file. Concurrent needs for the jsapi_ticket (and so the
access_token) in both processes must cause exactly one upstream fetch of
each: the cache and the refresh lease live in the store.
"""
from __future__ import annotations

import asyncio

from tornado.httpclient import AsyncHTTPClient

from .browser import as_json
from .processes import free_port, spawn, stop, wait_http


async def test_two_processes_refresh_the_token_once(tmp_path):
    sim_port, ports = free_port(), [free_port(), free_port()]
    sim = spawn(["-m", "wxpay.simulator", "--port", str(sim_port)], log_path=tmp_path / "sim.log")
    sim_base = f"http://127.0.0.1:{sim_port}"
    env = {
        "WXPAY_STORE_SQLITE_PATH": str(tmp_path / "shared.sqlite3"),
        "WXPAY_WECHAT_PAY_BASE": sim_base,
        "WXPAY_WECHAT_API_BASE": sim_base,
        "WXPAY_WECHAT_OPEN_BASE": sim_base,
        "WXPAY_RECONCILER_ENABLED": "false",
    }
    servers = [
        spawn(["server.py", "--port", str(p)], env, log_path=tmp_path / f"server{i}.log") for i, p in enumerate(ports)
    ]
    try:
        await wait_http(f"{sim_base}/_sim/tokens", sim)
        for proc, port in zip(servers, ports):
            await wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        client = AsyncHTTPClient()
        headers = {"Authorization": "Bearer sandbox-merchant-token"}
        requests = [
            client.fetch(
                f"http://127.0.0.1:{port}/api/wx-config?url=https%3A%2F%2Fshop.example%2Fpage%3Fa%3D{i}",
                headers=headers, raise_error=False, request_timeout=30,
            )
            for i in range(10)
            for port in ports
        ]
        replies = await asyncio.gather(*requests)
        assert [r.code for r in replies] == [200] * 20, [r.body for r in replies if r.code != 200]
        assert {as_json(r)["appId"] for r in replies} == {"wx5a1d000000000001"}
        log = as_json(await client.fetch(f"{sim_base}/_sim/tokens"))["issued"]
        issued = [e["kind"] for e in log if e["outcome"] == "issued"]
        assert issued.count("access_token") == 1, log
        assert issued.count("jsapi_ticket") == 1, log
    finally:
        stop(*servers, sim)
