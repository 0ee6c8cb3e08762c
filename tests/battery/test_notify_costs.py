"""What a notify that fails its proof of origin costs, and that WeChat's own
notify is never refused however much noise comes from its address.

Real sandbox servers on loopback with their own SQLite files. Durable cost
is measured as the database file's growth after a WAL checkpoint (the WAL
itself is reset at every checkpoint), divided by the number of refusals.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections import Counter
from typing import Any

from service.models import AUDIT
from tests.server.browser import as_json
from wxpay.xmlcodec import build_xml

from .harness import Client, snapshot, start_server
from .results import record

SECTION = "notify_costs"
BODY_BYTES = 16 * 1024
FLOOD = 300
UNLIMITED = {"notify.refused_per_minute": 1_000_000, "notify.refused_per_minute_total": 1_000_000}


def forged(out_trade_no: str, size: int = BODY_BYTES) -> bytes:
    """A payment notify for a real order, padded to ``size``, with a wrong signature."""
    head = f"<xml><return_code>SUCCESS</return_code><out_trade_no>{out_trade_no}</out_trade_no><pad>"
    tail = f"</pad><sign>{'0' * 32}</sign></xml>"
    return (head + "A" * (size - len(head) - len(tail)) + tail).encode()


def durable_bytes(path: str) -> int:
    conn = sqlite3.connect(path, timeout=5)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "checkpoint could not finish"
    finally:
        conn.close()
    return os.path.getsize(path)


class Warnings(logging.Handler):
    """WARNING-or-worse records, the lines an operator's log receives."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "Warnings":
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger().removeHandler(self)


async def flood(client: Client, body: bytes, n: int, path: str = "/notify/pay", headers: dict | None = None) -> Counter:
    codes: Counter = Counter()
    for _ in range(n):  # one connection, one after another: the shape of the reported flood
        r = await client.merchant.client.fetch(
            client.base + path, method="POST", body=body, raise_error=False, headers=headers or {}
        )
        assert r.code < 500, (r.code, r.body[:200])
        codes[r.code] += 1
    return codes


async def test_bytes_stored_per_refused_notify(tmp_path):
    """16 KiB refused notifies: what each adds to the SQLite file, recorded
    (limit out of the way) and over the per-source limit (defaults)."""
    figures: dict[str, Any] = {"body_bytes": BODY_BYTES, "posts": FLOOD}
    for label, overrides in (("recorded", UNLIMITED), ("over_limit", {})):
        running = await start_server(tmp_path / label, **overrides)
        try:
            client = Client(running)
            _, paid = await client.paid_at_wechat_only(100)
            path = running.settings.store.sqlite_path
            before_state = await snapshot(client.store)
            before = durable_bytes(path)
            codes = await flood(client, forged(paid["out_trade_no"]), FLOOD)
            grown = durable_bytes(path) - before
            assert await snapshot(client.store) == before_state
            figures[f"bytes_per_refused_notify_{label}"] = round(grown / FLOOD, 1)
            figures[f"replies_{label}"] = dict(codes)
            if label == "recorded":
                assert codes == {400: FLOOD}, codes
            else:
                assert codes[429] >= FLOOD - 60, codes  # 30 a minute per source by default
        finally:
            await running.stop(grace=1)
    # A digest record is a few hundred bytes, whatever was sent (the raw body was 16 KiB + overhead).
    assert figures["bytes_per_refused_notify_recorded"] < 1024, figures
    assert figures["bytes_per_refused_notify_over_limit"] < 256, figures
    record(SECTION, "bytes stored per refused 16 KiB notify", "pass", **figures)


async def test_refusals_before_the_proof_keep_a_digest_never_the_body(tmp_path):
    running = await start_server(tmp_path, **UNLIMITED)
    try:
        client = Client(running)
        _, paid = await client.paid_at_wechat_only(100)
        no = paid["out_trade_no"]
        bodies = {
            "bad_signature": ("/notify/pay", forged(no)),
            "malformed_xml": ("/notify/pay", b"<xml><out_trade_no>" + b"B" * 5000),
            "too_large": ("/notify/pay", forged(no, 70 * 1024)),
            "missing_out_trade_no": ("/notify/pay", b"<xml><pad>" + b"C" * 5000 + b"</pad></xml>"),
            "unsigned_unknown_order": ("/notify/pay", build_xml({"out_trade_no": "W1", "pad": "D" * 5000})),
            "refund_garbage": ("/notify/refund", b"\x00\x01" + b"E" * 5000),
            "refund_undecryptable": ("/notify/refund", build_xml({
                "return_code": "SUCCESS", "appid": running.settings.wechat.appid,
                "mch_id": running.settings.wechat.mch_id, "req_info": "F" * 5000})),
            "refund_return_fail_unproven": ("/notify/refund", build_xml({"return_code": "FAIL", "pad": "G" * 5000})),
        }
        before = await snapshot(client.store)
        seen = {}
        for name, (path, body) in bodies.items():
            trail = len(await client.store.find(AUDIT, None, limit=0, fields=["_id"]))
            r = await client.notify(body, path)
            assert r.code < 500, (name, r.code)
            if name == "too_large":  # refused by the body limit before any handler runs: nothing stored
                assert r.code == 413 and len(await client.store.find(AUDIT, None, limit=0, fields=["_id"])) == trail
                seen[name] = "413 body_too_large (HTTP layer, nothing stored)"
                continue
            [doc] = await client.store.find(AUDIT, None, sort=[("at", -1)], limit=1)
            assert "raw" not in doc and doc["verified"] is False, (name, doc)
            assert doc["size"] == len(body) and doc["sha256"] == hashlib.sha256(body).hexdigest(), name
            assert len(doc["prefix"]) <= 64 and len(repr(doc)) < 700, (name, len(repr(doc)))
            seen[name] = f"{r.code} {doc['verdict']}"
        assert await snapshot(client.store) == before
        # A verified notify keeps its raw body.
        genuine = client.signed_notify(paid["sim"])
        r = await client.notify(genuine)
        assert r.code == 200 and b"SUCCESS" in r.body
        [doc] = await client.store.find(AUDIT, {"kind": "notify", "verdict": "paid"}, limit=1)
        assert doc["raw"] == genuine.decode() and doc["size"] == len(genuine)
        # Its repeats (WeChat's retries, or a replay) are kept by digest: the first body is stored already.
        for _ in range(3):
            r = await client.notify(genuine)
            assert r.code == 200 and b"SUCCESS" in r.body
        repeats = await client.store.find(AUDIT, {"kind": "notify", "verdict": "duplicate"}, limit=0)
        assert len(repeats) == 3 and all("raw" not in d and d["verified"] is True for d in repeats), repeats
        assert {d["sha256"] for d in repeats} == {hashlib.sha256(genuine).hexdigest()}
        record(SECTION, "refusals before the proof keep verdict, size and digest only", "pass", **seen)
    finally:
        await running.stop(grace=1)


