"""/v3/certificates: the signed, encrypted vector reply; the public-key merchant's 404; replies that must be refused."""
from __future__ import annotations

import json

import pytest

from wxpay.errors import (
    ConfigError, DecryptError, PlatformCertificatesUnavailableError, ProtocolError, RetryableBusinessError,
    VerificationError, WxPayError,
)
from wxpay.timeutil import parse_rfc3339
from wxpay.v3 import ApiV3Cipher, PlatformCertificateVerifier, wechatpay_headers
from wxpay.v3.certificates import parse_certificates, read_certificates_reply

from .vectors import APIV3_KEY, KEYS, NOW, PLATFORM_SERIAL, PUB_KEY_ID, load, platform_key, public_key_verifier, wechat_key

SET = load("certificates-and-bills.json")
OK = SET["certificates_ok"]
CIPHER = ApiV3Cipher(APIV3_KEY)


def read(status, headers, body, **kw):
    return read_certificates_reply(status, headers, body, CIPHER, clock=lambda: NOW, **kw)


def test_the_vector_reply_decrypts_to_the_platform_certificate():
    certs = read(OK["status"], OK["headers"], OK["body"].encode())
    assert [c.serial_no for c in certs] == [PLATFORM_SERIAL]
    cert = certs[0]
    assert cert.pem == KEYS["platform_certificate"]["certificate_pem"]
    entry = json.loads(OK["body"])["data"][0]
    assert (cert.not_before, cert.not_after) == (parse_rfc3339(entry["effective_time"]), parse_rfc3339(entry["expire_time"]))
    assert PlatformCertificateVerifier(certs).preferred_serial == PLATFORM_SERIAL


def test_a_public_key_merchant_gets_a_clear_error():
    v = SET["certificates_public_key_merchant"]
    with pytest.raises(PlatformCertificatesUnavailableError) as exc:
        read(v["status"], {"Request-ID": "REQ-404"}, v["body"].encode())
    err = exc.value
    assert err.code == "no_platform_certificates" and not err.retryable
    assert "public key" in err.message and "PUB_KEY_ID_" in err.message
    assert (err.err_code, err.http_status, err.request_id) == ("RESOURCE_NOT_EXISTS", 404, "REQ-404")


def test_other_errors_keep_their_own_type():
    with pytest.raises(RetryableBusinessError):
        read(500, {}, b'{"code":"SYSTEM_ERROR","message":"busy"}')
    with pytest.raises(WxPayError) as exc:
        read(404, {}, b'{"code":"ORDER_NOT_EXIST","message":"?"}')
    assert not isinstance(exc.value, PlatformCertificatesUnavailableError)


def test_a_tampered_reply_is_refused():
    body = OK["body"].replace("2030-01-01T08", "2031-01-01T08").encode()
    with pytest.raises(VerificationError) as exc:
        read(200, OK["headers"], body)
    assert exc.value.code == "bad_signature"


def test_a_reply_signed_by_a_trusted_public_key_passes_and_an_unknown_serial_does_not():
    body = OK["body"].encode()
    headers = wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=NOW, nonce="C" * 32)
    with pytest.raises(VerificationError) as exc:
        read(200, headers, body)
    assert exc.value.code == "unknown_serial"
    assert read(200, headers, body, verifier=public_key_verifier())[0].serial_no == PLATFORM_SERIAL


def test_a_stale_reply_is_refused():
    with pytest.raises(VerificationError) as exc:
        read_certificates_reply(200, OK["headers"], OK["body"].encode(), CIPHER, clock=lambda: NOW + 3600)
    assert exc.value.code == "stale_timestamp"


def test_the_wrong_apiv3_key_is_a_decrypt_error():
    with pytest.raises(DecryptError):
        read_certificates_reply(200, OK["headers"], OK["body"].encode(), ApiV3Cipher("0" * 32), clock=lambda: NOW)


def _signed(body_obj) -> tuple[dict, bytes]:
    body = json.dumps(body_obj).encode()
    return wechatpay_headers(platform_key(), PLATFORM_SERIAL, body, timestamp=NOW, nonce="C" * 32), body


def test_a_certificate_listed_under_another_serial_is_refused():
    obj = json.loads(OK["body"])
    obj["data"][0]["serial_no"] = "0" * 40
    with pytest.raises(ProtocolError) as exc:
        read(200, *_signed(obj))
    assert exc.value.code == "certificate_mismatch"


@pytest.mark.parametrize(
    "obj, code",
    [
        ({"data": []}, "missing_field"),
        ({}, "missing_field"),
        ({"data": ["x"]}, "bad_field"),
        ({"data": [{"serial_no": PLATFORM_SERIAL}]}, "missing_field"),
        ({"data": [{"serial_no": PLATFORM_SERIAL,
                    "encrypt_certificate": CIPHER.encrypt_resource(b"not a certificate", associated_data="certificate")}]},
         "bad_field"),
    ],
    ids=["empty", "no-data", "not-objects", "no-ciphertext", "not-a-certificate"],
)
def test_malformed_lists(obj, code):
    with pytest.raises(ProtocolError) as exc:
        parse_certificates(json.dumps(obj).encode(), CIPHER)
    assert exc.value.code == code


def test_an_empty_verifier_set_is_a_config_error():
    with pytest.raises(ConfigError):
        PlatformCertificateVerifier(())


def test_with_a_trusted_verifier_the_carried_certificates_do_not_vouch_for_themselves():
    """A refresh must be signed by a key already trusted; only a first load trusts what it carries."""
    with pytest.raises(VerificationError) as exc:
        read(OK["status"], OK["headers"], OK["body"].encode(), verifier=public_key_verifier())
    assert exc.value.code == "unknown_serial"
