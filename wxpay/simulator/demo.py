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

# --- APIv3 (TEST ONLY: the shared vectors' keys, see demo_v3/README.md) ---------
# Every private key under demo_v3/ is published; never configure them anywhere real.
APIV3_KEY = "TESTONLYapiv3key0123456789abcdef"
MERCHANT_SERIAL_NO = "4A1B2C3D4E5F60718293A4B5C6D7E8F901234567"
PUBLIC_KEY_ID = "PUB_KEY_ID_0000000000000000000000000000000001"
PLATFORM_SERIAL_NO = "3C5D7E9FA1B2C3D4E5F60718293A4B5C6D7E8F90"
V3_DIR = Path(__file__).resolve().parent / "demo_v3"


def v3_pem(name: str) -> str:
    """One PEM file of demo_v3/ (TEST ONLY)."""
    return (V3_DIR / name).read_text(encoding="ascii")


# Everything above that a live configuration must never contain.
PUBLIC_VALUES = (
    OFFICIAL_ACCOUNT_APPID, OFFICIAL_ACCOUNT_SECRET, MINI_PROGRAM_APPID, MINI_PROGRAM_SECRET,
    MOBILE_APP_APPID, MOBILE_APP_SECRET, MCH_ID, API_KEY,
    APIV3_KEY, MERCHANT_SERIAL_NO, PUBLIC_KEY_ID, PLATFORM_SERIAL_NO,
)
