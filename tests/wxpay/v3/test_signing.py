"""Request signing against R1-R5, and the Authorization header both ways (RS1-RS5)."""
from __future__ import annotations

import pytest

from wxpay.errors import InvalidArgumentError, VerificationError
from wxpay.v3 import MerchantSigner, parse_authorization, request_message
from wxpay.v3.keys import load_public_key
from wxpay.v3.signing import decode_signature, lines_message, make_nonce, rsa_verify

from .vectors import KEYS, MCHID, MERCHANT_SERIAL, by_id, load, merchant_key

SIGNING = load("request-signing.json")
REQUESTS = by_id(SIGNING["vectors"])
CHECKS = by_id(SIGNING["simulator_checks"])


def signer(clock=lambda: 0.0) -> MerchantSigner:
    return MerchantSigner(MCHID, MERCHANT_SERIAL, merchant_key(), clock=clock)


@pytest.mark.parametrize("vid", sorted(REQUESTS))
def test_request_vectors(vid):
    v = REQUESTS[vid]
    body = v["body"].encode("utf-8")
    assert len(body) == v["body_utf8_bytes"]
    message = request_message(v["method"], v["path_with_query"], v["timestamp"], v["nonce_str"], body)
    assert message == v["string_to_sign"].encode("utf-8")
    assert signer().sign(message) == v["signature"]
    header = signer().authorization(
        v["method"], v["path_with_query"], body, timestamp=int(v["timestamp"]), nonce=v["nonce_str"]
    )
    assert header == v["authorization"]


@pytest.mark.parametrize("vid", sorted(REQUESTS))
def test_parse_authorization_reads_what_the_signer_wrote(vid):
    v = REQUESTS[vid]
    auth = parse_authorization(v["authorization"])
    assert (auth.mchid, auth.nonce_str, auth.timestamp, auth.serial_no, auth.signature) == (
        MCHID, v["nonce_str"], v["timestamp"], MERCHANT_SERIAL, v["signature"])
    assert auth.header() == v["authorization"]
    # WeChat's side: rebuild the string from what it received and verify with the merchant's public key.
    public = load_public_key(KEYS["merchant"]["public_key_pem"])
    message = request_message(v["method"], v["path_with_query"], auth.timestamp, auth.nonce_str, v["body"].encode())
    assert rsa_verify(public, message, decode_signature(auth.signature))


def test_rs2_reserialised_body_does_not_verify():
    v, check = REQUESTS["R4_post_json_utf8"], CHECKS["RS2_body_reserialised"]
    auth = parse_authorization(v["authorization"])
    public = load_public_key(KEYS["merchant"]["public_key_pem"])
    message = request_message("POST", v["path_with_query"], auth.timestamp, auth.nonce_str, check["sent_body"].encode())
    assert not rsa_verify(public, message, decode_signature(auth.signature))


def test_rs3_wrong_serial_is_read_as_given():
    assert parse_authorization(CHECKS["RS3_wrong_serial"]["authorization"]).serial_no == "0" * 40


def test_rs5_other_scheme_is_refused_with_its_own_code():
    with pytest.raises(VerificationError) as exc:
        parse_authorization(CHECKS["RS5_bad_scheme"]["authorization"])
    assert exc.value.code == "unsupported_scheme"


def test_parameters_may_come_in_any_order():
    v = REQUESTS["R1_get_query"]
    scheme, params = v["authorization"].split(" ", 1)
    reordered = scheme + " " + ",".join(reversed(params.split(",")))
    assert parse_authorization(reordered) == parse_authorization(v["authorization"])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.replace(",", ", "),                          # spaces after commas
        lambda h: h.replace('mchid="1900000109",', ""),         # a parameter missing
        lambda h: h + ',mchid="1900000109"',                      # a parameter twice
        lambda h: h + ',extra="1"',                               # an unknown parameter
        lambda h: h.replace('mchid="1900000109"', 'mchid=""'),   # an empty value
        lambda h: h.replace('mchid="1900000109"', "mchid=1900000109"),  # unquoted
        lambda h: h.replace(" ", "", 1),                          # no space after the scheme
        lambda h: h.split(" ", 1)[0],                             # scheme only
        lambda h: h + ",",                                        # trailing comma
    ],
    ids=["spaces", "missing", "twice", "unknown", "empty", "unquoted", "no-space", "scheme-only", "trailing"],
)
def test_malformed_authorization_is_refused(mutate):
    header = mutate(REQUESTS["R3_post_json_ascii"]["authorization"])
    with pytest.raises(VerificationError) as exc:
        parse_authorization(header)
    assert exc.value.code in ("malformed_authorization", "unsupported_scheme")
    if header.startswith("WECHATPAY2-SHA256-RSA2048 "):
        assert exc.value.code == "malformed_authorization"


@pytest.mark.parametrize("header", [None, ""])
def test_missing_authorization(header):
    with pytest.raises(VerificationError) as exc:
        parse_authorization(header)
    assert exc.value.code == "missing_header"


def test_signer_fills_in_timestamp_from_its_clock_and_a_fresh_nonce():
    auth1 = parse_authorization(signer(clock=lambda: 1767240000.9).authorization("GET", "/v3/certificates"))
    auth2 = parse_authorization(signer(clock=lambda: 1767240000.9).authorization("GET", "/v3/certificates"))
    assert auth1.timestamp == "1767240000"
    assert auth1.nonce_str != auth2.nonce_str
    assert len(auth1.nonce_str) == 32 and auth1.nonce_str == auth1.nonce_str.upper()
    assert len(make_nonce()) == 32


@pytest.mark.parametrize(
    "args, error",
    [
        (("post", "/v3/x", b""), InvalidArgumentError),
        (("POST", "v3/x", b""), InvalidArgumentError),
        (("POST", "/v3/x?a=b c", b""), InvalidArgumentError),
        (("POST", "/v3/x\n", b""), InvalidArgumentError),
        (("GET", "/v3/bill?name=账单", b""), InvalidArgumentError),
        (("POST", "/v3/x", '{"a":1}'), TypeError),
        (("POST", "/v3/x", {"a": 1}), TypeError),
    ],
    ids=["lower-method", "relative-path", "space-in-query", "newline", "not-encoded", "str-body", "dict-body"],
)
def test_signer_refuses_what_would_not_be_sent_as_signed(args, error):
    with pytest.raises(error):
        signer().authorization(*args)


@pytest.mark.parametrize("nonce", ['a"b', "a,b", "", "x" * 129])
def test_signer_refuses_nonces_that_break_the_header(nonce):
    with pytest.raises(InvalidArgumentError):
        signer().authorization("GET", "/v3/x", nonce=nonce)


@pytest.mark.parametrize("mchid", ['19"00', "19,00", "", "1900 0109"])
def test_signer_refuses_identities_that_break_the_header(mchid):
    with pytest.raises(InvalidArgumentError):
        MerchantSigner(mchid, MERCHANT_SERIAL, merchant_key())


def test_signer_repr_shows_no_key():
    text = repr(signer())
    assert MCHID in text and MERCHANT_SERIAL in text and "PRIVATE" not in text and "_key" not in text


def test_lines_message_ends_every_line():
    assert lines_message("a", "b") == b"a\nb\n"
    with pytest.raises(InvalidArgumentError):
        lines_message("a\nb")
