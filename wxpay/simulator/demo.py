"""Documented demo credentials: what the simulator accepts with no config.

These exist only inside the simulator (sandbox mode, tests). They are printed
at start and in the README; they must never reach WeChat.
"""
from __future__ import annotations

from pathlib import Path

OFFICIAL_ACCOUNT_APPID = "wx5a1d000000000001"
OFFICIAL_ACCOUNT_SECRET = "demo0fficial0account0secret00001"
MINI_PROGRAM_APPID = "wx5a1d000000000002"
MINI_PROGRAM_SECRET = "demo0mini0program0secret00000002"
MOBILE_APP_APPID = "wx5a1d000000000003"
MOBILE_APP_SECRET = "demo0mobile0app0secret0000000003"
MCH_ID = "1900000109"
API_KEY = "DemoApiKeyForSandbox000000000001"  # 32 chars, like a real APIv2 key

# A publicly known self-signed pair (see demo_cert/README.md), so refunds
# work in sandbox with nothing configured.
CERT_DIR = Path(__file__).resolve().parent / "demo_cert"
CERT_PATH = CERT_DIR / "apiclient_cert.pem"
KEY_PATH = CERT_DIR / "apiclient_key.pem"

# Everything above that a live configuration must never contain.
PUBLIC_VALUES = (
    OFFICIAL_ACCOUNT_APPID, OFFICIAL_ACCOUNT_SECRET, MINI_PROGRAM_APPID, MINI_PROGRAM_SECRET,
    MOBILE_APP_APPID, MOBILE_APP_SECRET, MCH_ID, API_KEY,
)
