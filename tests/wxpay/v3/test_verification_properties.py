"""Properties: whatever WeChat signed verifies; any change to it is refused, as a VerificationError."""
from __future__ import annotations

import base64

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wxpay.errors import VerificationError
from wxpay.v3 import MerchantSigner, Validator, parse_authorization, request_message, wechatpay_headers
from wxpay.v3.keys import load_public_key
from wxpay.v3.signing import decode_signature, rsa_verify

from .vectors import KEYS, MCHID, MERCHANT_SERIAL, NOW, PLATFORM_SERIAL, PUB_KEY_ID, combined_verifier, merchant_key, platform_key, wechat_key

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALIDATOR = Validator(combined_verifier(), clock=lambda: NOW)
KEYS_BY_SERIAL = {PUB_KEY_ID: wechat_key, PLATFORM_SERIAL: platform_key}

bodies = st.binary(max_size=300)
nonces = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
header_nonces = nonces.filter(lambda n: '"' not in n and "," not in n)  # Authorization quoting
offsets = st.integers(min_value=-299, max_value=299)
serials = st.sampled_from(sorted(KEYS_BY_SERIAL))


def signed(body: bytes, nonce: str, offset: int, serial: str) -> dict[str, str]:
    return wechatpay_headers(KEYS_BY_SERIAL[serial](), serial, body, timestamp=NOW + offset, nonce=nonce)


def refused(headers: dict[str, str], body: bytes) -> str:
    try:
        VALIDATOR.validate(headers, body)
    except VerificationError as exc:
        return exc.code
    raise AssertionError("a changed message verified")


@SETTINGS
@given(bodies, nonces, offsets, serials)
def test_what_wechat_signed_verifies(body, nonce, offset, serial):
    assert VALIDATOR.validate(signed(body, nonce, offset, serial), body).serial == serial


@SETTINGS
@given(bodies, nonces, offsets, serials, st.data())
def test_any_change_to_the_body_is_refused(body, nonce, offset, serial, data):
    headers = signed(body, nonce, offset, serial)
    kind = data.draw(st.sampled_from(["flip", "insert", "delete", "append-newline"]))
    if kind == "flip":
        assume(body)
        i = data.draw(st.integers(0, len(body) - 1))
        bit = data.draw(st.integers(0, 7))
        changed = body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1:]
    elif kind == "insert":
        i = data.draw(st.integers(0, len(body)))
        changed = body[:i] + data.draw(st.binary(min_size=1, max_size=4)) + body[i:]
    elif kind == "delete":
        assume(body)
        i = data.draw(st.integers(0, len(body) - 1))
        changed = body[:i] + body[i + 1:]
    else:
        changed = body + b"\n"
    assert refused(headers, changed) == "bad_signature"


@SETTINGS
@given(bodies, nonces, offsets, serials, st.data())
def test_any_change_to_a_header_value_is_refused(body, nonce, offset, serial, data):
    headers = signed(body, nonce, offset, serial)
    name = data.draw(st.sampled_from(["Wechatpay-Nonce", "Wechatpay-Timestamp", "Wechatpay-Serial"]))
    if name == "Wechatpay-Nonce":
        new = data.draw(nonces)
    elif name == "Wechatpay-Timestamp":
        new = str(NOW + data.draw(offsets))
        if data.draw(st.booleans()):
            new = "0" + headers[name]  # same number, other text
    else:
        new = data.draw(st.sampled_from(sorted(KEYS_BY_SERIAL) + ["PUB_KEY_ID_0000000000000000000000000000000999", "0" * 40]))
    assume(new != headers[name])
    assert refused({**headers, name: new}, body) in ("bad_signature", "unknown_serial")


