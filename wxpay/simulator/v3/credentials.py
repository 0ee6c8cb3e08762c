"""What ``python -m wxpay.simulator credentials`` prints: everything a client needs, for one merchant.

The merchant's side (appids, mchid, APIv2 and APIv3 keys, the certificate
serial and private key, WeChat's public key and platform certificate) and,
under ``test_only_wechat_private_keys``, the simulated WeChat's own signing
keys so that a test can play WeChat's side. The demo merchant's keys are the
shared vectors' TEST-ONLY keys; the merchant private key exists only for the
demo merchant (for a configured merchant the simulator holds only its public key).
"""
from __future__ import annotations

from typing import Any

from wxpay.v3.keys import load_certificate

from .. import demo
from ..config import SimConfig, SimMerchant

WARNING = ("TEST ONLY: every private key here is published with the simulator; "
           "never configure these credentials anywhere real")


def credentials(config: SimConfig, merchant: SimMerchant) -> dict[str, Any]:
    apps = [config.app(a) for a in merchant.appids]
    appids: dict[str, str] = {}
    for app in apps:
        if app is not None:
            appids.setdefault(app.kind, app.appid)  # the first app of each kind
    out: dict[str, Any] = {
        "WARNING": WARNING,
        "appids": appids,
        "apps": [{"appid": a.appid, "kind": a.kind} for a in apps if a is not None],
        "mchid": merchant.mch_id,
        "apiv2_key": merchant.api_key,
    }
    v3 = merchant.v3
    if v3 is None:
        out["apiv3"] = None
        return out
    cert = load_certificate(v3.platform_certificate_pem)
    is_demo = merchant.mch_id == demo.MCH_ID and v3.serial_no == demo.MERCHANT_SERIAL_NO
    out.update({
        "apiv3_key": v3.apiv3_key,
        "merchant_serial_no": v3.serial_no,
        "merchant_private_key_pem": demo.v3_pem("apiclient_key.pem") if is_demo else None,
        "merchant_public_key_pem": v3.merchant_public_key_pem,
        "key_mode": v3.key_mode,
        "gray_share": v3.gray_share,
        "wechatpay_public_key_id": v3.public_key_id,
        "wechatpay_public_key_pem": v3.wechatpay_public_key_pem,
        "platform_certificate_serial_no": cert.serial_no,
        "platform_certificate_pem": v3.platform_certificate_pem,
        "platform_certificate_valid_from": cert.not_before.isoformat(),
        "platform_certificate_valid_until": cert.not_after.isoformat(),
        "test_only_wechat_private_keys": {
            "WARNING": "TEST ONLY: the simulated WeChat's own signing keys, for tests that play WeChat's side",
            "wechatpay_public_key_private_pem": v3.wechatpay_private_key_pem,
            "platform_certificate_private_key_pem": v3.platform_private_key_pem,
        },
    })
    return out


def describe(creds: dict[str, Any]) -> str:
    """The human-readable form (PEMs left out: use --json for them)."""
    lines = [f"# {creds['WARNING']}", f"mchid            {creds['mchid']}", f"apiv2_key        {creds['apiv2_key']}"]
    lines += [f"appid ({kind:<16}) {appid}" for kind, appid in creds["appids"].items()]
    if creds.get("apiv3_key"):
        lines += [
            f"apiv3_key        {creds['apiv3_key']}",
            f"merchant serial  {creds['merchant_serial_no']}",
            f"key mode         {creds['key_mode']} (gray share {creds['gray_share']})",
            f"public key id    {creds['wechatpay_public_key_id']}",
            f"platform serial  {creds['platform_certificate_serial_no']} "
            f"(valid {creds['platform_certificate_valid_from']} to {creds['platform_certificate_valid_until']})",
            "PEMs (merchant private key, WeChat public key, platform certificate, test-only WeChat keys): --json",
        ]
    else:
        lines.append("no APIv3 credentials for this merchant")
    return "\n".join(lines)
