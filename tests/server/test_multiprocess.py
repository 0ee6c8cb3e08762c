"""Two server processes on one store share one WeChat token refresh, and
(APIv3, platform-certificate mode) one download of WeChat's certificates.

Real OS processes: a standalone simulator and two servers on the same
SQLite file. Concurrent needs for the jsapi_ticket (and so the
access_token) in both processes must cause exactly one upstream fetch of
each: the cache and the refresh lease live in the store.
"""
from __future__ import annotations

import asyncio
import base64
import json

from tornado.httpclient import AsyncHTTPClient

from .browser import Browser, as_json
from .journey import wait_status
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


async def test_two_apiv3_processes_download_the_platform_certificates_once(tmp_path):
    """Platform-certificate mode: the certificates live in the store. Two server
    processes start together on one SQLite file; one downloads under the lease,
    the other takes what it saved, and each verifies its own notifies with them."""
    sim_port, ports = free_port(), [free_port(), free_port()]
    sim = spawn(["-m", "wxpay.simulator", "--port", str(sim_port), "--notify-time-scale", "1000"],
                log_path=tmp_path / "sim.log")
    sim_base = f"http://127.0.0.1:{sim_port}"
    env = {
        "WXPAY_STORE_SQLITE_PATH": str(tmp_path / "shared.sqlite3"),
        "WXPAY_WECHAT_PAY_BASE": sim_base,
        "WXPAY_WECHAT_API_BASE": sim_base,
        "WXPAY_WECHAT_OPEN_BASE": sim_base,
        "WXPAY_RECONCILER_ENABLED": "false",
        "WXPAY_WECHAT_API_VERSION": "v3",
        "WXPAY_WECHAT_PLATFORM_CERTIFICATES": "true",
    }
    servers = []
    try:
        await wait_http(f"{sim_base}/_sim/", sim)
        client = AsyncHTTPClient()
        mode = await client.fetch(f"{sim_base}/_sim/v3/merchants/1900000109", method="POST",
                                  body=json.dumps({"key_mode": "platform_cert"}), raise_error=False)
        assert mode.code == 200, mode.body
        servers = [spawn(["server.py", "--port", str(p)], env, log_path=tmp_path / f"server{i}.log")
                   for i, p in enumerate(ports)]
        for proc, port in zip(servers, ports):
            await wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        admin = {"Authorization": "Basic " + base64.b64encode(b"admin:sandbox-admin").decode()}

        async def trusted() -> tuple[list[list[str]], int]:
            downloads, serials = 0, []
            for port in ports:
                status = as_json(await client.fetch(f"http://127.0.0.1:{port}/status.json", headers=admin))
                v3 = status["wechat_pay"]["gateways"]["v3"]
                serials.append([c["serial_no"] for c in v3["platform_certificates"]])
                downloads += sum(c["calls_total"] for c in status["wechat"] if "certificates" in c["endpoint"])
            return serials, downloads

        # A process serves while its start-up load runs (in sandbox the certificates may come from
        # its own simulator): on a loaded machine the loser of the lease may not have loaded yet.
        for _ in range(100):  # bounded: 10 s
            serials, downloads = await trusted()
            if all(serials):
                break
            await asyncio.sleep(0.1)
        assert serials == [["3C5D7E9FA1B2C3D4E5F60718293A4B5C6D7E8F90"]] * 2 and downloads == 1, (serials, downloads)
        # Each process pays and verifies its own notify (signed with the platform certificate).
        headers = {"Authorization": "Bearer sandbox-merchant-token", "Content-Type": "application/json"}
        for port in ports:
            base = f"http://127.0.0.1:{port}"
            checkout = as_json(await client.fetch(f"{base}/api/checkouts", method="POST", headers=headers,
                                                  body=json.dumps({"amount_fen": 100, "description": "tea"})))
            merchant = Browser(base)
            await merchant.get(f"/pay/{checkout['id']}")
            native = as_json(await merchant.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
            scan = await client.fetch(f"{sim_base}/_sim/scan", method="POST", raise_error=False, headers=headers,
                                      body=json.dumps({"code_url": native["code_url"], "outcome": "ok"}))
            assert scan.code == 200 and as_json(scan)["ok"], (scan.code, scan.body, native)
            await wait_status(merchant, checkout["id"], "paid", tries=400)
    finally:
        stop(*servers, sim)
