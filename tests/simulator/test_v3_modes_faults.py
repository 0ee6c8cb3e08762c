"""V3 key modes, the gray switch, the faults, and the one order book shared with V2, over real HTTP."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wxpay.errors import VerificationError
from wxpay.simulator import demo
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.v3 import bills
from wxpay.v3.keys import load_public_key
from wxpay.v3.payloads import app_payload
from wxpay.v3.verification import PublicKeyVerifier, Validator
from wxpay.xmlcodec import parse_xml

from .pay_server import MCH, OA, PREFIX, SUCCESS_XML, merchant, running_sim  # noqa: F401
from .v3_server import APP, PLATFORM, PUB_ID, V3Merchant, decrypt, receiver, signature_ok  # noqa: F401


@pytest.fixture
async def v3():
    async with running_sim() as srv:
        srv.merchant = V3Merchant(srv.base, lambda: srv.clock.now().timestamp(), prefix=PREFIX)
        yield srv


def keyring(srv):
    return srv.sim.v3.keyring(MCH)


async def paid(srv, no: str, url: str, kind: str = "native") -> int:
    """Place a V3 order, pay it, return its notify delivery id."""
    reply = await srv.merchant.order(kind, no, notify_url=url)
    assert reply.status == 200, reply.body
    order = srv.sim.pay.order(MCH, no)
    assert srv.sim.pay.pay(order, "ok")
    return srv.sim.paid(order).id


# --- key modes ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode, header, expected", [
    ("public_key", None, PUB_ID), ("public_key", PUB_ID, PUB_ID),
    ("platform_cert", None, PLATFORM), ("platform_cert", PLATFORM, PLATFORM),
    ("gray", None, PLATFORM), ("gray", PUB_ID, PUB_ID), ("gray", PLATFORM, PLATFORM),
    ("gray", PLATFORM.lower(), PLATFORM),
])
async def test_replies_are_signed_with_the_key_the_request_chose(v3, mode, header, expected):
    keyring(v3).set_mode(mode)
    reply = await v3.merchant.call("POST", "/v3/pay/transactions/native", serial_header=header, obj={
        "appid": OA, "mchid": MCH, "description": "Demo shop-tea", "out_trade_no": "mode000001",
        "notify_url": "https://m.example.com/n", "amount": {"total": 1}})
    assert reply.status == 200
    assert reply.headers["Wechatpay-Serial"] == expected and reply.signed
    assert reply.headers["Request-ID"] and reply.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"


async def test_error_replies_are_signed_too(v3):
    reply = await v3.merchant.call("GET", f"/v3/pay/transactions/out-trade-no/nosuch0001?mchid={MCH}")
    assert reply.status == 404 and reply.signed


@pytest.mark.parametrize("mode", ["platform_cert", "gray"])
async def test_certificates_served_encrypted_and_signed(v3, mode):
    keyring(v3).set_mode(mode)
    reply = await v3.merchant.call("GET", "/v3/certificates")
    assert reply.status == 200 and reply.signed
    [entry] = reply.json["data"]
    assert entry["serial_no"] == PLATFORM and entry["expire_time"] == "2030-01-01T08:00:00+08:00"
    pem = AESGCM(demo.APIV3_KEY.encode()).decrypt(entry["encrypt_certificate"]["nonce"].encode(),
                                                  base64.b64decode(entry["encrypt_certificate"]["ciphertext"]),
                                                  b"certificate")
    assert pem.decode() == demo.v3_pem("platform_cert.pem")


async def test_public_key_merchant_has_no_certificates(v3):
    reply = await v3.merchant.call("GET", "/v3/certificates")
    assert (reply.status, reply.json) == (404, {"code": "RESOURCE_NOT_EXISTS",
                                                "message": "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥"})


async def test_an_expired_platform_certificate_never_signs():
    """Past 2030-01-01 UTC the demo certificate is dead: gray falls back to the public key, certificate-only
    merchants get a 500 that names the expiry, /v3/certificates lists nothing."""
    async with running_sim(FakeClock(datetime(2030, 1, 2, tzinfo=timezone.utc))) as srv:
        m = V3Merchant(srv.base, lambda: srv.clock.now().timestamp(), prefix=PREFIX)
        srv.sim.v3.keyring(MCH).set_mode("gray")
        reply = await m.call("GET", "/v3/certificates")
        assert reply.status == 200 and reply.json == {"data": []} and reply.headers["Wechatpay-Serial"] == PUB_ID
        srv.sim.v3.keyring(MCH).set_mode("platform_cert")
        reply = await m.call("GET", "/v3/certificates")
        assert reply.status == 500 and reply.json["code"] == "SYSTEM_ERROR" and "expired" in reply.json["message"]


@pytest.mark.parametrize("mode, serial", [("public_key", PUB_ID), ("platform_cert", PLATFORM)])
async def test_notifies_signed_per_mode_and_encrypted_with_the_apiv3_key(v3, receiver, mode, serial):  # noqa: F811
    keyring(v3).set_mode(mode)
    delivery = await v3.sim.notifier.wait(await paid(v3, "notify0001", receiver.url))
    assert delivery.state == "delivered" and delivery.attempts[-1].serial == serial
    [(headers, body)] = receiver.received
    assert headers["Wechatpay-Serial"] == serial and signature_ok(headers, body)
    envelope = json.loads(body)
    assert envelope["event_type"] == "TRANSACTION.SUCCESS" and envelope["resource"]["associated_data"] == "transaction"
    assert len(envelope["resource"]["nonce"]) == 12
    transaction = decrypt(envelope["resource"])
    assert transaction["out_trade_no"] == "notify0001" and transaction["trade_state"] == "SUCCESS"


async def test_notify_acknowledged_only_by_200_or_204(v3, receiver):  # noqa: F811
    receiver.statuses = [202, 500, 200]
    delivery = await v3.sim.notifier.wait(await paid(v3, "ack0000001", receiver.url))
    assert [a.verdict for a in delivery.attempts] == ["fail", "fail", "success"]
    ids = {json.loads(body)["id"] for _, body in receiver.received}
    assert len(ids) == 1  # retries carry the same event id (receivers dedupe by it)
    nonces = {json.loads(body)["resource"]["nonce"] for _, body in receiver.received}
    assert len(nonces) == 3  # but a fresh encryption each time


# --- the gray switch ----------------------------------------------------------------------------


async def gray_serials(share: float, seed: int, count: int, receiver) -> list[str]:  # noqa: F811
    async with running_sim() as srv:
        srv.merchant = V3Merchant(srv.base, lambda: srv.clock.now().timestamp(), prefix=PREFIX)
        keyring(srv).set_mode("gray", share, seed)
        assert (await srv.merchant.order("native", "graybase01", notify_url=receiver.url)).status == 200
        order = srv.sim.pay.order(MCH, "graybase01")
        assert srv.sim.pay.pay(order, "ok")
        start = len(receiver.received)
        for _ in range(count):
            await srv.sim.notifier.wait(srv.sim.paid(order).id)
        got = receiver.received[start:]
        assert all(signature_ok(h, b) for h, b in got)  # each verifies with the key it names
        return [h["Wechatpay-Serial"] for h, _ in got]


async def test_gray_share_zero_and_one(receiver):  # noqa: F811
    assert set(await gray_serials(0.0, 1, 12, receiver)) == {PLATFORM}
    assert set(await gray_serials(1.0, 1, 12, receiver)) == {PUB_ID}


async def test_gray_share_fraction_with_a_fixed_seed(receiver):  # noqa: F811
    first = await gray_serials(0.3, 7, 80, receiver)
    again = await gray_serials(0.3, 7, 80, receiver)
    assert first == again  # the seed fixes the sequence
    public = first.count(PUB_ID)
    assert 80 * 0.3 - 4 * (80 * 0.3 * 0.7) ** 0.5 <= public <= 80 * 0.3 + 4 * (80 * 0.3 * 0.7) ** 0.5
    assert 0 < public < 80


# --- faults: replies ------------------------------------------------------------------------------


async def query(v3, no: str = "fault00001"):
    return await v3.merchant.call("GET", f"/v3/pay/transactions/out-trade-no/{no}?mchid={MCH}")


async def test_signtest_probe_reply(v3):
    await v3.merchant.order("native", "fault00001")
    v3.sim.faults.add("v3/*", "signtest")
    reply = await query(v3)
    assert reply.status == 200 and reply.headers["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert not reply.signed
    assert (await query(v3)).signed  # one shot


async def test_wrong_serial_reply(v3):
    await v3.merchant.order("native", "fault00001")
    v3.sim.faults.add("v3/pay/transactions/out-trade-no/{out_trade_no}", "wrong_serial")
    reply = await query(v3)
    assert reply.headers["Wechatpay-Serial"] == PLATFORM and not reply.signed  # signed by the public key
    reply.headers["Wechatpay-Serial"] = PUB_ID
    assert signature_ok(reply.headers, reply.body)


async def test_clock_skew_reply_is_refused_by_a_window_check(v3):
    await v3.merchant.order("native", "fault00001")
    v3.sim.faults.add("v3/*", "clock_skew", seconds=-600)
    reply = await query(v3)
    assert reply.signed  # signed as sent
    assert int(reply.headers["Wechatpay-Timestamp"]) == int(v3.clock.now().timestamp()) - 600
    validator = Validator(PublicKeyVerifier(PUB_ID, load_public_key(demo.v3_pem("wechatpay_pub_key.pem"))),
                          clock=lambda: v3.clock.now().timestamp())
    with pytest.raises(VerificationError) as stale:
        validator.validate(dict(reply.headers.get_all()), reply.body)
    assert stale.value.code == "stale_timestamp"


async def test_tampered_certificate_ciphertext(v3):
    keyring(v3).set_mode("platform_cert")
    v3.sim.faults.add("v3/certificates", "tampered_ciphertext")
    reply = await v3.merchant.call("GET", "/v3/certificates")
    assert reply.signed
    with pytest.raises(Exception):
        decrypt(reply.json["data"][0]["encrypt_certificate"])


@pytest.mark.parametrize("kind, status, code", [("systemerror", 500, "SYSTEM_ERROR"),
                                                ("frequency_limited", 429, "FREQUENCY_LIMITED")])
async def test_v3_error_faults_change_nothing(v3, kind, status, code):
    v3.sim.faults.add("v3/pay/transactions/native", kind)
    reply = await v3.merchant.order("native", "fault00001")
    assert (reply.status, reply.json["code"]) == (status, code) and reply.signed
    assert v3.sim.pay.order(MCH, "fault00001") is None
    assert (await v3.merchant.order("native", "fault00001")).status == 200


async def test_v2_fault_kinds_on_v3_endpoints(v3):
    v3.sim.faults.add("v3/pay/transactions/native", "http500")
    reply = await v3.merchant.order("native", "fault00001")
    assert reply.status == 500 and b"500" in reply.body and v3.sim.pay.order(MCH, "fault00001") is None
    v3.sim.faults.add("v3/pay/transactions/native", "malformed")
    reply = await v3.merchant.order("native", "fault00001")
    with pytest.raises(ValueError):
        json.loads(reply.body)
    v3.sim.faults.add("v3/*", "bad_sign")
    assert not (await query(v3)).signed
    fault = v3.sim.faults.add("v3/*", "latency", seconds=0.05)
    assert (await query(v3)).status == 200 and fault.fired == 1


async def test_a_fault_is_consumed_only_by_endpoints_that_honour_it(v3):
    v3.sim.faults.add("*", "signtest")
    reply = await v3.call("/pay/orderquery", {"out_trade_no": "nosuch0001"})  # a V2 endpoint
    assert reply["return_code"] == "SUCCESS"
    assert [f["kind"] for f in v3.sim.faults.list()] == ["signtest"]
    v3.sim.faults.clear()
    v3.sim.faults.add("v3/*", "tampered_ciphertext")  # only /v3/certificates encrypts in a reply
    assert (await query(v3, "nosuch0001")).status == 404
    assert [f["kind"] for f in v3.sim.faults.list()] == ["tampered_ciphertext"]


# --- faults: notifies ---------------------------------------------------------------------------


def verifying_receiver(receiver):  # noqa: F811
    """A careful merchant: verify, then decrypt; 204 only if both hold, else 401."""
    def decide(headers, body):
        if not signature_ok(headers, body):
            return 401
        try:
            decrypt(json.loads(body)["resource"])
        except Exception:
            return 500
        return 204
    receiver.decide = decide


async def test_signtest_probe_notify_rejected_then_real_notify(v3, receiver):  # noqa: F811
    verifying_receiver(receiver)
    v3.sim.faults.add("notify", "signtest")
    delivery = await v3.sim.notifier.wait(await paid(v3, "probe00001", receiver.url))
    assert [(a.verdict, a.status) for a in delivery.attempts] == [("probe_rejected", 401), ("success", 204)]
    assert receiver.received[0][0]["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert delivery.state == "delivered"


async def test_signtest_probe_accepted_is_recorded(v3, receiver):  # noqa: F811
    v3.sim.faults.add("notify", "signtest")  # this receiver answers 204 to anything
    delivery = await v3.sim.notifier.wait(await paid(v3, "probe00002", receiver.url))
    assert delivery.attempts[0].verdict == "probe_accepted" and delivery.attempts[0].status == 204
    status, view = await v3.get_json("/_sim/notifies?kind=pay&key=probe00002")
    assert view["deliveries"][0]["attempts"][0]["verdict"] == "probe_accepted"


@pytest.mark.parametrize("kind", ["wrong_serial", "tampered_ciphertext", "bad_sign"])
async def test_bent_notify_refused_then_retried(v3, receiver, kind):  # noqa: F811
    verifying_receiver(receiver)
    v3.sim.faults.add("notify", kind)
    delivery = await v3.sim.notifier.wait(await paid(v3, "bent000001", receiver.url))
    assert [a.verdict for a in delivery.attempts] == ["fail", "success"]


async def test_clock_skewed_notify(v3, receiver):  # noqa: F811
    v3.sim.faults.add("notify", "clock_skew", seconds=3600)
    delivery = await v3.sim.notifier.wait(await paid(v3, "skew000001", receiver.url))
    headers, body = receiver.received[0]
    assert int(headers["Wechatpay-Timestamp"]) - int(v3.clock.now().timestamp()) == 3600
    assert signature_ok(headers, body) and delivery.state == "delivered"


async def test_dropped_and_duplicated_v3_notifies(v3, receiver):  # noqa: F811
    v3.sim.faults.add("notify", "drop")
    v3.sim.faults.add("notify", "duplicate", n=3)
    delivery = await v3.sim.notifier.wait(await paid(v3, "dup0000001", receiver.url))
    assert [a.verdict for a in delivery.attempts] == ["dropped", "success", "success", "success"]
    assert len(receiver.received) == 3


async def test_early_notify_before_the_v3_reply(v3, receiver):  # noqa: F811
    v3.sim.faults.add("v3/pay/transactions/native", "early")
    reply = await v3.merchant.order("native", "early00001", notify_url=receiver.url)
    assert reply.status == 200 and len(receiver.received) == 1  # the notify landed first
    assert decrypt(json.loads(receiver.received[0][1])["resource"])["out_trade_no"] == "early00001"


# --- one order book for V2 and V3 --------------------------------------------------------------


async def test_v2_order_queried_closed_and_refunded_through_v3(v3, merchant):  # noqa: F811
    await v3.unified("crossv2001", notify_url=merchant.url)
    reply = await v3.merchant.call("GET", f"/v3/pay/transactions/out-trade-no/crossv2001?mchid={MCH}")
    assert reply.status == 200 and reply.json["trade_state"] == "NOTPAY" and reply.json["amount"]["total"] == 100
    await v3.unified("crossv2002", notify_url=merchant.url)
    order = v3.sim.pay.order(MCH, "crossv2002")
    assert v3.sim.pay.pay(order, "ok")
    notify = await v3.sim.notifier.wait(v3.sim.paid(order).id)
    assert notify.api == "v2" and parse_xml(merchant.received[-1])["out_trade_no"] == "crossv2002"  # a V2 notify
    closed = await v3.merchant.call("POST", "/v3/pay/transactions/out-trade-no/crossv2001/close", {"mchid": MCH})
    assert closed.status == 204 and v3.sim.pay.order(MCH, "crossv2001").trade_state == "CLOSED"
    refund = await v3.merchant.call("POST", "/v3/refund/domestic/refunds", {
        "transaction_id": order.transaction_id, "out_refund_no": "crossR001", "amount": {"refund": 40, "total": 100}})
    assert refund.status == 200 and refund.json["out_trade_no"] == "crossv2002"
    v2_view = await v3.call("/pay/refundquery", {"out_refund_no": "crossR001"})
    assert v2_view["refund_fee_0"] == "40" and v2_view["refund_status_0"] == "SUCCESS"


async def test_v3_order_seen_and_refunded_through_v2(v3, merchant):  # noqa: F811
    merchant.default = (200, SUCCESS_XML)
    await paid(v3, "crossv3001", "http://127.0.0.1:9/n")
    reply = await v3.call("/pay/orderquery", {"out_trade_no": "crossv3001"})
    assert reply["trade_state"] == "SUCCESS" and reply["total_fee"] == "100"
    refund = await v3.call("/secapi/pay/refund", {"out_trade_no": "crossv3001", "out_refund_no": "crossR002",
                                                   "total_fee": 100, "refund_fee": 10, "notify_url": merchant.url})
    assert refund["result_code"] == "SUCCESS"
    delivery = v3.sim.notifier.list("refund", "crossR002")[0]
    assert delivery["api"] == "v2"  # requested through V2: the encrypted XML refund notify
    queried = await v3.merchant.call("GET", "/v3/refund/domestic/refunds/crossR002")
    assert queried.json["status"] == "SUCCESS" and queried.json["amount"]["refund"] == 10


async def test_v3_refund_notify_and_settle_statuses(v3, receiver):  # noqa: F811
    verifying_receiver(receiver)
    v3.sim.pay.auto_settle_refunds = False
    await paid(v3, "settle0001", "http://127.0.0.1:9/n")
    reply = await v3.merchant.call("POST", "/v3/refund/domestic/refunds", {
        "out_trade_no": "settle0001", "out_refund_no": "S0001", "notify_url": receiver.url,
        "amount": {"refund": 100, "total": 100, "currency": "CNY"}})
    assert reply.json["status"] == "PROCESSING"
    status, settled = await v3.post_json("/_sim/refunds/S0001/settle", {"status": "ABNORMAL"})
    assert status == 200
    await v3.sim.notifier.wait(settled["notify_delivery"])
    envelope = json.loads(receiver.received[-1][1])
    assert envelope["event_type"] == "REFUND.ABNORMAL"
    assert decrypt(envelope["resource"])["refund_status"] == "ABNORMAL"
    assert (await v3.merchant.call("GET", "/v3/refund/domestic/refunds/S0001")).json["status"] == "ABNORMAL"


# --- the shopper flows pay V3 orders ------------------------------------------------------------


async def test_app_order_paid_with_an_rsa_signed_payload(v3, receiver):  # noqa: F811
    reply = await v3.merchant.order("app", "shopapp001", notify_url=receiver.url)
    prepay_id = reply.json["prepay_id"]
    payload = app_payload(v3.merchant.signer, APP, prepay_id)
    bad = {**payload.__dict__, "sign": payload.sign[::-1]}
    status, refused = await v3.post_json("/_sim/pay", {"prepay_id": prepay_id, "payload": bad})
    assert refused["reason"] == "BAD_PAYLOAD" and refused["error"] == "支付验证签名失败"
    status, ok = await v3.post_json("/_sim/pay", {"prepay_id": prepay_id, "payload": payload.__dict__})
    assert ok["ok"] and ok["result"] == {"errCode": 0}
    await v3.sim.notifier.wait(ok["notify_delivery"])
    assert decrypt(json.loads(receiver.received[-1][1])["resource"])["trade_type"] == "APP"


async def test_h5_order_paid_at_the_cashier(v3, receiver):  # noqa: F811
    reply = await v3.merchant.order("h5", "shoph50001", notify_url=receiver.url,
                                    scene_info={"payer_client_ip": "127.0.0.1",
                                                "h5_info": {"type": "Wap", "app_url": "https://shop.example.com"}})
    url = reply.json["h5_url"]
    page = await v3.raw(url[len(v3.base):], method="GET", headers={"Referer": "https://shop.example.com/cart"})
    assert page.code == 200 and "X-Sim-Error" not in page.headers
    other = await v3.raw(url[len(v3.base):], method="GET", headers={"Referer": "https://evil.example.com/"})
    assert other.headers["X-Sim-Error"] == "DOMAIN"
    query = dict(p.split("=") for p in url.split("?")[1].split("&"))
    resp = await v3.raw("/_sim/mweb", f"prepay_id={query['prepay_id']}&package={query['package']}&outcome=ok".encode())
    assert resp.headers["X-Sim-Result"] == "ok"
    await v3.sim.notifier.wait(v3.sim.notifier.list("pay", "shoph50001")[0]["id"])
    assert decrypt(json.loads(receiver.received[-1][1])["resource"])["trade_type"] == "MWEB"


async def test_native_order_scanned(v3, receiver):  # noqa: F811
    reply = await v3.merchant.order("native", "shopnat001", notify_url=receiver.url)
    status, scan = await v3.post_json("/_sim/scan", {"code_url": reply.json["code_url"], "outcome": "ok", "user": "bob"})
    assert scan["ok"]
    await v3.sim.notifier.wait(scan["notify_delivery"])
    got = decrypt(json.loads(receiver.received[-1][1])["resource"])
    assert got["payer"]["openid"] == v3.openid("bob")


# --- inspect and run-time switches ----------------------------------------------------------------


async def test_inspect_views_and_key_mode_switch(v3, receiver):  # noqa: F811
    await paid(v3, "inspect001", receiver.url)
    await v3.sim.notifier.wait(v3.sim.notifier.list("pay", "inspect001")[0]["id"])
    status, order = await v3.get_json("/_sim/orders/inspect001")
    assert order["order"]["api"] == "v3" and order["notifies"][0]["api"] == "v3"
    assert order["notifies"][0]["attempts"][0]["serial"] == PUB_ID and order["notifies"][0]["state"] == "delivered"
    status, merchants = await v3.get_json("/_sim/v3/merchants")
    assert merchants["merchants"][0]["key_mode"] == "public_key"
    assert "PRIVATE" not in json.dumps(merchants)
    status, switched = await v3.post_json(f"/_sim/v3/merchants/{MCH}", {"key_mode": "gray", "gray_share": 0.25,
                                                                         "gray_seed": 5})
    assert status == 200 and (switched["key_mode"], switched["gray_share"]) == ("gray", 0.25)
    assert keyring(v3).key_mode == "gray"
    for bad in ({"key_mode": "both"}, {"gray_share": 2}, {"gray_seed": "x"}, {"colour": 1}, [1]):
        status, error = await v3.post_json(f"/_sim/v3/merchants/{MCH}", bad)
        assert status == 400 and error["error"]
    assert keyring(v3).key_mode == "gray" and keyring(v3).gray_share == 0.25  # refusals changed nothing
    status, _ = await v3.post_json("/_sim/v3/merchants/1999999999", {"key_mode": "gray"})
    assert status == 404
    status, faults = await v3.post_json("/_sim/faults", {"endpoint": "notify", "kind": "clock_skew", "seconds": -900})
    assert status == 200 and faults["added"][0]["seconds"] == -900
    status, error = await v3.post_json("/_sim/faults", {"endpoint": "notify", "kind": "clock_skew", "seconds": 10**6})
    assert status == 400


async def test_state_snapshot_keeps_v3_orders_and_modes(v3):
    await paid(v3, "snap000001", "http://127.0.0.1:9/n")
    keyring(v3).set_mode("gray", 0.4, 9)
    snapshot = json.loads(json.dumps(v3.sim.to_json()))
    async with running_sim() as other:
        other.sim.load_json(snapshot)
        assert other.sim.pay.order(MCH, "snap000001").api == "v3"
        assert other.sim.notifier.list("pay", "snap000001")[0]["api"] == "v3"
        assert (other.sim.v3.keyring(MCH).key_mode, other.sim.v3.keyring(MCH).gray_share) == ("gray", 0.4)


async def test_state_stays_bounded_under_a_flood_of_signed_requests(v3):
    """Bill files between the two steps are capped; refused and read-only requests store nothing."""
    await paid(v3, "flood00001", "http://127.0.0.1:9/n")
    v3.clock.advance(days=1)
    deliveries = len(v3.sim.notifier.deliveries)
    for n in range(bills.MAX_TOKENS + 40):
        reply = await v3.merchant.call("GET", "/v3/bill/tradebill?bill_date=2026-01-05")
        assert reply.status == 200
        await v3.merchant.call("GET", f"/v3/pay/transactions/out-trade-no/nosuch{n:04d}?mchid={MCH}")
        await v3.merchant.call("GET", "/v3/certificates", serial_header="PUB_KEY_ID_0999")
    assert len(v3.sim.v3.bills) == bills.MAX_TOKENS
    assert len(v3.sim.pay.orders) == 1 and len(v3.sim.notifier.deliveries) == deliveries
