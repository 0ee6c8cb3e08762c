"""The shared APIv3 vectors as fixtures: with the vectors' inputs the simulator signs, encrypts and
judges exactly as they say (digest §9.9). The demo merchant's keys are the vectors' keys.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from wxpay.simulator import demo
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.config import SimApp, SimConfig
from wxpay.simulator.core import Simulator
from wxpay.simulator.notifier import Delivery
from wxpay.simulator.pay_state import Order, Refund
from wxpay.simulator.v3 import rules
from wxpay.simulator.v3.wire import dumps
from wxpay.timeutil import parse_rfc3339

from .pay_server import PREFIX, running_sim

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "v3"
if not VECTORS.exists():  # the worktree sits in /work/wt/<name>; shared/ is /work/shared
    VECTORS = Path("/work/shared/vectors/v3")


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def at(ts: int | str) -> datetime:
    return datetime.fromtimestamp(int(ts), timezone.utc)


def test_demo_keys_are_the_vectors_keys():
    keys = load("keys.json")
    assert keys["mchid"] == demo.MCH_ID and keys["apiv3_key"] == demo.APIV3_KEY
    assert keys["merchant"]["serial_no"] == demo.MERCHANT_SERIAL_NO
    assert keys["merchant"]["private_key_pem"].strip() == demo.v3_pem("apiclient_key.pem").strip()
    assert keys["wechatpay_public_key"]["public_key_id"] == demo.PUBLIC_KEY_ID
    assert keys["platform_certificate"]["serial_no"] == demo.PLATFORM_SERIAL_NO
    assert keys["platform_certificate"]["certificate_pem"].strip() == demo.v3_pem("platform_cert.pem").strip()


def simulator_at(ts: int | str) -> Simulator:
    return Simulator(SimConfig.demo(), clock=FakeClock(at(ts)))


def signs_as(sim: Simulator, serial: str, body: bytes, nonce: str) -> str:
    keyring = sim.v3.keyring(demo.MCH_ID)
    keyring.set_mode("gray")  # both keys available
    key = keyring.public_key if serial == demo.PUBLIC_KEY_ID else keyring.platform
    sim.v3.make_nonce = lambda: nonce
    headers = sim.v3.sign(keyring, key, body)
    assert headers["Wechatpay-Serial"] == serial and headers["Wechatpay-Nonce"] == nonce
    return headers["Wechatpay-Signature"]


@pytest.mark.parametrize("vector", [v for v in load("response-verification.json")["responses"]
                                    if not v["headers"]["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
                                    and v["id"] not in ("V4_tampered_body", "V5_wrong_serial", "V6_unknown_serial")],
                         ids=lambda v: v["id"])
def test_reply_signatures_equal_the_vectors(vector):
    h = vector["headers"]
    sim = simulator_at(h["Wechatpay-Timestamp"])
    assert signs_as(sim, h["Wechatpay-Serial"], vector["body"].encode(), h["Wechatpay-Nonce"]) == h["Wechatpay-Signature"]


def vector_order() -> Order:
    a1 = json.loads(next(v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == "A1_transaction")["plaintext"])
    paid_at = parse_rfc3339(a1["success_time"])
    return Order(
        appid=a1["appid"], mch_id=a1["mchid"], out_trade_no=a1["out_trade_no"], trade_type="JSAPI",
        body="形象店-深圳腾大-QQ公仔", total_fee=100, notify_url="https://merchant.example.com/wxpay/v3/notify",
        spbill_create_ip="", sign_type="RSA", created_at=paid_at, fingerprint={}, attach=a1["attach"],
        openid=a1["payer"]["openid"], trade_state="SUCCESS", transaction_id=a1["transaction_id"], bank_type="OTHERS",
        paid_at=paid_at, cash_fee=100, api="v3",
    )


def test_payment_notify_equals_vector_n1_byte_for_byte():
    n1 = next(n for n in load("response-verification.json")["notifies"] if n["id"] == "N1_transaction_success")
    a1 = next(v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == "A1_transaction")
    sim = simulator_at(n1["headers"]["Wechatpay-Timestamp"])
    order = vector_order()
    assert dumps(rules.transaction_json(order)).decode() == a1["plaintext"]
    sim.v3.make_aead_nonce = lambda: a1["nonce"]
    sim.v3.make_nonce = lambda: n1["headers"]["Wechatpay-Nonce"]
    sim.pay.add_order(order)
    # The delivery the simulator would make for it: event id and create_time from its creation.
    delivery = Delivery(1, "pay", order.mch_id, order.out_trade_no, order.notify_url,
                        "2026-01-01T12:00:00+08:00", api="v3")
    out = sim.v3.notify(delivery, order)
    assert out.body.decode() == n1["body"]
    assert out.headers["Wechatpay-Signature"] == n1["headers"]["Wechatpay-Signature"]
    assert out.headers["Wechatpay-Serial"] == n1["headers"]["Wechatpay-Serial"]
    assert out.headers["Wechatpay-Signature-Type"] == n1["headers"]["Wechatpay-Signature-Type"]


def test_refund_notify_equals_vector_n2_byte_for_byte():
    n2 = next(n for n in load("response-verification.json")["notifies"] if n["id"] == "N2_refund_success")
    a2 = next(v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == "A2_refund")
    plain = json.loads(a2["plaintext"])
    refund = Refund(
        appid="wx0000000000test1", mch_id=plain["mchid"], out_refund_no=plain["out_refund_no"],
        refund_id=plain["refund_id"], out_trade_no=plain["out_trade_no"], transaction_id=plain["transaction_id"],
        total_fee=100, refund_fee=40, created_at=parse_rfc3339(plain["success_time"]), fingerprint={},
        refund_status="SUCCESS", success_at=parse_rfc3339(plain["success_time"]), api="v3",
    )
    assert dumps(rules.refund_notify_json(refund)).decode() == a2["plaintext"]
    envelope = json.loads(n2["body"])
    sim = simulator_at(n2["headers"]["Wechatpay-Timestamp"])
    sim.v3.make_aead_nonce = lambda: a2["nonce"]
    keyring = sim.v3.keyring(demo.MCH_ID)
    body = sim.v3.envelope(keyring, envelope["id"], envelope["create_time"], "REFUND.SUCCESS", "退款成功", "refund",
                           dumps(rules.refund_notify_json(refund)))
    assert body.decode() == n2["body"]
    assert signs_as(sim, n2["headers"]["Wechatpay-Serial"], body, n2["headers"]["Wechatpay-Nonce"]) == \
        n2["headers"]["Wechatpay-Signature"]


def test_certificates_reply_and_bill_step1_equal_the_vectors():
    vec = load("certificates-and-bills.json")
    ok = vec["certificates_ok"]
    a4 = next(v for v in load("notify-aes-gcm.json")["vectors"] if v["id"] == "A4_platform_certificate")
    sim = simulator_at(ok["headers"]["Wechatpay-Timestamp"])
    keyring = sim.v3.keyring(demo.MCH_ID)
    keyring.set_mode("platform_cert")
    sim.v3.make_aead_nonce = lambda: a4["nonce"]
    body = sim.v3.certificates_body(keyring, sim.clock.now())
    assert body.decode() == ok["body"]
    assert signs_as(sim, ok["headers"]["Wechatpay-Serial"], body, ok["headers"]["Wechatpay-Nonce"]) == \
        ok["headers"]["Wechatpay-Signature"]
    step1 = vec["tradebill"]["step1_response"]
    sim = simulator_at(step1["headers"]["Wechatpay-Timestamp"])
    assert signs_as(sim, step1["headers"]["Wechatpay-Serial"], step1["body"].encode(),
                    step1["headers"]["Wechatpay-Nonce"]) == step1["headers"]["Wechatpay-Signature"]


def vector_config() -> SimConfig:
    """The demo, plus the vectors' appid wx0000000000test1 bound to the demo merchant."""
    base = SimConfig.demo(notify_time_scale=100000.0)
    merchant = replace(base.merchants[0], appids=base.merchants[0].appids + ("wx0000000000test1",))
    return replace(base, apps=base.apps + (SimApp("wx0000000000test1", "vectorsecret", "official_account"),),
                   merchants=(merchant,))


