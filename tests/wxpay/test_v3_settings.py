"""check_v3_settings: one line per problem of an APIv3 configuration, offline.

The certificates are made here with ``cryptography`` (the demo merchant's
TEST-ONLY key, a serial and validity of our choosing), so each case changes
exactly one thing.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from wxpay.errors import ConfigError
from wxpay.simulator import demo
from wxpay.v3.keys import load_private_key
from wxpay.v3_settings import V3Settings, check_v3_settings, fatal_v3_problems, load_v3_key_material
from .gateway_sim import APIV3_KEY, MERCHANT_KEY_PEM, PUB_ID, WECHAT_PUBLIC_KEY_PEM, v3_settings

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)
SERIAL = demo.MERCHANT_SERIAL_NO
MERCHANT_KEY = load_private_key(MERCHANT_KEY_PEM)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key=MERCHANT_KEY, serial: str = SERIAL, *, days: float = 365, start_days: float = -30) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wxpay-tests TEST ONLY")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(int(serial, 16)).not_valid_before(NOW + timedelta(days=start_days))
            .not_valid_after(NOW + timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def pem_of(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def problems(**changes) -> list[str]:
    return check_v3_settings(v3_settings(**changes), now=NOW)


def fields(lines: list[str]) -> list[str]:
    return [line.split(":", 1)[0] for line in lines]


def test_good_settings_have_no_problem_in_each_key_mode():
    for mode in ("public_key", "platform_cert", "gray"):
        settings = v3_settings(mode=mode, merchant_certificate_pem=certificate(),
                               merchant_public_key_pem=pem_of(MERCHANT_KEY))
        assert settings.key_mode == mode
        assert check_v3_settings(settings, now=NOW) == []
        assert load_v3_key_material(settings, now=NOW).public_key is not None or mode == "platform_cert"


@pytest.mark.parametrize("changes, field, fragment", [
    ({"merchant_serial_no": "4A1B2C3D4E5F60718293A4B5C6D7E8F901234568"}, "merchant_serial_no",
     "is not the merchant certificate's serial"),
    ({"merchant_certificate_pem": certificate(OTHER_KEY)}, "merchant_private_key",
     "does not belong to the merchant certificate"),
    ({"merchant_certificate_pem": None, "merchant_public_key_pem": pem_of(OTHER_KEY)}, "merchant_private_key",
     "does not match the merchant public key"),
    ({"merchant_serial_no": "4A1B-2C3D"}, "merchant_serial_no", "serial number (hex"),
    ({"merchant_private_key_pem": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"},
     "merchant_private_key", "not a PEM private key"),
    ({"merchant_certificate_pem": "not a certificate"}, "merchant_certificate", "not a PEM X.509 certificate"),
    ({"public_key_id": "PUB_KEY_ID_00000000000000000000000000000000AB"}, "public_key_id", "PUB_KEY_ID_ followed"),
    ({"public_key_id": "pub_key_id_0000000000000000000000000000000001"}, "public_key_id", "PUB_KEY_ID_ followed"),
    ({"public_key_id": " " + PUB_ID}, "public_key_id", "PUB_KEY_ID_ followed"),
    ({"public_key_id": demo.PLATFORM_SERIAL_NO}, "public_key_id", "PUB_KEY_ID_ followed"),
    ({"public_key_id": None}, "public_key_id", "needs both its ID"),
    ({"public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, "public_key_pem",
     "not a PEM public key"),
    ({"public_key_pem": pem_of(MERCHANT_KEY)}, "public_key_pem", "the merchant's own public key"),
    ({"apiv3_key": APIV3_KEY[:-1]}, "apiv3_key", "exactly 32 bytes"),
    ({"apiv3_key": APIV3_KEY + "0"}, "apiv3_key", "got 33"),
    ({"apiv3_key": "密" * 11}, "apiv3_key", "got 33"),
    ({"public_key_id": None, "public_key_pem": None}, "key_mode", "configure how to verify WeChat"),
    ({"platform_certificate_pems": (certificate(OTHER_KEY, "1A"),)}, "platform_certificate_pems",
     "platform-certificate mode is off"),
    ({"mchid": "19000001 09"}, "mchid", "merchant id"),
    ({"appids": ()}, "appids", "at least one appid"),
    ({"appids": ("wx5a1d000000000001", "wx-bad")}, "appids", "an appid"),
    ({"pay_base": "api.mch.weixin.qq.com"}, "pay_base", "absolute http(s) URL"),
])
def test_each_problem_is_one_line_naming_its_field(changes, field, fragment):
    base = {"merchant_certificate_pem": certificate()}
    lines = problems(**{**base, **changes})
    assert fields(lines) == [field], lines
    assert fragment in lines[0]
    assert fatal_v3_problems(v3_settings(**{**base, **changes}), now=NOW) == lines


def test_a_short_or_weak_merchant_key_is_named():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")
    lines = problems(merchant_private_key_pem=pem)
    assert fields(lines) == ["merchant_private_key"] and "RSA-1024" in lines[0]


def test_a_certificate_near_its_end_is_a_warning_and_an_expired_one_an_error():
    soon = problems(merchant_certificate_pem=certificate(days=10))
    assert fields(soon) == ["merchant_certificate"] and "(in 10 days)" in soon[0]
    assert fatal_v3_problems(v3_settings(merchant_certificate_pem=certificate(days=10)), now=NOW) == []
    assert check_v3_settings(v3_settings(merchant_certificate_pem=certificate(days=10)), now=NOW,
                             expiry_days=5) == []
    expired = v3_settings(merchant_certificate_pem=certificate(days=-1))
    assert fields(fatal_v3_problems(expired, now=NOW)) == ["merchant_certificate"]
    assert "expired on" in check_v3_settings(expired, now=NOW)[0]
    # WeChat's platform certificates given to start with: warned about, and an expired one skipped.
    pinned = v3_settings(mode="platform_cert", platform_certificate_pems=(
        certificate(OTHER_KEY, "1A", days=10), certificate(OTHER_KEY, "1B", days=-1), certificate(OTHER_KEY, "1C")))
    assert fields(check_v3_settings(pinned, now=NOW)) == ["platform_certificate_pems[0]", "platform_certificate_pems[1]"]
    assert fatal_v3_problems(pinned, now=NOW) == []
    assert [c.serial_no for c in load_v3_key_material(pinned, now=NOW).platform_certificates] == ["1A", "1C"]


def test_every_problem_at_once_and_no_secret_in_any_line():
    lines = problems(apiv3_key="x" * 31, public_key_id="PUB_KEY_ID_", merchant_serial_no="zz",
                     appids=(), platform_certificates=False, public_key_pem="junk")
    assert fields(lines) == ["appids", "merchant_serial_no", "apiv3_key", "public_key_id", "public_key_pem"]
    assert not [line for line in lines if "x" * 31 in line or "PRIVATE" in line]
    with pytest.raises(ConfigError) as refusal:
        load_v3_key_material(v3_settings(apiv3_key="x" * 31, appids=()), now=NOW)
    assert refusal.value.message.splitlines()[1:] == [
        line for line in check_v3_settings(v3_settings(apiv3_key="x" * 31, appids=()), now=NOW)]


def test_only_settings_are_checked():
    with pytest.raises(ConfigError):
        check_v3_settings({"mchid": "1"})  # type: ignore[arg-type]
    settings = V3Settings(mchid="1", appids=["wx1"], merchant_private_key_pem="", merchant_serial_no="1",
                          apiv3_key="")
    assert settings.appids == ("wx1",) and settings.key_mode is None
    assert "merchant_private_key" in fields(check_v3_settings(settings, now=NOW))
    assert WECHAT_PUBLIC_KEY_PEM not in repr(v3_settings())
