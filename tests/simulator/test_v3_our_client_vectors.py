"""The shared V3 vectors end to end: the simulator reproduces each one over real HTTP, byte for byte,
and our client (or our NotifyReader) meets the very bytes the vectors hold, with the verdict they name.

The simulator runs at the vector's timestamp with the vector's nonces (its ``make_nonce``,
``make_aead_nonce`` and ``make_probe_signature`` sources); the ids WeChat issues (prepay_id,
code_url) are set on the order the way WeChat would have issued them, and placing the same order
again returns them (re-entry is idempotent). Our client's clock is the vectors' "now".

Not reproduced here: V4 (a body re-serialised in transit), V6 (a serial WeChat does not have) and N4
(a changed body under the old signature) are not things WeChat's side does; they are refused in
tests/wxpay/v3/. The bill vector's file is a sample in another layout than the simulator's bill.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from tornado.httpclient import AsyncHTTPClient

from wxpay import errors as e
from wxpay.simulator import demo
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.config import SimApp, SimConfig
from wxpay.simulator.v3 import rules
from wxpay.simulator.v3.wire import dumps
from wxpay.v3 import PaymentEvent, RefundEvent, Validator
from wxpay.v3.payloads import app_payload, jsapi_payloads, mini_program_payload

from ..wxpay.v3.vectors import NOW, load
from .pay_server import running_sim
from .test_v3_vectors import vector_order
from .v3_ours import MCH, PLATFORM, PUB_ID, inbox, our_client, public_key_verifier  # noqa: F401

RESPONSES = {v["id"][:3].rstrip("_"): v for v in load("response-verification.json")["responses"]}
NOTIFIES = {v["id"][:2]: v for v in load("response-verification.json")["notifies"]}
FRONT = {v["id"][:2]: v for v in load("frontend-sign.json")["vectors"]}
CERTS = load("certificates-and-bills.json")
TEST_APPID = "wx0000000000test1"
APP_APPID = "wx0000000000app01"
PREPAY = json.loads(RESPONSES["V1"]["body"])["prepay_id"]
CODE_URL = json.loads(RESPONSES["V3"]["body"])["code_url"]
SIGNED = ("Wechatpay-Serial", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature",
          "Wechatpay-Signature-Type")


def at(ts: int | str) -> datetime:
    return datetime.fromtimestamp(int(ts), timezone.utc)


def vector_config(test_app_kind: str = "official_account") -> SimConfig:
    """The demo, plus the vectors' appids bound to the demo merchant (their keys are the demo's)."""
    base = SimConfig.demo(notify_time_scale=100000.0)
    apps = (SimApp(TEST_APPID, "vectorsecret", test_app_kind), SimApp(APP_APPID, "vectorappsecret", "mobile_app"))
    merchant = replace(base.merchants[0], appids=base.merchants[0].appids + (TEST_APPID, APP_APPID))
    return replace(base, apps=base.apps + apps, merchants=(merchant,))


def vector_sim(test_app_kind: str = "official_account"):
    return running_sim(FakeClock(at(NOW)), sim_config=vector_config(test_app_kind))


def assert_signed_as(response, vector: dict) -> None:
    """The reply on the wire is the vector: same status, body bytes and signed headers."""
    assert response.status == vector["status"]
    assert response.body == vector["body"].encode("utf-8")
    for name in SIGNED:
        assert response.header(name) == vector["headers"][name], name


def vector_client(srv, trust: str = "public_key", **kw):
    return our_client(srv.base, lambda: float(NOW), trust, **kw)


async def placed_with_vector_prepay(srv, client, kind: str = "jsapi"):
    """Place the order once, then give it the vector's prepay_id (or code_url) as WeChat issued it."""
    if kind == "jsapi":
        place = lambda: client.create_jsapi_order(  # noqa: E731
            out_trade_no="T20260101000001", description="Test goods", total=1, appid=TEST_APPID,
            openid=srv.openid("alice", TEST_APPID), notify_url="https://merchant.example.com/wxpay/v3/notify")
    else:
        place = lambda: client.create_native_order(  # noqa: E731
            out_trade_no="T20260101000002", description="Test goods", total=1, appid=TEST_APPID,
            notify_url="https://merchant.example.com/wxpay/v3/notify")
    await place()
    order = srv.sim.pay.order(MCH, "T20260101000001" if kind == "jsapi" else "T20260101000002")
    if kind == "jsapi":
        order.prepay_id = PREPAY
        srv.sim.pay._by_prepay[PREPAY] = (MCH, order.out_trade_no)
    else:
        order.code_url = CODE_URL
    client.transport.exchanges.clear()
    return place


