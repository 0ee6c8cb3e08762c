"""Response and notify verification against V1-V11 and N1-N4, one test per rejection reason."""
from __future__ import annotations

import base64
import binascii
import random
from datetime import timedelta

import pytest
from tornado.httputil import HTTPHeaders

from wxpay.errors import ConfigError, SignatureError, VerificationError
from wxpay.v3 import CombinedVerifier, PlatformCertificateVerifier, Validator, Verifier, wechatpay_headers
from wxpay.v3.signing import decode_signature, response_message
from wxpay.v3.verification import read_signed_headers

from .vectors import (
    NOW, PLATFORM_SERIAL, PUB_KEY_ID, by_id, combined_verifier, load, platform_certificate, platform_key,
    platform_verifier, public_key_verifier, wechat_key,
)

VERIFY = load("response-verification.json")
RESPONSES = by_id(VERIFY["responses"])
NOTIFIES = by_id(VERIFY["notifies"])

# The cause each invalid vector must be refused for.
EXPECTED_CODES = {
    "V4_tampered_body": "bad_signature",
    "V5_wrong_serial": "bad_signature",
    "V6_unknown_serial": "unknown_serial",
    "V8_window_300s": "stale_timestamp",
    "V9_window_future_301s": "stale_timestamp",
    "V10_signtest_probe": "signtest_probe",
    "N3_signtest_probe": "signtest_probe",
    "N4_tampered_body": "bad_signature",
}


def validator(verifier=None, now=NOW) -> Validator:
    return Validator(verifier or combined_verifier(), clock=lambda: now)


@pytest.mark.parametrize("vid", sorted(RESPONSES) + sorted(NOTIFIES))
def test_vectors(vid):
    v = RESPONSES.get(vid) or NOTIFIES[vid]
    body = v["body"].encode("utf-8")
    if v["expected"] == "valid":
        signed = validator().validate(v["headers"], body)
        assert signed.serial == v["headers"]["Wechatpay-Serial"]
        assert signed.request_id == v["headers"]["Request-ID"]
        assert not signed.is_probe
    else:
        with pytest.raises(VerificationError) as exc:
            validator().validate(v["headers"], body)
        assert exc.value.code == EXPECTED_CODES[vid]
        assert isinstance(exc.value, SignatureError)  # callers that catch the V2 class catch this too


def test_the_window_is_exclusive_at_300_seconds_on_both_sides():
    v = RESPONSES["V7_window_299s"]  # ts = NOW - 299
    body = v["body"].encode()
    validator(now=NOW).validate(v["headers"], body)
    validator(now=NOW - 598).validate(v["headers"], body)  # 299 s in the future
    for now in (NOW + 1, NOW - 599):
        with pytest.raises(VerificationError) as exc:
            validator(now=now).validate(v["headers"], body)
        assert exc.value.code == "stale_timestamp"


def test_a_fractional_clock_counts_whole_seconds_as_the_go_sdk_does():
    v = RESPONSES["V7_window_299s"]  # ts = NOW - 299
    validator(now=NOW + 0.99).validate(v["headers"], v["body"].encode())
    # 299.5 s before ts: the Go SDK's Unix() makes it 300 s, refused.
    with pytest.raises(VerificationError) as exc:
        validator(now=NOW - 598.5).validate(v["headers"], v["body"].encode())
    assert exc.value.code == "stale_timestamp"


def test_a_204_is_verified_over_an_empty_body_line():
    v = RESPONSES["V2_valid_204_empty"]
    validator().validate(v["headers"], b"")
    with pytest.raises(VerificationError):
        validator().validate(v["headers"], b"\n")


@pytest.mark.parametrize(
    "spell",
    [str.lower, str.upper, lambda n: "HTTP_" + n.upper().replace("-", "_"), lambda n: n],
    ids=["lower", "upper", "wsgi", "as-sent"],
)
def test_header_names_are_case_insensitive(spell):
    v = RESPONSES["V1_valid_pubkey"]
    headers = {spell(name): value for name, value in v["headers"].items()}
    assert validator().validate(headers, v["body"].encode()).serial == PUB_KEY_ID


