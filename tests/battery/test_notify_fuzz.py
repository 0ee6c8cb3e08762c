"""Fuzzing the notify endpoints against a real server on loopback.

Hypothesis generates bodies for ``/notify/pay`` and ``/notify/refund``:
arbitrary bytes, XML-shaped documents, mutations of a real signed payment
notify and of a real encrypted refund notify, and huge or deeply nested
inputs. For every example: no 5xx, and the business state (checkouts,
orders, refunds, webhook outbox) is unchanged, since none of them carries a
valid proof of origin (mutations that still verify are discarded by an
oracle written from the protocol in this file, independent of ``wxpay``). The world makes a forgery worth
trying: an order paid at WeChat whose notifies were lost, and a refund
settled at WeChat whose notify was lost.

``make test`` runs a bounded, derandomized number of examples (seconds);
the ``slow`` variants (``pytest -m slow tests/battery``) run many more.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from xml.etree import ElementTree
from typing import Any, Callable

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from Crypto.Cipher import AES

from tests.server.browser import as_json
from wxpay.gateway import notify_version
from wxpay.xmlcodec import build_xml

from .harness import Client, snapshot, start_server
from .results import record

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUICK = 60
LONG = 1500
UNLIMITED = {"notify.refused_per_minute": 1_000_000, "notify.refused_per_minute_total": 1_000_000}
LIMIT = 65536  # server.max_body_bytes: answered 413 in JSON before any handler (handlers/body_limit.py)
HTTP_CAP = LIMIT + (1 << 20)  # the HTTP server's own cap behind it (server_max_body_size)
PAY, REFUND = "/notify/pay", "/notify/refund"


@dataclass
class World:
    client: Client
    pay_fields: dict[str, str]      # a genuine signed notify for an order paid at WeChat only
    refund_fields: dict[str, str]   # a genuine refund notify for a refund pending in the store
    appid: str
    mch_id: str
    before: dict
    seen: dict[str, int]
    failures: int = 0  # examples that failed (shrinking repeats count too)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    running = await start_server(tmp_path_factory.mktemp("fuzz"), **UNLIMITED)
    try:
        c = Client(running)
        _, paid = await c.paid_at_wechat_only(1000)
        pay_fields = c.notify_fields(paid["sim"])
        from wxpay import signing

        pay_fields["sign"] = signing.sign(pay_fields, c.api_key)
        refunded, refunded_res = await c.paid_at_wechat_only(3000)
        r = await c.notify(c.signed_notify(refunded_res["sim"]))
        assert r.code == 200 and b"SUCCESS" in r.body
        await c.fault(endpoint="refund_notify", kind="drop", count=None)
        r = await c.merchant.post(f"/api/checkouts/{refunded['id']}/refunds", json_body={"amount_fen": 1000,
                                  "out_refund_no": "rf-fuzz"}, headers=c.auth)
        assert r.code == 201 and as_json(r)["state"] == "pending", r.body
        sim = running.simulator
        w = running.settings.wechat
        refund_fields = sim.refund_notify_fields(sim.pay.refund_by_no(w.mch_id, "rf-fuzz"))
        world = World(c, pay_fields, refund_fields, w.appid, w.mch_id, await snapshot(c.store), {})
        yield world
        outcome = "pass" if not world.failures else f"FAIL: {world.failures} failing example(s), see the test output"
        record("notify_costs", "fuzzed notifies: no 5xx, no state change", outcome,
               examples=sum(world.seen.values()), by_status=dict(sorted(world.seen.items())))
    finally:
        await running.stop(grace=1)


def proven(world: World, path: str, body: bytes) -> bool:
    """The oracle: would this body pass its proof of origin, so that a state
    change would be legitimate? Written here from the protocol (standard
    library XML, our own MD5/HMAC and AES), not by asking ``wxpay``, so a
    verification bug there cannot hide behind the oracle."""
    if path == PAY:
        fields = flat_xml(body, "xml")
        if fields is None or not fields.get("sign"):
            return False
        declared = fields.get("sign_type")
        sign_type = declared or ("HMAC-SHA256" if len(fields["sign"]) == 64 else "MD5")
        return fields["sign"].upper() == v2_sign(fields, world.client.api_key, sign_type)
    outer = flat_xml(body, "xml")
    if outer is None or outer.get("return_code") != "SUCCESS":
        return False
    try:
        raw = base64.b64decode(outer.get("req_info", ""), validate=True)
        key = hashlib.md5(world.client.api_key.encode()).hexdigest().encode()
        plain = AES.new(key, AES.MODE_ECB).decrypt(raw) if raw and len(raw) % 16 == 0 else b""
    except (binascii.Error, ValueError):
        return False
    if not plain or not 1 <= plain[-1] <= 16:
        return False
    return flat_xml(plain[: -plain[-1]], "root") is not None


def flat_xml(body: bytes, root: str) -> dict[str, str] | None:
    """``{name: text}`` of a flat document with that root, else None."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        return None
    try:
        tree = ElementTree.fromstring(body)
    except (ElementTree.ParseError, ValueError):
        return None
    if tree.tag != root or any(len(child) for child in tree):
        return None
    names = [child.tag for child in tree]
    if len(names) != len(set(names)):
        return None
    return {child.tag: child.text or "" for child in tree}


