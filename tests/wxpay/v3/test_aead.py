"""AES-256-GCM with the APIv3 key against A1-A7."""
from __future__ import annotations

import base64

import pytest

from wxpay.errors import ConfigError, DecryptError
from wxpay.v3 import ApiV3Cipher

from .vectors import APIV3_KEY, by_id, load

AEAD = by_id(load("notify-aes-gcm.json")["vectors"])
GOOD = ["A1_transaction", "A2_refund", "A3_empty_aad", "A4_platform_certificate"]
BAD = ["A5_tampered_tag", "A6_wrong_aad", "A7_wrong_key"]


@pytest.mark.parametrize("vid", GOOD)
def test_decrypts_and_reencrypts(vid):
    v = AEAD[vid]
    cipher = ApiV3Cipher(v["apiv3_key"])
    plain = cipher.decrypt(nonce=v["nonce"], associated_data=v["associated_data"], ciphertext=v["ciphertext"])
    assert plain == v["plaintext"].encode("utf-8")
    assert cipher.decrypt_resource({**v, "algorithm": "AEAD_AES_256_GCM"}) == plain
    again = cipher.encrypt(nonce=v["nonce"], associated_data=v["associated_data"], plaintext=plain)
    assert again == v["ciphertext"]
    assert base64.b64decode(again)[-16:].hex() == v["tag_hex"]


@pytest.mark.parametrize("vid", BAD)
def test_tampering_and_wrong_keys_are_one_error(vid):
    v = AEAD[vid]
    with pytest.raises(DecryptError) as exc:
        ApiV3Cipher(v["apiv3_key"]).decrypt(
            nonce=v["nonce"], associated_data=v["associated_data"], ciphertext=v["ciphertext"])
    assert exc.value.code == "undecryptable"
    assert v["apiv3_key"] not in exc.value.message


@pytest.mark.parametrize("key", ["", "short", APIV3_KEY + "x", APIV3_KEY[:-1] + "é", b"\x00" * 31, None])
def test_the_apiv3_key_must_be_32_bytes(key):
    with pytest.raises(ConfigError) as exc:
        ApiV3Cipher(key)
    assert exc.value.code == "bad_apiv3_key"
    assert "32" in exc.value.message


def test_an_unset_key_is_reported_as_empty():
    """No length to report for a key that is not text (an unset setting): the operator reads 'got 0'."""
    with pytest.raises(ConfigError) as exc:
        ApiV3Cipher(None)
    assert exc.value.code == "bad_apiv3_key"
    assert "got 0:" in exc.value.message


def test_repr_hides_the_key():
    assert APIV3_KEY not in repr(ApiV3Cipher(APIV3_KEY))


@pytest.mark.parametrize(
    "change, code",
    [
        ({"algorithm": "AEAD_SM4_GCM"}, "unsupported_algorithm"),
        ({"algorithm": None}, "unsupported_algorithm"),
        ({"ciphertext": "not base64!"}, "malformed_ciphertext"),
        ({"ciphertext": base64.b64encode(b"x" * 15).decode()}, "malformed_ciphertext"),
        ({"ciphertext": 12}, "malformed_ciphertext"),
        ({"nonce": None}, "malformed_ciphertext"),
        ({"nonce": ""}, "bad_nonce"),
        ({"associated_data": ["transaction"]}, "malformed_ciphertext"),
        ({"ciphertext": base64.b64encode(b"x" * 16).decode()}, "undecryptable"),
    ],
    ids=["sm4", "no-algorithm", "not-base64", "shorter-than-tag", "number", "no-nonce", "empty-nonce", "aad-list", "tag-only"],
)
def test_malformed_resources_are_decrypt_errors_with_codes(change, code):
    resource = {**AEAD["A1_transaction"], "algorithm": "AEAD_AES_256_GCM", **change}
    with pytest.raises(DecryptError) as exc:
        ApiV3Cipher(APIV3_KEY).decrypt_resource(resource)
    assert exc.value.code == code


@pytest.mark.parametrize("resource", [["not", "an", "object"], "AEAD_AES_256_GCM", None, 12])
def test_a_resource_must_be_an_object(resource):
    with pytest.raises(DecryptError) as exc:
        ApiV3Cipher(APIV3_KEY).decrypt_resource(resource)
    assert exc.value.code == "malformed_ciphertext"


def test_encrypt_resource_round_trips_with_a_fresh_nonce():
    cipher = ApiV3Cipher(APIV3_KEY)
    a = cipher.encrypt_resource(b'{"x":1}', associated_data="transaction", original_type="transaction")
    b = cipher.encrypt_resource(b'{"x":1}', associated_data="transaction", original_type="transaction")
    assert a["nonce"] != b["nonce"] and len(a["nonce"]) == 12
    assert a["original_type"] == "transaction" and a["algorithm"] == "AEAD_AES_256_GCM"
    assert cipher.decrypt_resource(a) == b'{"x":1}'
