"""Secrets an operator might deploy by mistake: the real entry point, in live
mode, with every credential of the simulator's demo merchant (the demo key
copied elsewhere and re-encoded), WeChat's documentation examples and
degenerate secrets. It must refuse to start, one line per item, echoing no
secret."""
from __future__ import annotations

import subprocess
import sys

from Crypto.PublicKey import RSA

from tests.config.livecfg import write_live_config
from tests.server.processes import ROOT
from wxpay.simulator import demo

from .results import record

CASE = "live mode refuses public and degenerate credentials"


def test_live_mode_refuses_public_and_degenerate_credentials(tmp_path):
    key = tmp_path / "key-pkcs1.pem"
    key.write_bytes(RSA.import_key(demo.KEY_PATH.read_bytes()).export_key(pkcs=1))
    text = write_live_config(tmp_path, demo.CERT_PATH, key).read_text()
    public = {
        'appid = "wx1234567890abcdef"': f'appid = "{demo.OFFICIAL_ACCOUNT_APPID}"',
        'mini_program_appid = "wxfedcba0987654321"': 'mini_program_appid = "wxd930ea5d5a258f4f"',
        'mch_id = "1230000109"': f'mch_id = "{demo.MCH_ID}"',
    }
    secrets = {"api_key": demo.API_KEY, "app_secret": demo.OFFICIAL_ACCOUNT_SECRET,
               "mini_program_secret": "192006250b4c09247ec02edce69f6a2d", "cookie_secret": "c" * 48,
               "password": "Ab1Ab1Ab1Ab1Ab1Ab1", "secret": "wh" * 20, "tokens": ["t0" * 20]}
    for line in text.splitlines():
        name = line.split(" = ")[0]
        if name in secrets:
            value = secrets[name]
            text = text.replace(line, f"{name} = {value!r}".replace("'", '"'))
    for old, new in public.items():
        text = text.replace(old, new)
    text = text.replace("[store]\n", f'[store]\nsqlite_path = "{tmp_path / "x.sqlite3"}"\n# ')
    config = tmp_path / "mistakes.toml"
    config.write_text(text)

    proc = subprocess.run([sys.executable, "server.py", "--config", str(config), "--port", "0"], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    lines = [ln.strip()[2:] for ln in proc.stderr.splitlines() if ln.strip().startswith("- ")]
    expected = ["wechat.appid", "wechat.mini_program_appid", "wechat.mch_id", "wechat.api_key", "wechat.app_secret",
                "wechat.mini_program_secret", "server.cookie_secret", "admin.password", "merchant_api.tokens",
                "webhooks.secret", "wechat.cert_path", "wechat.key_path"]
    try:
        assert proc.returncode == 2, proc.stdout + proc.stderr
        for name in expected:
            assert sum(ln.startswith(name) for ln in lines) == 1, (name, lines)
        assert len(lines) == len(expected), lines
        for value in (demo.API_KEY, demo.OFFICIAL_ACCOUNT_SECRET, "c" * 48, "Ab1Ab1Ab1Ab1Ab1Ab1", "wh" * 20):
            assert value not in proc.stderr
    except AssertionError as exc:
        record("secrets", CASE, f"FAIL: {str(exc)[:200]}")
        raise
    record("secrets", CASE, "pass", refused_items=len(lines), exit_code=proc.returncode)
