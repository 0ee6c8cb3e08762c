"""WeChat's numbers and times are ASCII digits, whole strings: ``int()`` and
``\\d`` also take Unicode digits ("١٢"), and ``$`` lets a trailing newline
through. Each of these used to be accepted."""
from __future__ import annotations

import pytest

from wxpay.bill import _convert
from wxpay.errors import ProtocolError
from wxpay.results import json_int, opt_int, parse_json_reply
from wxpay.timeutil import parse_success_time, parse_wire_time

ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize("text", ["20260101120000".translate(ARABIC), "20260101120000\n", "２０２６0101120000"])
def test_wire_time_is_ascii_digits_only(text):
    with pytest.raises(ProtocolError):
        parse_wire_time(text)


@pytest.mark.parametrize("text", ["2026-01-01 12:00:00".translate(ARABIC), "2026-01-01\n12:00:00"])
def test_success_time_is_ascii_digits_only(text):
    with pytest.raises(ProtocolError):
        parse_success_time(text)


@pytest.mark.parametrize("value", ["١٢", "12\n3", "1_000", "²"])
def test_reply_integers_are_ascii_digits_only(value):
    with pytest.raises(ProtocolError):
        opt_int({"total_fee": value}, "total_fee")
    with pytest.raises(ProtocolError):
        json_int({"expires_in": value}, "expires_in")


@pytest.mark.parametrize("errcode", ['"٠"', '"0\\n1"', '"1_0"'])
def test_json_errcode_is_ascii_digits_only(errcode):
    with pytest.raises(ProtocolError):
        parse_json_reply(f'{{"errcode": {errcode}, "access_token": "x", "expires_in": 7200}}'.encode())


def test_plain_numbers_still_parse():
    assert opt_int({"n": " 12 "}, "n") == 12
    assert json_int({"n": "7200"}, "n") == 7200
    assert parse_json_reply(b'{"errcode": "0", "x": 1}')["x"] == 1
    assert _convert("int", " 12 ") == 12


def test_bill_counts_are_ascii_digits_only():
    with pytest.raises(ProtocolError):
        _convert("int", "١٢")
