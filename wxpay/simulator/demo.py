"""Documented demo credentials: what the simulator accepts with no config.

These exist only inside the simulator (sandbox mode, tests). They are printed
at start and in the README; they must never reach WeChat.
"""
from __future__ import annotations

OFFICIAL_ACCOUNT_APPID = "wx5a1d000000000001"
OFFICIAL_ACCOUNT_SECRET = "demo0fficial0account0secret00001"
MINI_PROGRAM_APPID = "wx5a1d000000000002"
MINI_PROGRAM_SECRET = "demo0mini0program0secret00000002"
MOBILE_APP_APPID = "wx5a1d000000000003"
MOBILE_APP_SECRET = "demo0mobile0app0secret0000000003"
MCH_ID = "1900000109"
API_KEY = "DemoApiKeyForSandbox000000000001"  # 32 chars, like a real APIv2 key