async def send(srv, method: str, path: str, authorization: str, body: str = "") -> tuple[int, dict]:
    headers = {"Authorization": authorization, "Accept": "application/json"}
    if method == "POST":
        headers["Content-Type"] = "application/json"
    resp = await srv.raw(path, body.encode() if method == "POST" else None, method=method, headers=headers)
    return resp.code, json.loads(resp.body) if resp.body else {}


async def test_request_vectors_get_the_verdicts_they_name():
    """R1-R5 pass the signature check at their own timestamps; RS1-RS5 get the recorded verdicts."""
    rs = load("request-signing.json")
    r = {v["id"][:2]: v for v in rs["vectors"]}
    checks = {c["id"][:3]: c for c in rs["simulator_checks"]}
    clock = FakeClock(at(r["R4"]["timestamp"]))
    async with running_sim(clock, sim_config=vector_config()) as srv:
        assert srv.base.endswith(PREFIX)
        srv.sim.pay.openid_belongs = lambda appid, openid: True  # the vectors' openid is not one of ours

        code, reply = await send(srv, "POST", r["R4"]["path_with_query"], r["R4"]["authorization"], r["R4"]["body"])
        assert code == checks["RS1"]["expect_status"] and reply["prepay_id"].startswith("wx")  # RS1

        code, reply = await send(srv, "POST", r["R4"]["path_with_query"], r["R4"]["authorization"],
                                 checks["RS2"]["sent_body"])
        assert (code, reply["code"]) == (401, "SIGN_ERROR") and reply["message"] == "错误的签名，验签失败"
        assert reply["detail"]["sign_information"]["method"] == "POST"

        code, reply = await send(srv, "POST", r["R4"]["path_with_query"], checks["RS3"]["authorization"],
                                 r["R4"]["body"])
        assert (code, reply["code"]) == (401, "SIGN_ERROR") and reply["message"].startswith("商户证书序列号有误")

        code, reply = await send(srv, "POST", r["R4"]["path_with_query"], checks["RS5"]["authorization"],
                                 r["R4"]["body"])
        assert (code, reply["code"], reply["message"]) == (401, "SIGN_ERROR", "Http头Authorization认证类型不正确")

        clock._now = at(checks["RS4"]["now"])
        code, reply = await send(srv, "POST", r["R4"]["path_with_query"], r["R4"]["authorization"], r["R4"]["body"])
        assert (code, reply["code"]) == (401, "SIGN_ERROR") and "不得超过5分钟" in reply["message"]

        clock._now = at(r["R3"]["timestamp"])
        code, reply = await send(srv, "POST", r["R3"]["path_with_query"], r["R3"]["authorization"], r["R3"]["body"])
        assert code == 200 and reply["code_url"].startswith("weixin://")
        clock._now = at(r["R1"]["timestamp"])
        code, reply = await send(srv, "GET", r["R1"]["path_with_query"], r["R1"]["authorization"])
        assert (code, reply["code"]) == (404, "ORDER_NOT_EXIST")  # signature accepted; no such order
        clock._now = at(r["R2"]["timestamp"])
        code, reply = await send(srv, "GET", r["R2"]["path_with_query"], r["R2"]["authorization"])
        assert (code, reply["code"]) == (400, "NO_STATEMENT_EXIST")  # signature accepted; no trade that day
        clock._now = at(r["R5"]["timestamp"])
        code, reply = await send(srv, "POST", r["R5"]["path_with_query"], r["R5"]["authorization"], r["R5"]["body"])
        assert (code, reply["code"]) == (404, "ORDER_NOT_EXIST")  # signature accepted; T…0001 was never placed
