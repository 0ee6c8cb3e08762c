"""Bills: the signed step-1 vector, the SHA1 check of the plain and gzip file, and what must be refused."""
from __future__ import annotations

import base64
import gzip
import json

import pytest

from wxpay.bill import parse_bill
from wxpay.errors import MessageTooLargeError, ProtocolError
from wxpay.v3 import Validator
from wxpay.v3.bills import BillDownload, check_bill, parse_bill_download

from .vectors import NOW, combined_verifier, load

BILL = load("certificates-and-bills.json")["tradebill"]
STEP1 = BILL["step1_response"]
PLAIN = BILL["file_plain_utf8"].encode("utf-8")
GZIP = base64.b64decode(BILL["file_gzip_base64"])


def download() -> BillDownload:
    body = STEP1["body"].encode()
    Validator(combined_verifier(), clock=lambda: NOW).validate(STEP1["headers"], body)
    return parse_bill_download(body)


def test_step1_reply_is_verified_and_read():
    d = download()
    assert (d.hash_type, d.hash_value) == ("SHA1", BILL["file_plain_sha1"])
    assert d.path_with_query == "/v3/billdownload/file?token=TESTTOKEN0001"


@pytest.mark.parametrize("data", [PLAIN, GZIP, gzip.compress(PLAIN, mtime=0, compresslevel=1)], ids=["plain", "vector-gzip", "other-gzip"])
def test_the_file_checks_plain_or_gzip(data):
    assert check_bill(data, download()) == PLAIN


def test_the_checked_file_parses_as_a_statement():
    bill = parse_bill(check_bill(GZIP, download()))
    assert bill.rows[0].out_trade_no == "T20251231000001" and bill.summary is not None


@pytest.mark.parametrize(
    "data",
    [BILL["tampered_case"]["file_plain_utf8"].encode(), gzip.compress(BILL["tampered_case"]["file_plain_utf8"].encode()),
     PLAIN[:-1], b""],
    ids=["tampered", "tampered-gzip", "truncated", "empty"],
)
def test_a_changed_file_is_refused(data):
    with pytest.raises(ProtocolError) as exc:
        check_bill(data, download())
    assert exc.value.code == "bill_hash_mismatch"


def test_an_upper_case_hash_is_accepted():
    d = download()
    assert check_bill(PLAIN, BillDownload(d.hash_type, d.hash_value.upper(), d.download_url)) == PLAIN


def test_broken_gzip_and_bombs_are_refused():
    with pytest.raises(ProtocolError):
        check_bill(GZIP[:-10], download())
    with pytest.raises(ProtocolError):
        check_bill(b"\x1f\x8b not gzip", download())
    with pytest.raises(MessageTooLargeError):
        check_bill(gzip.compress(b"0" * 1_000_000), download(), max_bytes=100_000)


@pytest.mark.parametrize(
    "change, code",
    [
        ({"hash_type": "MD5"}, "unsupported_hash"),
        ({"hash_value": "e686"}, "bad_field"),
        ({"hash_value": "z" * 40}, "bad_field"),
        ({"download_url": "/v3/billdownload/file?token=x"}, "bad_field"),
        ({"download_url": "ftp://x/y"}, "bad_field"),
        ({"hash_value": None}, "missing_field"),
        ({"download_url": ""}, "missing_field"),
        ({"hash_type": 1}, "missing_field"),
    ],
)
def test_bad_step1_replies(change, code):
    obj = {**json.loads(STEP1["body"]), **change}
    with pytest.raises(ProtocolError) as exc:
        parse_bill_download(json.dumps(obj).encode())
    assert exc.value.code == code


def test_the_path_ignores_the_urls_host():
    d = BillDownload("SHA1", "0" * 40, "https://evil.example/v3/billdownload/file?token=T")
    assert d.path_with_query == "/v3/billdownload/file?token=T"
