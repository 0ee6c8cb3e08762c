"""The fast paths added for speed build the very objects the slow paths built.

``models.frozen`` fills a frozen dataclass without its ``__init__``; the
parsers use it for every transaction, refund and notify event. Each must
be equal to (and hash, compare, print and refuse assignment like) the
object its own constructor makes from the same fields, with every field set.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from wxpay.errors import ProtocolError
from wxpay.v3 import ApiV3Cipher, NotifyReader, Validator
from wxpay.v3.models import parse_json_object, parse_refund, parse_transaction
from wxpay.v3.verification import SignedHeaders, read_signed_headers

from .vectors import APIV3_KEY, MCHID, NOW, load, public_key_verifier


def rebuilt(obj):
    """The same object through its dataclass constructor (nested dataclasses too)."""
    fields = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        fields[f.name] = rebuilt(value) if dataclasses.is_dataclass(value) else value
    return type(obj)(**fields)


def check_same(obj) -> None:
    slow = rebuilt(obj)
    assert obj == slow and repr(obj) == repr(slow) and hash(obj) == hash(slow)
    assert set(vars(obj)) == {f.name for f in dataclasses.fields(obj)}  # every field set, nothing else
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, dataclasses.fields(obj)[0].name, None)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_same(value)


def vector_plain(vector_id: str) -> dict:
    return json.loads(next(v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == vector_id)["plaintext"])


def test_a_parsed_transaction_is_the_constructed_one():
    check_same(parse_transaction(vector_plain("A1_transaction")))
    check_same(parse_transaction({"appid": "wx1", "mchid": "1", "out_trade_no": "T1", "trade_state": "NOTPAY",
                                  "amount": {"total": 5, "currency": "CNY"}}))


def test_a_parsed_refund_is_the_constructed_one():
    check_same(parse_refund(vector_plain("A2_refund")))


def test_notify_events_are_the_constructed_ones():
    reader = NotifyReader(Validator(public_key_verifier(), clock=lambda: NOW), ApiV3Cipher(APIV3_KEY), MCHID)
    notifies = {n["id"][:2]: n for n in load("response-verification.json")["notifies"]}
    for name in ("N1", "N2"):
        check_same(reader.read(notifies[name]["headers"], notifies[name]["body"].encode()))


def test_signed_headers_stay_immutable_and_named():
    signed = read_signed_headers(load("response-verification.json")["responses"][0]["headers"])
    assert isinstance(signed, SignedHeaders) and signed.serial.startswith("PUB_KEY_ID_") and not signed.is_probe
    with pytest.raises(AttributeError):
        signed.serial = "other"  # type: ignore[misc]


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf{}",  # a UTF-8 BOM
    '{"a":1}'.encode("utf-16"),  # UTF-16 (json.loads on bytes would take it)
    b'{"a":1,"a":2}', b'{"a":NaN}', b"[1]", b"\xff", b"", b"{" * 100000,
])
def test_strict_json_still_refuses(data):
    with pytest.raises(ProtocolError) as exc:
        parse_json_object(data, "x")
    assert exc.value.code == "malformed_json"
