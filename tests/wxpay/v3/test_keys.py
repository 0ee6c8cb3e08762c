"""Keys and certificates: PEM loading, serials, validity, and whether a key pair matches."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from wxpay.errors import ConfigError
from wxpay.v3 import MerchantSigner, certificate_serial, keys_match, load_certificate, load_private_key, load_public_key

from .vectors import KEYS, MCHID, MERCHANT_SERIAL, PLATFORM_SERIAL, merchant_key, platform_certificate


def _certificate_for(key: rsa.RSAPrivateKey, serial: int) -> str:
    """A self-signed certificate holding ``key`` (the merchant's own is not in the vectors)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TEST ONLY merchant")])
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(serial).not_valid_before(start).not_valid_after(start + timedelta(days=1825))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_platform_certificate_serial_and_validity_match_the_vectors():
    cert = platform_certificate()
    p = KEYS["platform_certificate"]
    assert cert.serial_no == PLATFORM_SERIAL
    assert cert.not_before == datetime.fromisoformat(p["effective_time"])
    assert cert.not_after == datetime.fromisoformat(p["expire_time"])
    assert cert.not_before.tzinfo is not None
    assert cert.valid_at(cert.not_before) and cert.valid_at(cert.not_after)
    assert not cert.valid_at(cert.not_after + timedelta(seconds=1))
    assert not cert.valid_at(int(cert.not_before.timestamp()) - 1)
    assert certificate_serial(p["certificate_pem"]) == PLATFORM_SERIAL


def test_merchant_certificate_serial_is_upper_case_hex():
    pem = _certificate_for(merchant_key(), int(MERCHANT_SERIAL, 16))
    assert certificate_serial(pem) == MERCHANT_SERIAL
    assert certificate_serial(pem.encode()) == MERCHANT_SERIAL


def test_key_pairs_match_only_their_own_halves():
    priv = merchant_key()
    assert keys_match(priv, load_public_key(KEYS["merchant"]["public_key_pem"]))
    assert keys_match(priv, load_certificate(_certificate_for(priv, 7)))
    assert not keys_match(priv, load_public_key(KEYS["wechatpay_public_key"]["public_key_pem"]))
    assert not keys_match(priv, platform_certificate())


def test_signer_reads_the_serial_from_the_certificate_and_checks_the_pair():
    pem = _certificate_for(merchant_key(), int(MERCHANT_SERIAL, 16))
    key_pem = KEYS["merchant"]["private_key_pem"]
    signer = MerchantSigner.from_pem(MCHID, key_pem, certificate_pem=pem)
    assert signer.serial_no == MERCHANT_SERIAL
    assert MerchantSigner.from_pem(MCHID, key_pem, serial_no=MERCHANT_SERIAL.lower(), certificate_pem=pem).serial_no == MERCHANT_SERIAL
    with pytest.raises(ConfigError) as exc:
        MerchantSigner.from_pem(MCHID, key_pem, certificate_pem=KEYS["platform_certificate"]["certificate_pem"])
    assert exc.value.code == "key_certificate_mismatch"
    with pytest.raises(ConfigError) as exc:
        MerchantSigner.from_pem(MCHID, key_pem, serial_no="0" * 40, certificate_pem=pem)
    assert exc.value.code == "serial_mismatch"
    with pytest.raises(ConfigError) as exc:
        MerchantSigner.from_pem(MCHID, key_pem)
    assert exc.value.code == "missing_serial"


def _pem(key, encryption=serialization.NoEncryption()) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.mark.parametrize(
    "loader, pem, code",
    [
        (load_private_key, "", "bad_private_key"),
        (load_private_key, "not a key", "bad_private_key"),
        (load_private_key, KEYS["merchant"]["public_key_pem"], "bad_private_key"),
        (load_private_key, _pem(rsa.generate_private_key(65537, 2048), serialization.BestAvailableEncryption(b"pw")), "bad_private_key"),
        (load_private_key, _pem(rsa.generate_private_key(65537, 1024)), "bad_private_key"),
        (load_private_key, _pem(ec.generate_private_key(ec.SECP256R1())), "bad_private_key"),
        (load_public_key, KEYS["merchant"]["private_key_pem"], "bad_public_key"),
        (load_public_key, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "bad_public_key"),
        (load_certificate, KEYS["merchant"]["public_key_pem"], "bad_certificate"),
        (load_certificate, b"   ", "bad_certificate"),
    ],
    ids=["empty", "garbage", "public-as-private", "encrypted", "rsa-1024", "ec", "private-as-public",
         "truncated", "key-as-certificate", "blank"],
)
def test_bad_key_material_is_a_config_error_with_a_code(loader, pem, code):
    with pytest.raises(ConfigError) as exc:
        loader(pem)
    assert exc.value.code == code
    assert "MII" not in exc.value.message  # never echoes key material
