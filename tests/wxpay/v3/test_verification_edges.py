"""V3 signing and verification at their edges: header sizes and characters,
bodies as any bytes-like object, refusals of a verifier that cannot work,
which platform certificate names our requests, and errors that say what is wrong.

Pure functions and real keys (the shared vectors): unit tests. Each case
pins a survivor of the mutation run (docs/MUTATION.md).
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from wxpay.errors import ConfigError, DecryptError, ProtocolError, VerificationError
from wxpay.v3 import ApiV3Cipher, Validator, wechatpay_headers
from wxpay.v3.signing import request_message, response_message
from wxpay.v3.verification import PlatformCertificateVerifier, PublicKeyVerifier, read_signed_headers

from .test_notify import make_notify, reader
from .vectors import APIV3_KEY, NOW, PUB_KEY_ID, wechat_key
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
