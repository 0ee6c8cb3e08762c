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


async def test_unusable_apiv3_keys_stop_the_start_in_any_mode_one_line_each(tmp_path):
    """Sandbox too: a merchant trying their own APIv3 files gets every problem at once,
    named by its setting, before anything is opened (no store file is created)."""
    bad_key = tmp_path / "apiclient_key.pem"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    env = {"WXPAY_WECHAT_API_VERSION": "v3", "WXPAY_WECHAT_KEY_PATH": str(bad_key),
           "WXPAY_WECHAT_MERCHANT_SERIAL_NO": "not-hex", "WXPAY_WECHAT_APIV3_KEY": "short",
           "WXPAY_STORE_SQLITE_PATH": str(tmp_path / "never.sqlite3")}
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "server.py", "--port", "0"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    assert [ln.split(":")[0] for ln in lines] == ["- wechat.merchant_serial_no", "- wechat.key_path",
                                                 "- wechat.apiv3_key"], proc.stderr
    assert "short" not in proc.stderr and not (tmp_path / "never.sqlite3").exists()


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


def _live_config(tmp_path, **replace: str):
    """The config tests' correct live file, on SQLite, with no webhook receiver."""
    from tests.config.livecfg import write_live_config, write_pem_pair

    text = write_live_config(tmp_path, *write_pem_pair(tmp_path)).read_text()
    text = text.replace("[store]\n", f'[store]\nsqlite_path = "{tmp_path / "live.sqlite3"}"\n# ')
    text = text[: text.index("[webhooks]")] + "[reconciler]\nenabled = false\n"
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "entry-live.toml"
    path.write_text(text)
    return path


async def test_a_correct_live_configuration_starts(tmp_path):
    port = free_port()
    proc = spawn(["server.py", "--config", str(_live_config(tmp_path)), "--port", str(port)],
                 log_path=tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/healthz", proc)
        r = await Browser(base).get("/healthz")
        assert r.code == 200, r.body
        # The sandbox's demo shop (its catalogue and descriptions) is not served live.
        assert (await Browser(base).get("/")).code == 404
    finally:
        stop(proc)
    assert "live mode" in (tmp_path / "server.log").read_text()


def test_live_mode_refuses_the_demo_merchant_through_the_entry_point(tmp_path):
    """The entry point hands the simulator's demo values and files to the check."""
    from wxpay.simulator import demo

    path = _live_config(tmp_path, **{
        'appid = "wx1234567890abcdef"': f'appid = "{demo.OFFICIAL_ACCOUNT_APPID}"',
        'mch_id = "1230000109"': f'mch_id = "{demo.MCH_ID}"',
        'api_key = "Kq3Zt8Vw2Xy7Ab4Cd9Ef1Gh6Jk5Lm0Np"': f'api_key = "{demo.API_KEY}"',
        f'cert_path = "{tmp_path / "apiclient_cert.pem"}"': f'cert_path = "{demo.CERT_PATH}"',
    })
    (tmp_path / "apiclient_key.pem").write_bytes(demo.KEY_PATH.read_bytes())  # a copy, elsewhere
    proc = subprocess.run(
        [sys.executable, "server.py", "--config", str(path), "--port", "0"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    for key in ("wechat.appid", "wechat.mch_id", "wechat.api_key", "wechat.cert_path", "wechat.key_path"):
        assert sum(ln.startswith(f"- {key} ") for ln in lines) == 1, (key, lines)
    assert len(lines) == 5, lines
    assert demo.API_KEY not in proc.stderr


async def test_a_certificate_about_to_expire_is_logged_at_start_and_the_server_runs(tmp_path, caplog):
    from tests.config.test_live_v3 import SERIAL, _key, _pem_private, certificate

    from .conftest import start_server

    key = _key()
    (tmp_path / "k.pem").write_bytes(_pem_private(key))
    (tmp_path / "c.pem").write_bytes(certificate(key, serial=SERIAL, days=12))
    running = await start_server(tmp_path, **{"wechat.api_version": "v3", "wechat.key_path": str(tmp_path / "k.pem"),
                                              "wechat.cert_path": str(tmp_path / "c.pem")})
    try:
        warnings = [r.getMessage() for r in caplog.records if r.name == "wxpay_server.gateways"]
        assert len(warnings) == 1 and warnings[0].startswith("APIv3 settings: wechat.cert_path: ") \
            and "(in 11 days)" in warnings[0], warnings
        pay = running.services.gateway.describe()
        assert pay["merchant_serial_no"] == f"{SERIAL:X}" and pay["merchant_certificate_expires_at"] is not None
    finally:
        await running.stop(grace=1)