def v2_sign(fields: dict[str, str], key: str, sign_type: str) -> str | None:
    string_a = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k])
    payload = f"{string_a}&key={key}".encode()
    if sign_type == "MD5":
        return hashlib.md5(payload).hexdigest().upper()
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest().upper()
    return None


async def post_and_check(world: World, path: str, body: bytes) -> None:
    """One example: no 5xx, and this body changed nothing (compared with the
    state just before it, so a failure names the body that did it)."""
    before = await snapshot(world.client.store)
    try:
        r = await world.client.merchant.client.fetch(
            world.client.base + path, method="POST", body=body, raise_error=False, request_timeout=60,
            headers={"Content-Type": "text/xml"},
        )
        if len(body) > LIMIT:
            assert r.code in (413, 599), r.code  # the HTTP layer refuses before any handler
        else:
            assert r.code < 500, (r.code, body[:200], r.body[:200])
            # The reply takes the form of the version the body is shaped like (wxpay.gateway.notify_version):
            # a JSON object is read as APIv3's, answered {"code": "FAIL", …} even where only APIv2 is configured.
            if notify_version({}, body) == "v3":
                assert json.loads(r.body)["code"] == "FAIL", r.body[:200]
            else:
                assert r.body.startswith(b"<xml><return_code>"), r.body[:200]
        world.seen[str(r.code)] = world.seen.get(str(r.code), 0) + 1
        assert await snapshot(world.client.store) == before, f"state changed by {body[:300]!r}"
    except AssertionError:
        world.failures += 1
        raise


# -- strategies ----------------------------------------------------------------------------

NAMES = st.sampled_from([
    "xml", "root", "appid", "mch_id", "out_trade_no", "total_fee", "cash_fee", "sign", "sign_type", "return_code",
    "result_code", "transaction_id", "time_end", "req_info", "out_refund_no", "coupon_fee_0", "coupon_id_0",
    "a", "B", "x-y", "_", "coupon_fee_999",
])
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["SUCCESS", "FAIL", "0", "-1", "1e3", "99999999999999999999", "", " ", "]]>", "&amp;", "&#0;",
                     "<a>", "MD5", "HMAC-SHA256", "{\"$ne\": null}", "x' OR '1'='1", "\u202e", "\x00"]),
)


def element(name: str, text: str, cdata: bool) -> str:
    if cdata:
        return f"<{name}><![CDATA[{text}]]></{name}>"
    escaped = text.replace("&", "&amp;").replace("<", "&lt;")
    return f"<{name}>{escaped}</{name}>"


@st.composite
def xml_shaped(draw) -> bytes:
    root = draw(st.sampled_from(["xml", "xml", "root", "XML", "data"]))
    items = draw(st.lists(st.tuples(NAMES, TEXT, st.booleans()), max_size=25))
    inner = "".join(element(n, t, c) for n, t, c in items)
    prolog = draw(st.sampled_from(["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>',
                                   '<!DOCTYPE xml [<!ENTITY e "x">]>', '<?xml-stylesheet href="x"?>']))
    text = f"{prolog}<{root}>{inner}</{root}>"
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"]))
    return text.encode(encoding, "replace")


def serialize(pairs: list[tuple[str, str]]) -> bytes:
    return ("<xml>" + "".join(element(n, v, True) for n, v in pairs) + "</xml>").encode("utf-8", "surrogatepass")


OPS = st.one_of(
    st.tuples(st.just("set"), NAMES, TEXT),
    st.tuples(st.just("drop"), NAMES),
    st.tuples(st.just("dup"), NAMES, TEXT),
    st.tuples(st.just("rename"), NAMES, NAMES),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=12)),
)


def mutate(fields: dict[str, str], ops: list[tuple]) -> bytes:
    pairs = list(fields.items())
    byte_ops = []
    for op in ops:
        if op[0] == "set":
            pairs = [(n, op[2] if n == op[1] else v) for n, v in pairs] + ([] if op[1] in dict(pairs) else [(op[1], op[2])])
        elif op[0] == "drop":
            pairs = [(n, v) for n, v in pairs if n != op[1]]
        elif op[0] == "dup":
            pairs.append((op[1], op[2]))
        elif op[0] == "rename":
            pairs = [(op[2] if n == op[1] else n, v) for n, v in pairs]
        else:
            byte_ops.append(op)
    body = bytearray(serialize(pairs))
    for op in byte_ops:
        at = min(len(body), int(op[1] * len(body)))
        if op[0] == "flip" and body:
            body[min(at, len(body) - 1)] ^= op[2]
        elif op[0] == "truncate":
            del body[at:]
        elif op[0] == "insert":
            body[at:at] = op[2]
    return bytes(body)


REQ_INFO_OPS = st.one_of(
    st.tuples(st.just("flip_char"), st.floats(0, 1), st.sampled_from("AQZaz09+/=")),
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(st.just("random"), st.binary(max_size=200)),
    st.tuples(st.just("swap_blocks"), st.integers(0, 40), st.integers(0, 40)),
    st.tuples(st.just("append"), st.text(max_size=10)),
)