def test_tornado_headers_work_as_they_come():
    v = RESPONSES["V3_valid_platform_cert"]
    headers = HTTPHeaders()
    for name, value in v["headers"].items():
        headers.add(name.lower(), value)
    validator().validate(headers, v["body"].encode())


def test_a_header_repeated_under_two_spellings_is_refused():
    v = RESPONSES["V1_valid_pubkey"]
    headers = {**v["headers"], "wechatpay-serial": PLATFORM_SERIAL}
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code == "malformed_header"


@pytest.mark.parametrize("name", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial", "Wechatpay-Signature"])
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_each_missing_header_is_refused(name, how):
    v = RESPONSES["V1_valid_pubkey"]
    headers = {k: val for k, val in v["headers"].items() if k != name}
    if how == "empty":
        headers[name] = ""
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code == "missing_header"
    assert name in exc.value.message


def test_signature_type_is_optional_but_must_be_rsa2048_when_present():
    v = RESPONSES["V1_valid_pubkey"]
    headers = {k: val for k, val in v["headers"].items() if k != "Wechatpay-Signature-Type"}
    validator().validate(headers, v["body"].encode())
    headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code == "unsupported_signature_type"


@pytest.mark.parametrize(
    "signature, code",
    [
        ("not base64!", "signature_not_base64"),
        ("%%%%", "signature_not_base64"),
        ("签名", "signature_not_base64"),
        ("AAAA AAAA", "signature_not_base64"),
        ("QUJD", "signature_wrong_length"),  # 3 bytes
        (base64.b64encode(bytes(255)).decode(), "signature_wrong_length"),
        (base64.b64encode(bytes(257)).decode(), "signature_wrong_length"),
        (base64.b64encode(bytes(256)).decode(), "bad_signature"),
    ],
    ids=["punctuation", "percent", "non-ascii", "space", "3-bytes", "255-bytes", "257-bytes", "zeros"],
)
def test_signatures_that_are_not_signatures_are_ordinary_verification_errors(signature, code):
    v = RESPONSES["V1_valid_pubkey"]
    headers = {**v["headers"], "Wechatpay-Signature": signature}
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code == code


def test_a_non_canonical_spelling_of_a_valid_signature_is_refused():
    v = RESPONSES["V1_valid_pubkey"]
    sig = v["headers"]["Wechatpay-Signature"]
    assert sig.endswith("Q==")  # 'Q' and 'R' differ only in the 4 unused bits
    headers = {**v["headers"], "Wechatpay-Signature": sig[:-3] + "R=="}
    assert base64.b64decode(headers["Wechatpay-Signature"]) == base64.b64decode(sig)
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code == "signature_not_base64"


@pytest.mark.parametrize("spelling", ["extra padding", "inner padding", "whitespace", "url-safe"])
def test_other_spellings_of_a_valid_signature_are_refused(spelling):
    v = RESPONSES["V1_valid_pubkey"]
    sig = v["headers"]["Wechatpay-Signature"]
    changed = {"extra padding": sig + "==", "inner padding": sig[:4] + "==" + sig[4:],
               "whitespace": sig[:40] + "\t" + sig[40:], "url-safe": sig.replace("+", "-").replace("/", "_")}[spelling]
    assert changed != sig
    headers = {**v["headers"], "Wechatpay-Signature": changed}
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code in ("signature_not_base64", "malformed_header")


def test_decode_signature_accepts_exactly_the_spelling_its_bytes_encode_to():
    """The cheap canonical check (length, then the last group) against the plain rule: re-encode, compare."""
    rnd = random.Random(16)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    texts = ["YMyw==", "RkIg=", "QUJD", "QUI=", "QUE=", "QUF=", "QR==", "QQ==", "QQ=", "Q===", ""]
    for _ in range(3000):
        text = list(base64.b64encode(rnd.randbytes(rnd.randrange(1, 9))).decode())
        for _ in range(rnd.randrange(0, 3)):
            text.insert(rnd.randrange(len(text) + 1), rnd.choice(alphabet))
        texts.append("".join(text))
    for text in texts:
        raw = binascii.a2b_base64(text, strict_mode=True) if _strict_ok(text) else b""
        canonical = bool(raw) and base64.b64encode(raw).decode() == text
        if canonical:
            assert decode_signature(text) == raw, text
        else:
            with pytest.raises(VerificationError):
                decode_signature(text)


def _strict_ok(text: str) -> bool:
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


@pytest.mark.parametrize("ts", ["", "-1767239990", "1767239990.0", "+1767239990", "1e9", "１７６７２３９９９０", "9" * 40])
def test_timestamps_that_are_not_unix_seconds_are_malformed(ts):
    v = RESPONSES["V1_valid_pubkey"]
    headers = {**v["headers"], "Wechatpay-Timestamp": ts}
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code in ("malformed_header", "missing_header")


@pytest.mark.parametrize("control", ["\n", "\x7f", "\x00"])
@pytest.mark.parametrize("name", ["Wechatpay-Nonce", "Wechatpay-Serial"])
def test_control_characters_in_headers_are_malformed(name, control):
    v = RESPONSES["V1_valid_pubkey"]
    headers = {**v["headers"], name: v["headers"][name][:5] + control + v["headers"][name][5:]}
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code == "malformed_header"


def test_a_public_key_merchant_does_not_know_platform_serials_and_vice_versa():
    v1, v3 = RESPONSES["V1_valid_pubkey"], RESPONSES["V3_valid_platform_cert"]
    with pytest.raises(VerificationError) as exc:
        validator(public_key_verifier()).validate(v3["headers"], v3["body"].encode())
    assert exc.value.code == "unknown_serial"
    with pytest.raises(VerificationError) as exc:
        validator(platform_verifier()).validate(v1["headers"], v1["body"].encode())
    assert exc.value.code == "unknown_serial"
    validator(public_key_verifier()).validate(v1["headers"], v1["body"].encode())
    validator(platform_verifier()).validate(v3["headers"], v3["body"].encode())


def test_platform_serials_are_matched_without_regard_to_case():
    v = RESPONSES["V3_valid_platform_cert"]
    headers = {**v["headers"], "Wechatpay-Serial": PLATFORM_SERIAL.lower()}
    validator().validate(headers, v["body"].encode())


def test_a_public_key_id_is_matched_exactly():
    v = RESPONSES["V1_valid_pubkey"]
    headers = {**v["headers"], "Wechatpay-Serial": PUB_KEY_ID.lower()}
    with pytest.raises(VerificationError) as exc:
        validator().validate(headers, v["body"].encode())
    assert exc.value.code == "unknown_serial"


def test_a_platform_certificate_verifies_only_inside_its_validity():
    cert = platform_certificate()
    body = b'{"code_url":"weixin://wxpay/bizpayurl?pr=LATE"}'
    late = int((cert.not_after + timedelta(seconds=10)).timestamp())
    headers = wechatpay_headers(platform_key(), PLATFORM_SERIAL, body, timestamp=late, nonce="n" * 32)
    with pytest.raises(VerificationError) as exc:
        validator(now=late).validate(headers, body)
    assert exc.value.code == "certificate_not_valid"
    early = int(cert.not_before.timestamp()) - 1
    headers = wechatpay_headers(platform_key(), PLATFORM_SERIAL, body, timestamp=early, nonce="n" * 32)
    with pytest.raises(VerificationError) as exc:
        validator(now=early).validate(headers, body)
    assert exc.value.code == "certificate_not_valid"


def test_wechatpay_headers_reproduce_the_vectors():
    for vid, key in (("V1_valid_pubkey", wechat_key()), ("V3_valid_platform_cert", platform_key())):
        v = RESPONSES[vid]
        h = v["headers"]
        made = wechatpay_headers(key, h["Wechatpay-Serial"], v["body"].encode(), timestamp=int(h["Wechatpay-Timestamp"]),
                                 nonce=h["Wechatpay-Nonce"], request_id=h["Request-ID"])
        assert made == h


def test_preferred_serials():
    assert public_key_verifier().preferred_serial == PUB_KEY_ID
    assert platform_verifier().preferred_serial == PLATFORM_SERIAL
    assert combined_verifier().preferred_serial == PUB_KEY_ID
    assert CombinedVerifier(platform_verifier(), public_key_verifier()).preferred_serial == PLATFORM_SERIAL
    for v in (public_key_verifier(), platform_verifier(), combined_verifier()):
        assert isinstance(v, Verifier)


def test_verifiers_refuse_empty_configuration():
    with pytest.raises(ConfigError) as exc:
        PlatformCertificateVerifier([])
    assert exc.value.code == "no_platform_certificates"
    with pytest.raises(ConfigError) as exc:
        CombinedVerifier()
    assert exc.value.code == "no_verifier"


def genuine() -> tuple[bytes, bytes]:
    """A message and the WeChat Pay public key's real signature of it."""
    v = RESPONSES["V1_valid_pubkey"]
    h = v["headers"]
    return (response_message(h["Wechatpay-Timestamp"], h["Wechatpay-Nonce"], v["body"].encode()),
            base64.b64decode(h["Wechatpay-Signature"]))


@pytest.mark.parametrize("make", [public_key_verifier, combined_verifier], ids=["public-key", "combined"])
def test_a_verifier_asked_directly_refuses_a_serial_it_does_not_know(make):
    """The serial is part of what is checked, not a hint: a real signature under a key named by
    another serial is refused (Verifier.verify is the Protocol's promise, not only Validator's)."""
    message, signature = genuine()
    verifier = make()
    verifier.verify(PUB_KEY_ID, message, signature, signed_at=NOW)
    for serial in ("PUB_KEY_ID_0000000000000000000000000000", PLATFORM_SERIAL + "0"):
        with pytest.raises(VerificationError) as exc:
            verifier.verify(serial, message, signature, signed_at=NOW)
        assert exc.value.code == "unknown_serial"


@pytest.mark.parametrize("signature", ["not base64!", "QUJD", base64.b64encode(bytes(256)).decode()],
                         ids=["not-base64", "3-bytes", "zeros"])
def test_an_unknown_serial_is_named_whatever_the_signature_looks_like(signature):
    """The serial is checked before the signature is read: a merchant who has not configured WeChat's
    public key is told so (unknown_serial), not that the message was not signed by WeChat."""
    v = RESPONSES["V3_valid_platform_cert"]
    headers = {**v["headers"], "Wechatpay-Signature": signature}
    with pytest.raises(VerificationError) as exc:
        validator(public_key_verifier()).validate(headers, v["body"].encode())
    assert exc.value.code == "unknown_serial"


def test_a_timestamp_has_at_most_twelve_digits():
    """Twelve digits hold every second until the year 33658; thirteen is a millisecond timestamp,
    refused as malformed even when a (millisecond) clock agrees with it, not compared as seconds."""
    body = b'{"code_url":"weixin://wxpay/bizpayurl?pr=FAR"}'
    for ts in (10**11, 999_999_999_999):  # the smallest and largest twelve-digit seconds
        headers = wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=ts, nonce="n" * 32)
        assert validator(now=ts + 1).validate(headers, body).timestamp == str(ts)
    ms = NOW * 1000
    headers = wechatpay_headers(wechat_key(), PUB_KEY_ID, body, timestamp=ms, nonce="n" * 32)
    with pytest.raises(VerificationError) as exc:
        validator(now=ms).validate(headers, body)
    assert exc.value.code == "malformed_header"


def test_the_body_must_be_bytes():
    v = RESPONSES["V1_valid_pubkey"]
    with pytest.raises(TypeError):
        validator().validate(v["headers"], v["body"])


def test_read_signed_headers_keeps_the_request_id():
    h = read_signed_headers(RESPONSES["V11_valid_error_body_4xx"]["headers"])
    assert h.request_id and h.signature_type == "WECHATPAY2-SHA256-RSA2048"
