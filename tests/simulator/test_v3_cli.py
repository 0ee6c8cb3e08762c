"""``python -m wxpay.simulator credentials`` and the standalone simulator's V3 side, as real processes."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

from wxpay.simulator import demo
from wxpay.v3.keys import keys_match, load_certificate, load_private_key, load_public_key

from .test_standalone import ROOT, free_port, start
from .v3_server import MCH, PUB_ID, V3Merchant

TIMEOUT = 60  # a safety net against a hung child, not a performance assertion


def credentials(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wxpay.simulator", "credentials", *args], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_credentials_json_prints_what_a_client_needs():
    done = credentials("--json")
    assert done.returncode == 0, done.stderr
    creds = json.loads(done.stdout)
    assert "TEST ONLY" in creds["WARNING"]
    assert creds["appids"] == {"official_account": demo.OFFICIAL_ACCOUNT_APPID,
                               "mini_program": demo.MINI_PROGRAM_APPID, "mobile_app": demo.MOBILE_APP_APPID}
    assert (creds["mchid"], creds["apiv2_key"], creds["apiv3_key"]) == (MCH, demo.API_KEY, demo.APIV3_KEY)
    assert creds["merchant_serial_no"] == demo.MERCHANT_SERIAL_NO
    merchant_key = load_private_key(creds["merchant_private_key_pem"])
    assert keys_match(merchant_key, load_public_key(creds["merchant_public_key_pem"]))
    assert creds["wechatpay_public_key_id"] == PUB_ID
    wechat_key = load_private_key(creds["test_only_wechat_private_keys"]["wechatpay_public_key_private_pem"])
    assert keys_match(wechat_key, load_public_key(creds["wechatpay_public_key_pem"]))
    cert = load_certificate(creds["platform_certificate_pem"])
    assert cert.serial_no == creds["platform_certificate_serial_no"] == demo.PLATFORM_SERIAL_NO
    platform_key = load_private_key(creds["test_only_wechat_private_keys"]["platform_certificate_private_key_pem"])
    assert keys_match(platform_key, cert)
    assert creds["platform_certificate_valid_until"].startswith("2030-01-01")
    assert "TEST ONLY" in creds["test_only_wechat_private_keys"]["WARNING"]


def test_credentials_text_and_unknown_merchant():
    text = credentials()
    assert text.returncode == 0 and demo.APIV3_KEY in text.stdout and "PRIVATE KEY" not in text.stdout
    missing = credentials("--mchid", "1999999999")
    assert missing.returncode == 2 and "no merchant 1999999999" in missing.stderr


async def test_standalone_simulator_serves_v3():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, banner = await start("--port", str(port))
    try:
        assert any(demo.APIV3_KEY in line for line in banner) and any("credentials --json" in line for line in banner)
        import time
        merchant = V3Merchant(base, time.time)
        reply = await merchant.order("native", "standalonev3")
        assert reply.status == 200 and reply.signed and reply.json["code_url"].startswith("weixin://")
        queried = await merchant.call("GET", f"/v3/pay/transactions/out-trade-no/standalonev3?mchid={MCH}")
        assert queried.json["trade_state"] == "NOTPAY" and queried.signed
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