def at_vector(srv, vector: dict, *, nonce: str | None = None) -> None:
    srv.clock._now = at(vector["headers"]["Wechatpay-Timestamp"])
    srv.sim.v3.make_nonce = lambda: nonce or vector["headers"]["Wechatpay-Nonce"]


# --- replies --------------------------------------------------------------------------------------


async def test_v1_a_public_key_reply_accepted_byte_for_byte():
    async with vector_sim() as srv:
        client = vector_client(srv)
        place = await placed_with_vector_prepay(srv, client)
        at_vector(srv, RESPONSES["V1"])
        assert (await place()).prepay_id == PREPAY
        [(request, response)] = client.transport.exchanges
        assert request.headers["Wechatpay-Serial"] == PUB_ID
        assert_signed_as(response, RESPONSES["V1"])


async def test_v2_a_signed_204_accepted_byte_for_byte():
    async with vector_sim() as srv:
        client = vector_client(srv)
        await placed_with_vector_prepay(srv, client)
        at_vector(srv, RESPONSES["V2"])
        assert await client.close_order("T20260101000001") is None
        [(_, response)] = client.transport.exchanges
        assert_signed_as(response, RESPONSES["V2"])


async def test_v3_a_platform_certificate_reply_accepted_byte_for_byte():
    """The gray switch: the request names the platform certificate, so WeChat signs with it."""
    async with vector_sim() as srv:
        srv.sim.v3.keyring(MCH).set_mode("gray")
        client = vector_client(srv, "platform_cert")
        place = await placed_with_vector_prepay(srv, client, "native")
        at_vector(srv, RESPONSES["V3"])
        assert (await place()).code_url == CODE_URL
        [(request, response)] = client.transport.exchanges
        assert request.headers["Wechatpay-Serial"] == PLATFORM
        assert_signed_as(response, RESPONSES["V3"])


async def test_v5_a_wrong_serial_reply_refused():
    async with vector_sim() as srv:
        srv.sim.v3.keyring(MCH).set_mode("gray")
        client = vector_client(srv, "gray")
        place = await placed_with_vector_prepay(srv, client)
        at_vector(srv, RESPONSES["V5"])
        srv.sim.faults.add("v3/pay/transactions/jsapi", "wrong_serial")
        with pytest.raises(e.VerificationError) as exc:
            await place()
        assert exc.value.code == "bad_signature"
        [(_, response)] = client.transport.exchanges
        assert_signed_as(response, RESPONSES["V5"])


@pytest.mark.parametrize("name, skew, code", [("V7", -299, None), ("V8", -300, "stale_timestamp"),
                                              ("V9", 301, "stale_timestamp")])
async def test_v7_v8_v9_the_window_at_its_edges(name, skew, code):
    async with vector_sim() as srv:
        client = vector_client(srv)
        place = await placed_with_vector_prepay(srv, client)
        srv.clock._now = at(NOW)
        srv.sim.v3.make_nonce = lambda: RESPONSES[name]["headers"]["Wechatpay-Nonce"]
        srv.sim.faults.add("v3/pay/transactions/jsapi", "clock_skew", seconds=skew)
        if code is None:
            assert (await place()).prepay_id == PREPAY
        else:
            with pytest.raises(e.VerificationError) as exc:
                await place()
            assert exc.value.code == code
        [(_, response)] = client.transport.exchanges
        assert_signed_as(response, RESPONSES[name])


async def test_v10_a_probe_reply_refused():
    async with vector_sim() as srv:
        client = vector_client(srv)
        place = await placed_with_vector_prepay(srv, client)
        at_vector(srv, RESPONSES["V10"])
        srv.sim.v3.make_probe_signature = lambda: RESPONSES["V10"]["headers"]["Wechatpay-Signature"]
        srv.sim.faults.add("v3/pay/transactions/jsapi", "signtest")
        with pytest.raises(e.VerificationError) as exc:
            await place()
        assert exc.value.code == "signtest_probe"
        [(_, response)] = client.transport.exchanges
        assert_signed_as(response, RESPONSES["V10"])


