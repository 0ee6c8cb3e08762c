"""service.audit over a real SQLite store: what a record costs, verified or not."""
from __future__ import annotations

import hashlib

import pytest

from service.audit import MAX_RAW, PREFIX_CHARS, Audit, digest_fields
from store.open import indexes, open_store


@pytest.fixture
async def audit(tmp_path):
    store = open_store(None, sqlite_path=tmp_path / "a.sqlite3")
    await store.open(indexes(audit_retention_s=86400))
    yield Audit(store)
    await store.close()


async def only(audit: Audit) -> dict:
    [doc] = await audit.store.find("audit", None)
    return doc


async def test_an_unverified_body_keeps_its_size_and_digest_never_the_body(audit):
    body = b"<xml><out_trade_no>W1</out_trade_no>" + b"A" * 60_000 + b"</xml>"
    await audit.record_digest("notify", verdict="bad_signature", body=body, verified=False, ok=False, out_trade_no="W1")
    doc = await only(audit)
    assert doc["size"] == len(body) and doc["sha256"] == hashlib.sha256(body).hexdigest()
    assert doc["prefix"] == body[:PREFIX_CHARS].decode() and doc["verified"] is False
    assert "raw" not in doc and "AAAA" * 20 not in repr(doc)
    assert len(repr(doc)) < 600  # a constant cost, whatever was sent


@pytest.mark.parametrize("body", [b"\x00\xff\xfe<xml>\r\n\x1b[31m", "<xml>充值</xml>".encode(), b"", b"\x80" * 100])
def test_the_prefix_is_printable_ascii_and_bounded(body):
    prefix = digest_fields(body)["prefix"]
    assert len(prefix) <= PREFIX_CHARS and prefix.isascii() and prefix.isprintable()
    assert len(prefix) == min(len(body), PREFIX_CHARS)


async def test_a_verified_record_keeps_its_raw_body_up_to_the_cap(audit):
    body = b"<xml>" + b"B" * (MAX_RAW + 100) + b"</xml>"
    await audit.record("notify", verdict="paid", raw=body, ok=True)
    doc = await only(audit)
    assert doc["raw"] == body.decode()[:MAX_RAW] and doc["raw_truncated"] is True
    assert doc["size"] == len(body) and doc["sha256"] == hashlib.sha256(body).hexdigest()


async def test_latest_reads_only_the_fields_asked_for(audit):
    await audit.record("notify", verdict="paid", raw=b"<xml>big</xml>", ok=True, out_trade_no="W1")
    [doc] = await audit.latest("notify", fields=["verdict", "ok"])
    assert doc.keys() == {"_id", "verdict", "ok"}