@SETTINGS
@given(bodies, nonces, offsets, serials, st.data())
def test_any_change_to_the_signature_is_refused(body, nonce, offset, serial, data):
    headers = signed(body, nonce, offset, serial)
    sig = headers["Wechatpay-Signature"]
    kind = data.draw(st.sampled_from(["bit", "char", "truncate", "extend"]))
    if kind == "bit":
        raw = bytearray(base64.b64decode(sig))
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
        new = base64.b64encode(bytes(raw)).decode()
    elif kind == "char":
        i = data.draw(st.integers(0, len(sig) - 1))
        new = sig[:i] + data.draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E)) + sig[i + 1:]
    elif kind == "truncate":
        new = sig[: data.draw(st.integers(0, len(sig) - 1))]
    else:
        new = sig + data.draw(st.text(st.sampled_from("AQ=+/"), min_size=1, max_size=8))
    assume(new != sig)
    code = refused({**headers, "Wechatpay-Signature": new}, body)
    assert code in ("bad_signature", "signature_not_base64", "signature_wrong_length", "missing_header")


@SETTINGS
@given(bodies, nonces, st.integers(min_value=300, max_value=10**6), st.booleans(), serials)
def test_outside_the_window_is_refused_however_well_signed(body, nonce, distance, future, serial):
    headers = signed(body, nonce, distance if future else -distance, serial)
    assert refused(headers, body) == "stale_timestamp"


@SETTINGS
@given(st.binary(max_size=200), header_nonces, st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
       st.from_regex(r"/v3/[A-Za-z0-9/_\-]{0,40}(\?[A-Za-z0-9=&%_\-]{1,40})?", fullmatch=True))
def test_requests_signed_by_the_merchant_verify_on_wechats_side_and_changes_do_not(body, nonce, method, path):
    signer = MerchantSigner(MCHID, MERCHANT_SERIAL, merchant_key())
    auth = parse_authorization(signer.authorization(method, path, body, timestamp=NOW, nonce=nonce))
    public = load_public_key(KEYS["merchant"]["public_key_pem"])
    signature = decode_signature(auth.signature)
    assert rsa_verify(public, request_message(method, path, auth.timestamp, auth.nonce_str, body), signature)
    assert not rsa_verify(public, request_message(method, path + "x", auth.timestamp, auth.nonce_str, body), signature)
    assert not rsa_verify(public, request_message(method, path, auth.timestamp, auth.nonce_str, body + b" "), signature)


# --- reading the headers: the values checked at once, as the exact rule reads them one by one ---------

def _one_by_one(headers: dict) -> tuple | str:
    """The exact rule, written out plainly (the reader's fast path must agree with it)."""
    names = {"wechatpay-timestamp": 0, "wechatpay-nonce": 1, "wechatpay-serial": 2, "wechatpay-signature": 3,
             "wechatpay-signature-type": 4, "request-id": 5}
    found: dict[int, str] = {}
    for name, value in headers.items():
        key = name.strip().lower().replace("_", "-")
        key = names.get(key[5:] if key.startswith("http-") else key)
        if key is None:
            continue
        if key in found or not isinstance(value, str) or len(value) > 1024 or any(
                c < " " or c == "\x7f" for c in value):
            return "malformed_header"
        found[key] = value.strip()
    values = tuple(found.get(i) for i in range(6))
    if not all(values[:4]):
        return "missing_header"
    if values[4] is not None and values[4] != "WECHATPAY2-SHA256-RSA2048":
        return "unsupported_signature_type"
    return values


header_names = st.sampled_from(["Wechatpay-Timestamp", "wechatpay-nonce", "WECHATPAY-SERIAL", "Wechatpay-Signature",
                                "HTTP_WECHATPAY_SIGNATURE", "Wechatpay-Signature-Type", "Request-ID", "request_id",
                                " Wechatpay-Nonce", "Content-Type", "X-Other"])
header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=30),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["WECHATPAY2-SHA256-RSA2048", " padded ", "x" * 1024, "y" * 600, "a\tb", "\u3000z", "\x7f"]),
    st.integers(), st.none(),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(header_names, header_values, max_size=8))
def test_reading_the_headers_agrees_with_reading_them_one_by_one(headers):
    from wxpay.v3.verification import read_signed_headers

    want = _one_by_one(headers)
    try:
        got = tuple(read_signed_headers(headers))
    except VerificationError as exc:
        got = exc.code
    assert got == want