def mutate_req_info(req_info: str, op: tuple) -> str:
    if op[0] == "flip_char":
        at = min(len(req_info) - 1, int(op[1] * len(req_info)))
        return req_info[:at] + op[2] + req_info[at + 1:]
    if op[0] == "cut":
        return req_info[: int(op[1] * len(req_info))]
    if op[0] == "random":
        return base64.b64encode(op[1]).decode()
    if op[0] == "swap_blocks":
        raw = bytearray(base64.b64decode(req_info))
        blocks = [raw[i:i + 16] for i in range(0, len(raw), 16)]
        i, j = op[1] % len(blocks), op[2] % len(blocks)
        blocks[i], blocks[j] = blocks[j], blocks[i]
        return base64.b64encode(b"".join(blocks)).decode()
    return req_info + op[1]


@st.composite
def huge_or_nested(draw) -> bytes:
    kind = draw(st.sampled_from(["pad", "fields", "nested", "wide_text"]))
    if kind == "pad":
        size = draw(st.sampled_from([LIMIT - 1, LIMIT, LIMIT + 1, 300_000, HTTP_CAP - 100, HTTP_CAP + 100]))
        return (b"<xml><out_trade_no>W1</out_trade_no><p>" + b"A" * size + b"</p></xml>")[:size]
    if kind == "fields":
        n = draw(st.integers(100, 6000))
        return ("<xml>" + "".join(f"<f{i}>v</f{i}>" for i in range(n)) + "</xml>").encode()
    if kind == "nested":
        depth = draw(st.integers(2, 60_000))
        return b"<xml>" + b"<a>" * depth + b"x" + b"</a>" * depth + b"</xml>"
    return ("<xml><out_trade_no>" + draw(st.text(min_size=1000, max_size=3000)) + "</out_trade_no></xml>").encode(
        "utf-8", "surrogatepass")


# -- the tests (each has a quick variant for make test and a long one under -m slow) ----------

def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def both(name: str, body_of: Callable[..., Any]) -> None:
    """Define ``test_<name>`` (QUICK examples) and ``test_<name>_long`` (LONG, slow)."""
    for suffix, examples, marks in (("", QUICK, []), ("_long", LONG, [pytest.mark.slow])):
        fn = fuzz_settings(examples)(body_of())
        for mark in marks:
            fn = mark(fn)
        fn.__name__ = f"test_{name}{suffix}"
        globals()[fn.__name__] = fn


def _arbitrary_bytes():
    @given(path=st.sampled_from([PAY, REFUND]), body=st.binary(max_size=3000))
    async def test(world, path, body):
        assume(not proven(world, path, body))
        await post_and_check(world, path, body)
    return test


def _xml_shaped():
    @given(path=st.sampled_from([PAY, REFUND]), body=xml_shaped())
    async def test(world, path, body):
        assume(not proven(world, path, body))
        await post_and_check(world, path, body)
    return test


def _mutated_signed_payment_notify():
    @given(ops=st.lists(OPS, min_size=1, max_size=3))
    async def test(world, ops):
        body = mutate(world.pay_fields, ops)
        assume(not proven(world, PAY, body))
        await post_and_check(world, PAY, body)
    return test


def _mutated_encrypted_refund_notify():
    @given(info_op=st.one_of(st.none(), REQ_INFO_OPS), outer=st.lists(OPS, max_size=2))
    async def test(world, info_op, outer):
        fields = dict(world.refund_fields)
        if info_op is not None:
            fields["req_info"] = mutate_req_info(fields["req_info"], info_op)
        body = mutate(fields, outer)
        assume(not proven(world, REFUND, body))
        await post_and_check(world, REFUND, body)
    return test


def _huge_and_nested():
    @given(path=st.sampled_from([PAY, REFUND]), body=huge_or_nested())
    async def test(world, path, body):
        assume(not proven(world, path, body))
        await post_and_check(world, path, body)
    return test


both("fuzz_arbitrary_bytes", _arbitrary_bytes)
both("fuzz_xml_shaped", _xml_shaped)
both("fuzz_mutated_signed_payment_notify", _mutated_signed_payment_notify)
both("fuzz_mutated_encrypted_refund_notify", _mutated_encrypted_refund_notify)
both("fuzz_huge_and_nested", _huge_and_nested)


async def test_zz_the_genuine_notifies_still_apply(world):
    """Nothing changed through all the examples, and the world was worth
    attacking: the unmutated bodies do change state."""
    c = world.client
    assert await snapshot(c.store) == world.before
    r = await c.notify(build_xml(world.pay_fields))
    assert r.code == 200 and b"SUCCESS" in r.body, r.body
    r = await c.notify(build_xml(world.refund_fields), REFUND)
    assert r.code == 200 and b"SUCCESS" in r.body, r.body
    assert await snapshot(c.store) != world.before
    assert (await c.running.services.refunds.get("rf-fuzz")).state == "succeeded"
