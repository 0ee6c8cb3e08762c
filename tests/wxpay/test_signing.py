"""V2 signatures against the shared vectors, and one test per verification rejection."""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from wxpay import signing
from wxpay.errors import SignatureError
from wxpay.signing import HMAC_SHA256, MD5, jssdk_signature, make_nonce, sign, verify

VECTORS = json.loads(
    (Path(__file__).resolve().parent / "vectors" / "signatures.json").read_text()
)
KEY = VECTORS["T1_md5"]["key"]


@pytest.mark.parametrize(
    "name", ["T1_md5", "T2_hmac", "T6_bridge_md5_derived", "T7_bridge_hmac_derived", "T8_app_md5_derived"]
)
def test_pay_vectors(name):
    v = VECTORS[name]
    assert sign(v["params"], v["key"], v["sign_type"]) == v["expected"]
    assert verify({**v["params"], "sign": v["expected"]}, v["key"], v["sign_type"]) == v["sign_type"]


@pytest.mark.parametrize("name", ["T3_jssdk", "T4_jssdk_old"])
def test_jssdk_vectors(name):
    v = VECTORS[name]
    assert jssdk_signature(v["jsapi_ticket"], v["noncestr"], v["timestamp"], v["url"]) == v["expected"]


def test_jssdk_ignores_fragment():
    v = VECTORS["T3_jssdk"]
    got = jssdk_signature(v["jsapi_ticket"], v["noncestr"], int(v["timestamp"]), v["url"] + "#/pay?x=1")
    assert got == v["expected"]


# --- string-to-sign rules ------------------------------------------------------


def _md5_of(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


def test_t1_string_to_sign_is_the_documented_one():
    v = VECTORS["T1_md5"]
    documented = (
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100"
        "&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
    )
    assert sign(v["params"], KEY) == _md5_of(documented)
    expected_hmac = hmac.new(KEY.encode(), documented.encode(), hashlib.sha256).hexdigest().upper()
    assert sign(v["params"], KEY, HMAC_SHA256) == expected_hmac


def test_sign_and_empty_values_are_dropped():
    base = {"b": "2", "a": "1"}
    assert sign({**base, "sign": "WHATEVER", "c": "", "d": None}, KEY) == sign(base, KEY)
    assert sign(base, KEY) == _md5_of(f"a=1&b=2&key={KEY}")


def test_ascii_order_puts_uppercase_first():
    params = {"timeStamp": "1", "appId": "x", "package": "p", "nonceStr": "n", "Zed": "z"}
    assert sign(params, KEY) == _md5_of(f"Zed=z&appId=x&nonceStr=n&package=p&timeStamp=1&key={KEY}")


def test_declared_sign_type_is_signed_like_any_field():
    params = {"a": "1", "sign_type": HMAC_SHA256}
    raw = f"a=1&sign_type=HMAC-SHA256&key={KEY}"
    assert sign(params, KEY, HMAC_SHA256) == hmac.new(
        KEY.encode(), raw.encode(), hashlib.sha256
    ).hexdigest().upper()
    # Signed without it, the message no longer verifies once it is declared.
    assert sign(params, KEY, HMAC_SHA256) != sign({"a": "1"}, KEY, HMAC_SHA256)


def test_values_are_not_url_encoded_and_ints_are_text():
    assert sign({"u": "a b&c=d", "n": 5}, KEY) == _md5_of(f"n=5&u=a b&c=d&key={KEY}")


def test_unsupported_sign_type_and_missing_key_refused():
    with pytest.raises(SignatureError, match="Unsupported"):
        sign({"a": "1"}, KEY, "SHA1")
    with pytest.raises(SignatureError, match="No API key"):
        sign({"a": "1"}, "", MD5)


def test_nonce_from_secrets_alphabet_and_length():
    nonces = {make_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(n) == 32 and n.isascii() and n.isalnum() for n in nonces)
    assert len(make_nonce(16)) == 16


# --- verification rejections, one per reason -----------------------------------


def _signed(algo: str = MD5, /, **extra: str) -> dict[str, str]:
    params = {**VECTORS["T1_md5"]["params"], **extra}
    return {**params, "sign": sign(params, KEY, algo)}


def test_good_message_verifies_and_lower_case_sign_is_accepted():
    msg = _signed()
    assert verify(msg, KEY, MD5) == MD5
    assert verify({**msg, "sign": msg["sign"].lower()}, KEY, MD5) == MD5


def test_reject_missing_sign():
    msg = _signed()
    del msg["sign"]
    with pytest.raises(SignatureError, match="no signature"):
        verify(msg, KEY, MD5)


def test_reject_empty_sign():
    with pytest.raises(SignatureError, match="no signature"):
        verify({**_signed(), "sign": ""}, KEY, MD5)


def test_reject_wrong_sign():
    msg = _signed()
    msg["sign"] = "0" * 32
    with pytest.raises(SignatureError, match="does not verify"):
        verify(msg, KEY, MD5)


def test_reject_wrong_key():
    with pytest.raises(SignatureError, match="does not verify"):
        verify(_signed(), KEY[::-1], MD5)


def test_reject_md5_signed_message_for_hmac_order():
    with pytest.raises(SignatureError, match="length"):
        verify(_signed(MD5), KEY, HMAC_SHA256)


def test_reject_hmac_signed_message_for_md5_order():
    with pytest.raises(SignatureError, match="length"):
        verify(_signed(HMAC_SHA256), KEY, MD5)


def test_reject_declared_sign_type_other_than_the_orders():
    msg = _signed(MD5, sign_type=MD5)
    with pytest.raises(SignatureError, match="order uses HMAC-SHA256"):
        verify(msg, KEY, HMAC_SHA256)


def test_reject_unknown_declared_sign_type():
    with pytest.raises(SignatureError, match="Unknown sign_type"):
        verify(_signed(MD5, sign_type="RSA"), KEY, MD5)


def test_reject_declared_sign_type_removed_after_signing():
    msg = _signed(HMAC_SHA256, sign_type=HMAC_SHA256)
    del msg["sign_type"]
    with pytest.raises(SignatureError, match="does not verify"):
        verify(msg, KEY, HMAC_SHA256)


def test_reject_tampered_field():
    msg = _signed()
    msg["body"] = "tesT"
    with pytest.raises(SignatureError, match="does not verify"):
        verify(msg, KEY, MD5)


def test_reject_added_field():
    msg = _signed()
    msg["total_fee"] = "1"
    with pytest.raises(SignatureError, match="does not verify"):
        verify(msg, KEY, MD5)


@pytest.mark.parametrize("length", [31, 33, 63, 65])
def test_reject_wrong_length(length):
    msg = _signed()
    msg["sign"] = (msg["sign"] * 3)[:length]
    with pytest.raises(SignatureError, match="length"):
        verify(msg, KEY, None)


def test_reject_non_ascii_sign_of_right_length():
    msg = _signed()
    msg["sign"] = "é" * 32
    with pytest.raises(SignatureError, match="does not verify"):
        verify(msg, KEY, MD5)


def test_no_expected_type_defaults_to_md5():
    assert verify(_signed(MD5), KEY, None) == MD5
    with pytest.raises(SignatureError):
        verify(_signed(HMAC_SHA256), KEY, None)


def test_comparison_is_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    msg = _signed()
    verify(msg, KEY, MD5)
    with pytest.raises(SignatureError):
        verify({**msg, "sign": "F" * 32}, KEY, MD5)
    assert len(calls) == 2
    assert calls[0] == (msg["sign"].encode(), msg["sign"].encode())
    assert calls[1][1] == b"F" * 32
