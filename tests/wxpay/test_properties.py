"""Properties over arbitrary input: sign/verify and build/parse round-trip, tampering is caught."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wxpay.errors import SignatureError
from wxpay.payloads import jsapi_payloads, mini_program_payload
from wxpay.signing import HMAC_SHA256, MD5, sign, verify
from wxpay.xmlcodec import build_xml, parse_xml

KEY = "DemoApiKeyForSandbox000000000001"

# Text XML 1.0 can carry: no C0 controls but tab/LF/CR, no surrogates, no U+FFFE/U+FFFF.
xml_text = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="".join(chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)) + "\ufffe\uffff",
    ),
    max_size=40,
)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(lambda n: n != "sign")
messages = st.dictionaries(names, xml_text, min_size=1, max_size=8)
sign_types = st.sampled_from([MD5, HMAC_SHA256])

SETTINGS = settings(max_examples=100, deadline=None)


@SETTINGS
@given(messages, sign_types)
def test_sign_then_verify(params, sign_type):
    signed = {**params, "sign": sign(params, KEY, sign_type)}
    assert verify(signed, KEY, sign_type) == sign_type


@SETTINGS
@given(messages, sign_types)
def test_sign_survives_the_wire(params, sign_type):
    """What WeChat signs, serialises and we parse still verifies."""
    wire = build_xml({**params, "sign": sign(params, KEY, sign_type)})
    assert verify(parse_xml(wire), KEY, sign_type) == sign_type


@SETTINGS
@given(st.dictionaries(names, xml_text | st.integers(min_value=0, max_value=10**12), max_size=10))
def test_build_then_parse(params):
    assert parse_xml(build_xml(params)) == {k: str(v) for k, v in params.items()}


@SETTINGS
@given(messages, sign_types, st.data())
def test_tampering_any_value_breaks_verification(params, sign_type, data):
    signed = {**params, "sign": sign(params, KEY, sign_type)}
    # Only non-empty values are signed; an empty one may be changed to another empty one.
    candidates = sorted(k for k, v in params.items() if v)
    if not candidates:
        candidates = sorted(params)
    name = data.draw(st.sampled_from(candidates))
    new = data.draw(xml_text.filter(lambda v: v != params[name] and (v or params[name])))
    tampered = {**signed, name: new}
    with pytest.raises(SignatureError):
        verify(tampered, KEY, sign_type)


nonempty = xml_text.filter(bool)


@SETTINGS
@given(nonempty, nonempty.filter(lambda p: not p.startswith("prepay_id=")),
       st.text(min_size=1, max_size=32).filter(lambda n: "\x00" not in n), sign_types,
       st.integers(min_value=10**9, max_value=10**10 - 1))
def test_jsapi_pay_sign_equals_generic_sign(appid, prepay_id, nonce, sign_type, ts):
    """The payload builder's written-out stringA agrees with signing.sign."""
    bridge, choose = jsapi_payloads(appid, prepay_id, KEY, sign_type, timestamp=ts, nonce=nonce)
    fields = {k: v for k, v in bridge.to_dict().items() if k != "paySign"}
    assert bridge.pay_sign == choose.pay_sign == sign(fields, KEY, sign_type)
    mp = mini_program_payload(appid, prepay_id, KEY, sign_type, timestamp=ts, nonce=nonce)
    assert mp.pay_sign == bridge.pay_sign
