"""Live mode on APIv3: every key item checked, one line per problem, refused on the fatal ones.

``config`` checks what it can without reading keys (items set, files PEM,
the demo's TEST-ONLY values and key fingerprints); ``wxpay``'s own checker
reads the keys (``wiring.gateways.checked`` hands its lines to the same
list). Real key material is generated here: a merchant key and API
certificate (serial, validity chosen per test) and a WeChat Pay public key.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from config import SettingsError, load_settings
from wiring.gateways import checked, v3_problems
from wxpay.simulator import demo

from .livecfg import write_live_config, write_pem_pair

APIV3_KEY = "Zq8Wm3Kd7Rt2Yp5Xv9Bn4Hc6Jf1Lg0Ts"
PUBLIC_KEY_ID = "PUB_KEY_ID_0114232032812025010800391800000000"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_public(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate(key: rsa.RSAPrivateKey, *, serial: int, days: float) -> bytes:
    now = datetime.now(timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "1230000109")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - timedelta(days=300))
            .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def keys():
    return {"merchant": _key(), "other": _key(), "wechat": _key()}


SERIAL = 0x5A1B2C3D4E5F60718293A4B5C6D7E8F901234567


@pytest.fixture
def v3(tmp_path, keys):
    """A correct live APIv3 configuration: its file and the key files it names."""
    folder = tmp_path / "v3"
    folder.mkdir()
    files = {
        "key": folder / "apiclient_key.pem", "cert": folder / "apiclient_cert.pem", "pub": folder / "pub_key.pem",
    }
    files["key"].write_bytes(_pem_private(keys["merchant"]))
    files["cert"].write_bytes(certificate(keys["merchant"], serial=SERIAL, days=700))
    files["pub"].write_bytes(_pem_public(keys["wechat"]))
    live = write_live_config(tmp_path, *write_pem_pair(tmp_path))
    base = {
        "wechat.api_version": "v3", "wechat.apiv3_key": APIV3_KEY,
        "wechat.key_path": str(files["key"]), "wechat.cert_path": str(files["cert"]),
        "wechat.wechatpay_public_key_id": PUBLIC_KEY_ID, "wechat.wechatpay_public_key_path": str(files["pub"]),
    }
    return live, base, files


def problems(v3, **change) -> list[str]:
    live, base, _ = v3
    settings = load_settings(live, env={}, overrides={**base, **change})
    try:
        checked(settings)
    except SettingsError as exc:
        return exc.problems
    return []


def only(v3, **change) -> str:
    lines = problems(v3, **change)
    assert len(lines) == 1, lines
    return lines[0]


def test_a_correct_apiv3_configuration_passes(v3):
    assert problems(v3) == []
    # The APIv2 key is not needed on APIv3 (kept only to accept APIv2 notifies after a move).
    assert problems(v3, **{"wechat.api_key": None}) == []
    # The serial may be given instead of the certificate file.
    assert problems(v3, **{"wechat.cert_path": None, "wechat.merchant_serial_no": f"{SERIAL:X}"}) == []
    # Platform-certificate mode instead of the public key, or both (the gray switch).
    assert problems(v3, **{"wechat.wechatpay_public_key_id": None, "wechat.wechatpay_public_key_path": None,
                          "wechat.platform_certificates": True}) == []
    assert problems(v3, **{"wechat.platform_certificates": True}) == []


def test_the_environment_sets_every_new_key(v3):
    live, base, files = v3
    env = {"WXPAY_WECHAT_API_VERSION": "v3", "WXPAY_WECHAT_APIV3_KEY": APIV3_KEY,
           "WXPAY_WECHAT_KEY_PATH": str(files["key"]), "WXPAY_WECHAT_CERT_PATH": str(files["cert"]),
           "WXPAY_WECHAT_MERCHANT_SERIAL_NO": f"{SERIAL:X}",
           "WXPAY_WECHAT_WECHATPAY_PUBLIC_KEY_ID": PUBLIC_KEY_ID,
           "WXPAY_WECHAT_WECHATPAY_PUBLIC_KEY_PATH": str(files["pub"]), "WXPAY_WECHAT_PLATFORM_CERTIFICATES": "yes"}
    s = load_settings(live, env=env)
    w = s.wechat
    assert (w.api_version, w.apiv3_key, w.merchant_serial_no, w.wechatpay_public_key_id, w.platform_certificates) == \
        ("v3", APIV3_KEY, f"{SERIAL:X}", PUBLIC_KEY_ID, True)
    assert checked(s) is s
    assert APIV3_KEY not in repr(s)  # a secret like the APIv2 key


@pytest.mark.parametrize("change, setting, words", [
    ({"wechat.apiv3_key": None}, "wechat.apiv3_key", "is not set"),
    ({"wechat.apiv3_key": "Zq8Wm3Kd7Rt2Yp5Xv9Bn4Hc6Jf1Lg0T"}, "wechat.apiv3_key", "32"),
    ({"wechat.wechatpay_public_key_id": "PUB_KEY_0114232032812025"}, "wechat.wechatpay_public_key_id", "PUB_KEY_ID_"),
    ({"wechat.wechatpay_public_key_path": None}, "wechat.wechatpay_public_key_path", "must be set together"),
    ({"wechat.wechatpay_public_key_id": None, "wechat.wechatpay_public_key_path": None},
     "wechat.platform_certificates", "needs a way to verify WeChat"),
    ({"wechat.merchant_serial_no": "5A1B2C3D4E5F60718293A4B5C6D7E8F901234568"}, "wechat.merchant_serial_no",
     "is not the merchant certificate's serial"),
    ({"wechat.cert_path": None}, "wechat.merchant_serial_no", "no wechat.cert_path"),
    ({"wechat.key_path": None}, "wechat.key_path", "is not set"),
])
def test_each_problem_is_one_line_naming_its_setting(v3, change, setting, words):
    line = only(v3, **change)
    assert setting in line and words in line, line
    assert APIV3_KEY not in line


def test_a_key_that_is_not_the_certificate_s_is_refused(v3, keys):
    _, _, files = v3
    files["key"].write_bytes(_pem_private(keys["other"]))
    line = only(v3)
    assert line.startswith("wechat.key_path: does not belong to the merchant certificate"), line


def test_a_public_key_that_does_not_parse_or_is_the_merchant_s_own_is_refused(v3, keys):
    _, _, files = v3
    files["pub"].write_text("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n")
    assert only(v3).startswith("wechat.wechatpay_public_key_path: ")
    files["pub"].write_bytes(_pem_public(keys["merchant"]))
    assert "the merchant's own public key" in only(v3)


def test_a_certificate_about_to_expire_is_a_warning_and_an_expired_one_is_refused(v3, keys, tmp_path):
    live, base, files = v3
    files["cert"].write_bytes(certificate(keys["merchant"], serial=SERIAL, days=10))
    assert problems(v3) == []
    settings = load_settings(live, env={}, overrides=base)
    fatal, warnings = v3_problems(settings)
    assert fatal == [] and len(warnings) == 1
    assert warnings[0].startswith("wechat.cert_path: ") and "renew it" in warnings[0] and "(in 9 days)" in warnings[0]
    files["cert"].write_bytes(certificate(keys["merchant"], serial=SERIAL, days=-1))
    line = only(v3)
    assert line.startswith("wechat.cert_path: ") and "expired on" in line


def test_every_problem_is_listed_at_once(v3):
    lines = problems(v3, **{"wechat.apiv3_key": "short", "wechat.wechatpay_public_key_id": "PUB_KEY_ID_x",
                            "server.cookie_secret": None})
    assert len(lines) == 3, lines


# --- the demo merchant's TEST-ONLY keys, by value and by content ---------------------------------


@pytest.mark.parametrize("setting, value", [
    ("wechat.apiv3_key", demo.APIV3_KEY),
    ("wechat.merchant_serial_no", demo.MERCHANT_SERIAL_NO),
    ("wechat.wechatpay_public_key_id", demo.PUBLIC_KEY_ID),
])
def test_the_demo_s_apiv3_values_are_refused(v3, setting, value):
    lines = problems(v3, **{setting: value})
    assert any(setting in line and "publicly known" in line and "demo merchant" in line for line in lines), lines


@pytest.mark.parametrize("setting, demo_file", [
    ("wechat.key_path", "apiclient_key.pem"),
    ("wechat.wechatpay_public_key_path", "wechatpay_pub_key.pem"),
    ("wechat.wechatpay_public_key_path", "platform_cert.pem"),
])
def test_the_demo_s_test_only_keys_are_refused_by_path_and_by_fingerprint(v3, tmp_path, setting, demo_file):
    original = demo.V3_DIR / demo_file
    by_path = problems(v3, **{setting: str(original)})
    assert any(setting in line and "simulator's public demo keys" in line for line in by_path), by_path
    copy = Path(tmp_path / "renamed.pem")
    shutil.copyfile(original, copy)
    by_content = problems(v3, **{setting: str(copy)})
    assert any(setting in line and "fingerprint sha256:" in line for line in by_content), by_content


def test_apiv2_with_an_apiv3_key_prepares_a_move_and_is_checked_too(v3):
    """``api_version = "v2"`` with ``apiv3_key`` set: the server reads APIv3 notifies,
    so their keys must be right as well."""
    assert problems(v3, **{"wechat.api_version": "v2"}) == []
    line = only(v3, **{"wechat.api_version": "v2", "wechat.wechatpay_public_key_id": "PUB_KEY_ID_"})
    assert line.startswith("wechat.wechatpay_public_key_id: "), line


def test_apiv2_with_apiv3_prepared_names_a_missing_key_path_once(v3):
    """The APIv3 rules (config/v3_rules.py) and the APIv2 certificate check both need
    wechat.key_path: a merchant reads about it in one line, not two."""
    lines = problems(v3, **{"wechat.api_version": "v2", "wechat.api_key": "Qw7Er4Ty1Ui8Op3As6Df9Gh2Jk5Lz0Xc",
                            "wechat.key_path": None})
    assert len([line for line in lines if line.startswith("wechat.key_path")]) == 1, lines
