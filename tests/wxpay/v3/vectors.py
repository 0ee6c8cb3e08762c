"""The shared APIv3 vectors (tests/wxpay/vectors/v3, copied from the team's digest) and their keys."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from wxpay.v3.keys import load_certificate, load_private_key, load_public_key
from wxpay.v3.verification import CombinedVerifier, PlatformCertificateVerifier, PublicKeyVerifier

DIR = Path(__file__).resolve().parents[1] / "vectors" / "v3"


@cache
def load(name: str) -> dict:
    return json.loads((DIR / name).read_text(encoding="utf-8"))


KEYS = load("keys.json")
MCHID = KEYS["mchid"]
APIV3_KEY = KEYS["apiv3_key"]
MERCHANT_SERIAL = KEYS["merchant"]["serial_no"]
PUB_KEY_ID = KEYS["wechatpay_public_key"]["public_key_id"]
PLATFORM_SERIAL = KEYS["platform_certificate"]["serial_no"]
NOW = load("response-verification.json")["now"]


@cache
def merchant_key():
    return load_private_key(KEYS["merchant"]["private_key_pem"])


@cache
def wechat_key():
    """The simulated WeChat Pay public key's private half (WeChat's side)."""
    return load_private_key(KEYS["wechatpay_public_key"]["private_key_pem"])


@cache
def platform_key():
    return load_private_key(KEYS["platform_certificate"]["private_key_pem"])


@cache
def platform_certificate():
    return load_certificate(KEYS["platform_certificate"]["certificate_pem"])


def public_key_verifier() -> PublicKeyVerifier:
    return PublicKeyVerifier(PUB_KEY_ID, load_public_key(KEYS["wechatpay_public_key"]["public_key_pem"]))


def platform_verifier() -> PlatformCertificateVerifier:
    return PlatformCertificateVerifier([platform_certificate()])


def combined_verifier() -> CombinedVerifier:
    return CombinedVerifier(public_key_verifier(), platform_verifier())


def by_id(items: list[dict]) -> dict[str, dict]:
    return {item["id"]: item for item in items}