async def test_v11_a_signed_error_reply():
    """Error replies are typed without verification (as WeChat's SDKs do); this one verifies anyway."""
    async with vector_sim() as srv:
        client = vector_client(srv)
        at_vector(srv, RESPONSES["V11"])
        with pytest.raises(e.OrderNotExistError) as exc:
            await client.query_by_out_trade_no("T20260101000009")
        assert (exc.value.http_status, exc.value.err_code, exc.value.err_code_des) == (404, "ORDER_NOT_EXIST", "订单不存在")
        [(_, response)] = client.transport.exchanges
        assert_signed_as(response, RESPONSES["V11"])
        Validator(public_key_verifier(), clock=lambda: float(NOW)).validate(response.headers, response.body)


# --- certificates ---------------------------------------------------------------------------------


async def test_the_certificates_reply_loaded_by_the_keeper_byte_for_byte():
    ok = CERTS["certificates_ok"]
    a4 = next(v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == "A4_platform_certificate")
    async with vector_sim() as srv:
        srv.sim.v3.keyring(MCH).set_mode("platform_cert")
        client = vector_client(srv, "platform_cert")
        at_vector(srv, ok)
        srv.sim.v3.make_aead_nonce = lambda: a4["nonce"]
        added = await client.refresh_certificates()
        assert added == [PLATFORM] and client.wechatpay_serial() == PLATFORM
        [(request, response)] = client.transport.exchanges
        assert "Wechatpay-Serial" not in request.headers  # nothing trusted yet: no key named
        assert_signed_as(response, ok)


async def test_the_public_key_merchants_404():
    vector = CERTS["certificates_public_key_merchant"]
    async with vector_sim() as srv:
        client = vector_client(srv, "platform_cert")
        with pytest.raises(e.PlatformCertificatesUnavailableError):
            await client.refresh_certificates()
        [(_, response)] = client.transport.exchanges
        assert (response.status, response.body) == (vector["status"], vector["body"].encode())


# --- notifies -------------------------------------------------------------------------------------


async def test_n3_then_n1_a_probe_and_the_payment_notify_read_byte_for_byte(inbox):  # noqa: F811
    """One delivery with the signtest fault: the probe copy is N3 (refused), the real attempt N1 (read)."""
    n1, n3 = NOTIFIES["N1"], NOTIFIES["N3"]
    a1 = next(v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == "A1_transaction")
    async with running_sim(FakeClock(at(NOW)), sim_config=vector_config()) as srv:
        client = vector_client(srv)
        inbox.client = client
        order = replace(vector_order(), notify_url=inbox.url)
        srv.sim.pay.add_order(order)
        nonces = iter([n3["headers"]["Wechatpay-Nonce"], n1["headers"]["Wechatpay-Nonce"]])
        srv.sim.v3.make_nonce = lambda: next(nonces)
        srv.sim.v3.make_aead_nonce = lambda: a1["nonce"]
        srv.sim.v3.make_probe_signature = lambda: n3["headers"]["Wechatpay-Signature"]
        srv.sim.faults.add("notify", "signtest")
        srv.sim.faults.add("notify", "clock_skew", seconds=int(n1["headers"]["Wechatpay-Timestamp"]) - NOW)
        delivery = await srv.sim.notifier.wait(srv.sim.paid(order).id)  # the first delivery: EV-…0001
        assert [a.verdict for a in delivery.attempts] == ["probe_rejected", "success"]
        for body, headers, vector in zip(inbox.bodies, inbox.headers, (n3, n1)):
            assert body == vector["body"].encode()
            assert all(headers[name] == vector["headers"][name] for name in SIGNED)
        assert inbox.refused_codes == ["signtest_probe"] and inbox.statuses == [500, 204]
        [event] = inbox.events
        assert isinstance(event, PaymentEvent) and event.transaction.raw == json.loads(a1["plaintext"])