async def test_wechats_signed_notify_passes_after_a_flood_from_its_own_address(tmp_path):
    """The limiter's guarantee: a flood puts 127.0.0.1 far over its limit
    (and the total); WeChat's real notify from 127.0.0.1 is still processed."""
    running = await start_server(
        tmp_path, **{"notify.refused_per_minute": 5, "notify.refused_per_minute_total": 10}
    )
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(2500)
        refund_probe = build_xml({"return_code": "SUCCESS", "appid": "wx0000000000000bad", "req_info": "x"})
        codes = await flood(client, forged(paid["out_trade_no"]), 200)
        codes += await flood(client, refund_probe, 50, "/notify/refund")
        assert codes[429] >= 240, codes  # the limit is engaged for this source
        r = await client.notify(client.signed_notify(paid["sim"]))
        assert r.code == 200 and b"SUCCESS" in r.body, (r.code, r.body)
        view = as_json(await client.merchant.get(f"/api/checkouts/{checkout['id']}", headers=client.auth))
        assert view["status"] == "paid", view
        # A repeat of it (WeChat retries until it reads SUCCESS) is still answered SUCCESS.
        r = await client.notify(client.signed_notify(paid["sim"]))
        assert r.code == 200 and b"SUCCESS" in r.body
        record(SECTION, "signed notify after a flood from the same source", "pass", flood=250,
               answered_429=codes[429], recorded=codes[400] + codes[200], signed_notify_reply=r.code,
               checkout=view["status"])
    finally:
        await running.stop(grace=1)


async def test_a_flood_writes_one_summary_line_not_a_line_per_request(tmp_path):
    running = await start_server(tmp_path, **{"notify.refused_per_minute": 5})
    try:
        client = Client(running)
        _, paid = await client.paid_at_wechat_only(100)
        audit_before = await client.store.count(AUDIT)
        with Warnings() as warnings:
            codes = await flood(client, forged(paid["out_trade_no"], 2048), 200)
            during = len(warnings.records)
            running.services.notify_limiter.flush()  # the end of the window (or of the process)
        recorded = await client.store.count(AUDIT) - audit_before
        assert during == 0, [r.getMessage() for r in warnings.records[:5]]
        [summary] = warnings.records
        text = summary.getMessage()
        assert "200 notify(s) refused before verification" in text and "127.0.0.1 200" in text, text
        assert recorded == codes[400] and recorded <= 10, (recorded, codes)
        metrics = await client.merchant.get("/metrics", headers=admin_auth(running))
        assert f'wxpay_notifies_unverified_refused_total{{endpoint="notify",recorded="no"}} {codes[429]}.0' in (
            metrics.body.decode()
        )
        record(SECTION, "a flood logs one summary line", "pass", refused=200, warning_lines_during=during,
               summary_lines=1, audit_records=recorded)
    finally:
        await running.stop(grace=1)


async def test_sources_behind_a_trusted_proxy_have_their_own_budget(tmp_path):
    running = await start_server(
        tmp_path, **{"server.trusted_proxies": ["127.0.0.1/32"], "notify.refused_per_minute": 3}
    )
    try:
        client = Client(running)
        body = forged("W123", 512)
        first = await flood(client, body, 10, headers={"X-Forwarded-For": "203.0.113.5"})
        second = await flood(client, body, 2, headers={"X-Forwarded-For": "203.0.113.6"})
        chained = await flood(client, body, 5, headers={"X-Forwarded-For": "2001:db8:1:2::1, 198.51.100.1"})
        assert first == {400: 3, 429: 7} and second == {400: 2}, (first, second)
        assert chained == {400: 3, 429: 2}, chained  # the client is the last untrusted hop: 198.51.100.1
        record(SECTION, "per-source budgets behind a trusted proxy", "pass", first_source=dict(first),
               second_source=dict(second))
    finally:
        await running.stop(grace=1)


def admin_auth(running) -> dict[str, str]:
    import base64

    s = running.settings.admin
    return {"Authorization": "Basic " + base64.b64encode(f"{s.username}:{s.password}".encode()).decode()}
