"""V3 signing and verification at their edges: header sizes and characters,
bodies as any bytes-like object, refusals of a verifier that cannot work,
which platform certificate names our requests, and errors that say what is wrong.

Pure functions and real keys (the shared vectors): unit tests. Each case
pins a survivor of the mutation run (docs/MUTATION.md).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from wxpay.errors import (ConfigError, DecryptError, InvalidArgumentError, MessageTooLargeError, ProtocolError,
                          VerificationError)
from wxpay.v3 import ApiV3Cipher, Validator, wechatpay_headers
from wxpay.v3.notify import MAX_NOTIFY_BYTES, notify_reply
from wxpay.v3.signing import (Authorization, MerchantSigner, decode_signature, lines_message, request_message,
                              response_message, rsa_verify)
from wxpay.v3.verification import PlatformCertificateVerifier, PublicKeyVerifier, read_signed_headers

from .test_notify import make_notify, reader
from .vectors import APIV3_KEY, NOW, PUB_KEY_ID, load, merchant_key, wechat_key
from .wechat_server import make_platform_key

UTC = timezone.utc


def headers(**changes: str) -> dict[str, str]:
    h = wechatpay_headers(wechat_key(), PUB_KEY_ID, b"{}", timestamp=NOW, nonce="N" * 32)
    h.update(changes)
    return h


def test_a_header_value_of_1024_characters_is_read_and_1025_is_refused():
    assert read_signed_headers(headers(**{"Request-ID": "r" * 1024})).request_id == "r" * 1024
    with pytest.raises(VerificationError) as err:
        read_signed_headers(headers(**{"Request-ID": "r" * 1025}))
    assert err.value.code == "malformed_header"


def test_a_header_with_a_non_ascii_space_is_read_one_with_a_control_character_is_not():
    assert read_signed_headers(headers(**{"Request-ID": "req\u00a0id"})).request_id == "req\u00a0id"
    with pytest.raises(VerificationError) as err:
        read_signed_headers(headers(**{"Request-ID": "req\x07id"}))
    assert err.value.code == "malformed_header"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_the_signed_strings_take_any_bytes_like_body(kind):
    body = kind(b'{"a":1}')
    assert request_message("POST", "/v3/x", 1, "n", body) == b'POST\n/v3/x\n1\nn\n{"a":1}\n'
    assert response_message(1, "n", body) == b'1\nn\n{"a":1}\n'


def test_a_verifier_that_could_never_verify_is_refused_when_built():
    with pytest.raises(ConfigError) as err:
        PublicKeyVerifier("", wechat_key().public_key())
    assert err.value.code == "bad_public_key_id"
    with pytest.raises(ConfigError) as err:
        PlatformCertificateVerifier([])
    assert err.value.code == "no_platform_certificates"
    with pytest.raises(TypeError):
        Validator(object())  # type: ignore[arg-type]


def test_of_two_certificates_ending_together_the_higher_serial_names_our_requests():
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)
    high, low = make_platform_key(0x5F00, start, end), make_platform_key(0x4E00, start, end, key_no=1)
    for order in ([high, low], [low, high]):
        verifier = PlatformCertificateVerifier([k.certificate for k in order])
        assert verifier.preferred_serial == high.certificate.serial_no


def test_a_resource_s_field_of_the_wrong_type_is_named():
    cipher = ApiV3Cipher(APIV3_KEY)
    for field in ("nonce", "associated_data"):
        resource = {**cipher.encrypt_resource(b"{}", associated_data="transaction"), field: 12}
        resource["algorithm"] = "AEAD_AES_256_GCM"
        with pytest.raises(DecryptError, match=f"resource's {field} is not a string"):
            cipher.decrypt_resource(resource)


def test_a_notify_s_errors_say_it_is_the_notify():
    h, body = make_notify("TRANSACTION.SUCCESS", {}, envelope={"id": ""})
    with pytest.raises(ProtocolError, match="^Notify lacks the required field id"):
        reader().read(h, body)
    h, body = make_notify("TRANSACTION.SUCCESS", {}, envelope={"resource": "none"})
    with pytest.raises(ProtocolError, match="^Notify lacks its resource object"):
        reader().read(h, body)
    broken = b"[1]"
    h = wechatpay_headers(wechat_key(), PUB_KEY_ID, broken, timestamp=NOW, nonce="N" * 32)
    with pytest.raises(ProtocolError, match="^Notify is JSON but not an object"):
        reader().read(h, broken)


def test_an_apiv3_key_of_the_wrong_length_is_refused_saying_its_length():
    for key in (bytearray(b"k" * 31), b"k" * 33, "k" * 31):
        with pytest.raises(ConfigError, match=f"got {len(key)}:") as err:
            ApiV3Cipher(key)
        assert err.value.code == "bad_apiv3_key"
    assert ApiV3Cipher(bytearray(APIV3_KEY.encode())).decrypt_resource(
        ApiV3Cipher(APIV3_KEY).encrypt_resource(b"{}", associated_data="x")) == b"{}"


def test_a_ciphertext_with_characters_outside_base64_is_malformed_not_merely_undecryptable():
    cipher = ApiV3Cipher(APIV3_KEY)
    resource = cipher.encrypt_resource(b'{"a":1}', associated_data="transaction")
    for spoiled in (resource["ciphertext"][:8] + "*" + resource["ciphertext"][8:], resource["ciphertext"] + "\n"):
        with pytest.raises(DecryptError) as err:
            cipher.decrypt_resource({**resource, "ciphertext": spoiled})
        assert err.value.code == "malformed_ciphertext"


def test_a_resource_may_be_any_mapping():
    cipher = ApiV3Cipher(APIV3_KEY)
    resource = cipher.encrypt_resource(b'{"a":1}', associated_data="transaction")
    assert cipher.decrypt_resource(MappingProxyType(resource)) == b'{"a":1}'


def test_encrypting_with_an_unusable_nonce_is_refused():
    with pytest.raises(DecryptError) as err:
        ApiV3Cipher(APIV3_KEY).encrypt(nonce="", associated_data="", plaintext=b"x")
    assert err.value.code == "bad_nonce"


def test_an_authorization_s_repr_hides_its_signature():
    auth = Authorization("1900000109", "NONCE", "1700000000", "SERIAL", "SIGNATURE-VALUE")
    assert "SIGNATURE-VALUE" not in repr(auth) and "NONCE" in repr(auth)


def test_a_public_key_verifier_needs_a_loaded_key():
    with pytest.raises(TypeError):
        PublicKeyVerifier(PUB_KEY_ID, "-----BEGIN PUBLIC KEY-----")  # type: ignore[arg-type]


def test_a_reply_body_may_be_any_bytes_like_object_and_a_timestamp_has_at_most_12_digits():
    body = b'{"a":1}'
    validator = Validator(PublicKeyVerifier(PUB_KEY_ID, wechat_key().public_key()), clock=lambda: NOW)
    h = wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=NOW, nonce="N" * 32)
    for kind in (bytes, bytearray, memoryview):
        assert validator.validate(h, kind(body)).serial == PUB_KEY_ID
    with pytest.raises(VerificationError) as err:
        validator.validate({**h, "Wechatpay-Timestamp": "0" + str(NOW).rjust(12, "0")}, body)
    assert err.value.code == "malformed_header"


def test_of_two_certificates_the_one_ending_last_names_our_requests_whatever_its_serial():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    older = make_platform_key(0x7F00, start, datetime(2030, 1, 1, tzinfo=UTC))
    newer = make_platform_key(0x1E00, start, datetime(2031, 1, 1, tzinfo=UTC), key_no=1)
    assert PlatformCertificateVerifier([older.certificate, newer.certificate]).preferred_serial == \
        newer.certificate.serial_no


def test_a_ciphertext_with_non_ascii_characters_is_malformed():
    cipher = ApiV3Cipher(APIV3_KEY)
    resource = cipher.encrypt_resource(b"{}", associated_data="transaction")
    with pytest.raises(DecryptError) as err:
        cipher.decrypt_resource({**resource, "ciphertext": "é" + resource["ciphertext"]})
    assert err.value.code == "malformed_ciphertext"


def test_a_resource_without_associated_data_has_none():
    cipher = ApiV3Cipher(APIV3_KEY)
    resource = cipher.encrypt_resource(b'{"a":1}', associated_data="")
    del resource["associated_data"]
    assert cipher.decrypt_resource(resource) == b'{"a":1}'


def test_a_notify_body_may_be_any_bytes_like_object_up_to_64_kib():
    h, body = make_notify("TRANSACTION.SUCCESS", json.loads(
        load("notify-aes-gcm.json")["vectors"][0]["plaintext"]))
    for kind in (bytes, bytearray, memoryview):
        assert reader().read(h, kind(body)).event_type == "TRANSACTION.SUCCESS"
    assert MAX_NOTIFY_BYTES == 64 * 1024
    with pytest.raises(MessageTooLargeError):
        reader().read(h, body + b" " * (MAX_NOTIFY_BYTES + 1 - len(body)))


def test_a_body_that_is_not_bytes_is_refused_whatever_it_is():
    with pytest.raises(TypeError):
        request_message("POST", "/v3/x", 1, "n", [123, 125])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Validator(PublicKeyVerifier(PUB_KEY_ID, wechat_key().public_key()), clock=lambda: NOW).validate(
            headers(), [123, 125])  # type: ignore[arg-type]


def test_the_v3_reply_to_a_refused_notify_is_utf_8_json():
    assert notify_reply(False, "签名错误") == (500, '{"code":"FAIL","message":"签名错误"}'.encode("utf-8"))
    assert notify_reply(True) == (204, b"")


def test_the_merchant_signer_refuses_what_could_not_sign():
    key = merchant_key()
    with pytest.raises(InvalidArgumentError, match="^serial_no must be"):
        MerchantSigner("1900000109", 'SER"IAL', key)
    with pytest.raises(InvalidArgumentError, match="^mchid must be"):
        MerchantSigner("19,00", "SERIAL", key)
    with pytest.raises(TypeError):
        MerchantSigner("1900000109", "SERIAL", "-----BEGIN PRIVATE KEY-----")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="^field must be text"):
        lines_message("a\nb")


def test_signature_checks_say_yes_or_no():
    message = b"1\nn\n{}\n"
    good = wechat_key().sign(message, padding.PKCS1v15(), hashes.SHA256())
    assert rsa_verify(wechat_key().public_key(), message, good) is True
    assert rsa_verify(wechat_key().public_key(), message + b"x", good) is False
    with pytest.raises(VerificationError) as err:
        decode_signature(None)  # type: ignore[arg-type]
    assert err.value.code == "signature_not_base64"


def test_a_request_without_a_body_is_signed_as_an_empty_body():
    """A GET sends no body: its Authorization signs an empty body, the same as passing ``b""``."""
    from .vectors import MCHID, MERCHANT_SERIAL

    signer = MerchantSigner(MCHID, MERCHANT_SERIAL, merchant_key())
    implied = signer.authorization("GET", "/v3/certificates", timestamp=1700000000, nonce="NONCE1")
    assert implied == signer.authorization("GET", "/v3/certificates", b"", timestamp=1700000000, nonce="NONCE1")
    assert implied != signer.authorization("GET", "/v3/certificates", b"{}", timestamp=1700000000, nonce="NONCE1")


def test_a_platform_verifier_refuses_what_is_not_a_certificate():
    with pytest.raises(TypeError, match="^certificates must be wxpay.v3.keys.Certificate objects"):
        PlatformCertificateVerifier(["-----BEGIN CERTIFICATE-----"])  # type: ignore[list-item]