async def test_n2_the_simulators_refund_notify_read_by_our_receiver(inbox):  # noqa: F811
    """N2's event id and create_time come from two different moments, which no single delivery of the
    simulator has: its envelope (as the simulator writes it, tests/simulator/test_v3_vectors.py) is posted
    to our receiver over HTTP."""
    n2 = NOTIFIES["N2"]
    a2 = next(v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == "A2_refund")
    async with running_sim(FakeClock(at(n2["headers"]["Wechatpay-Timestamp"])), sim_config=vector_config()) as srv:
        client = vector_client(srv)
        inbox.client = client
        side, keyring = srv.sim.v3, srv.sim.v3.keyring(MCH)
        side.make_aead_nonce = lambda: a2["nonce"]
        side.make_nonce = lambda: n2["headers"]["Wechatpay-Nonce"]
        envelope = json.loads(n2["body"])
        body = side.envelope(keyring, envelope["id"], envelope["create_time"], "REFUND.SUCCESS", "退款成功", "refund",
                             a2["plaintext"].encode())
        headers = {"Content-Type": "application/json", **side.sign(keyring, keyring.public_key, body)}
        assert body == n2["body"].encode() and all(headers[n] == n2["headers"][n] for n in SIGNED)
        reply = await AsyncHTTPClient().fetch(inbox.url, method="POST", body=body, headers=headers, raise_error=False)
        assert reply.code == 204
        [event] = inbox.events
        assert isinstance(event, RefundEvent) and event.refund.raw == json.loads(a2["plaintext"])


# --- front-end payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, app_kind", [("F1", "official_account"), ("F2", "mini_program")])
async def test_f1_f2_our_payload_is_the_vectors_and_the_simulator_pays_with_it(name, app_kind):
    vector = FRONT[name]["payload"]
    async with vector_sim(app_kind) as srv:
        client = vector_client(srv)
        await placed_with_vector_prepay(srv, client)
        ts, nonce = vector["timeStamp"], vector["nonceStr"]
        if name == "F1":
            payload = jsapi_payloads(client.signer, TEST_APPID, PREPAY, timestamp=ts, nonce=nonce)[0].to_dict()
        else:
            payload = mini_program_payload(client.signer, TEST_APPID, PREPAY, timestamp=ts, nonce=nonce).to_dict()
        assert payload == vector
        status, paid = await srv.post_json("/_sim/pay", {"prepay_id": PREPAY, "outcome": "ok", "payload": payload})
        assert paid["ok"] and paid["trade_state"] == "SUCCESS", paid


async def test_f3_our_app_payload_is_the_vectors_and_the_simulator_pays_with_it():
    vector = FRONT["F3"]["payload"]
    async with vector_sim() as srv:
        client = vector_client(srv)
        await client.create_app_order(out_trade_no="T20260101000004", description="Test goods", total=1,
                                      appid=APP_APPID, notify_url="https://merchant.example.com/wxpay/v3/notify")
        order = srv.sim.pay.order(MCH, "T20260101000004")
        order.prepay_id = vector["prepayid"]
        srv.sim.pay._by_prepay[order.prepay_id] = (MCH, order.out_trade_no)
        payload = app_payload(client.signer, APP_APPID, vector["prepayid"], timestamp=vector["timestamp"],
                              nonce=vector["noncestr"]).to_dict()
        assert payload == vector
        status, paid = await srv.post_json("/_sim/pay", {"prepay_id": vector["prepayid"], "outcome": "ok",
                                                         "payload": payload})
        assert paid["ok"] and paid["trade_state"] == "SUCCESS", paid
        payload["sign"] = FRONT["F1"]["payload"]["paySign"]  # another payload's signature
        srv.sim.pay.order(MCH, "T20260101000004").trade_state = "NOTPAY"
        status, refused = await srv.post_json("/_sim/pay", {"prepay_id": vector["prepayid"], "outcome": "ok",
                                                            "payload": payload})
        assert refused["reason"] == "BAD_PAYLOAD"


def test_the_demo_merchant_holds_the_vectors_keys():
    keys = load("keys.json")
    assert (keys["mchid"], keys["apiv3_key"], keys["merchant"]["serial_no"]) == \
        (demo.MCH_ID, demo.APIV3_KEY, demo.MERCHANT_SERIAL_NO)
    assert keys["wechatpay_public_key"]["public_key_id"] == PUB_ID
    assert dumps(rules.transaction_json(vector_order())).decode() == next(
        v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == "A1_transaction")["plaintext"]
