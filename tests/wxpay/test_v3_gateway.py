"""What only the APIv3 gateway does, against the simulated WeChat over real HTTP on
loopback: each key mode and the gray switch, probes, tampered and skewed and
unknown-serial notifies, the platform certificates as trust state, its replies
to WeChat. The behaviour both versions share is in test_gateways.py."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from wxpay import errors
from wxpay.gateway import H5Site, NotifyVerdict, OrderIdentity, Outcome, PaymentNotice, ProvenPayment, RefundNotice, \
    RefundRequest, Refusal
from wxpay.transport import HttpRequest, HttpResponse, TornadoTransport
from wxpay.v3_gateway import V3Gateway
from wxpay.v3_settings import V3Settings
from tests.simulator.pay_server import MCH, OA, simsrv  # noqa: F401
from .gateway_sim import PLATFORM, PUB_ID, delivered, inbox, order, sim_clock, v3_gateway_for, \
    v3_settings  # noqa: F401

CERTS = "v3/certificates"
HOUR = 3600.0


class Calls(list):
    """The gateway's observer: one CallRecord per attempt at WeChat."""

    def __call__(self, record) -> None:
        self.append(record)

    def to(self, endpoint: str) -> int:
        return sum(1 for r in self if r.endpoint == endpoint)


def set_mode(simsrv, mode: str, share: float | None = None, seed: int | None = None) -> None:  # noqa: F811
    simsrv.sim.v3.keyring(MCH).set_mode(mode, share, seed)


def refused(got, code: str, *, proven: bool, key: str | None = None, outcome: Outcome = Outcome.INVALID) -> None:
    assert isinstance(got, Refusal), got
    assert (got.verdict.code, got.verdict.outcome, got.proven, got.key) == (code, outcome, proven, key)


async def paid_notify(simsrv, inbox, gateway, no: str) -> tuple[dict, bytes]:  # noqa: F811
    placed = await gateway.place_order(order(no, notify_url=inbox.url))
    code, reply = await simsrv.post_json("/_sim/scan", {"code_url": placed.code_url, "outcome": "ok"})
    assert code == 200 and reply["ok"], reply
    return await delivered(simsrv, inbox, "pay", no)


async def renotify(simsrv, inbox, no: str) -> tuple[dict, bytes]:  # noqa: F811
    """WeChat notifies the same paid order once more (a fresh signature and encryption)."""
    delivery = simsrv.sim.paid(simsrv.sim.pay.order(MCH, no))
    await simsrv.sim.notifier.wait(delivery.id)
    return inbox.last


# --- key modes and the gray switch ---------------------------------------------------------


@pytest.mark.parametrize("mode, serial, downloads", [("public_key", PUB_ID, 0), ("platform_cert", PLATFORM, 1),
                                                     ("gray", PUB_ID, 1)])
async def test_each_key_mode_pays_end_to_end(simsrv, inbox, mode, serial, downloads):  # noqa: F811
    set_mode(simsrv, mode, 1.0 if mode == "gray" else None)
    calls = Calls()
    gateway = v3_gateway_for(simsrv, mode, observer=calls)
    assert gateway.key_mode == mode
    headers, body = await paid_notify(simsrv, inbox, gateway, f"mode{mode[:6]}01")
    assert headers["Wechatpay-Serial"] == serial
    proven = await gateway.read_payment_notify(headers, body)
    assert isinstance(proven, ProvenPayment) and proven.signed_with == "RSA"
    assert isinstance(gateway.judge_payment_notify(proven, OrderIdentity(OA, MCH, "RSA")), PaymentNotice)
    assert (await gateway.query_order(f"mode{mode[:6]}01")).state == "SUCCESS"
    assert calls.to(CERTS) == downloads  # the first call downloads the certificates; the public key needs none
    assert all(r.ok for r in calls)


async def test_the_gray_switch_takes_notifies_signed_by_either_key(simsrv, inbox):  # noqa: F811
    set_mode(simsrv, "gray", 0.5, 7)
    gray = v3_gateway_for(simsrv, "gray")
    public_only, certs_only = v3_gateway_for(simsrv, "public_key"), v3_gateway_for(simsrv, "platform_cert")
    await certs_only.refresh_trust()
    notifies = [await paid_notify(simsrv, inbox, gray, "gray000001")]
    notifies += [await renotify(simsrv, inbox, "gray000001") for _ in range(11)]
    serials = [h["Wechatpay-Serial"] for h, _ in notifies]
    assert set(serials) == {PUB_ID, PLATFORM}  # WeChat moves notifies over a share at a time
    for headers, body in notifies:
        assert isinstance(await gray.read_payment_notify(headers, body), ProvenPayment)
        # Holding one key only refuses the other's notifies: during the switch both are needed.
        one = public_only if headers["Wechatpay-Serial"] == PUB_ID else certs_only
        other = certs_only if one is public_only else public_only
        assert isinstance(await one.read_payment_notify(headers, body), ProvenPayment)
        refused(await other.read_payment_notify(headers, body), "unknown_serial", proven=False)


async def test_an_h5_order_names_its_site_and_the_shopper_s_ip(simsrv):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    placed = await gateway.place_order(order("h5order001", "MWEB", client_ip="203.0.113.9",
                                             h5_site=H5Site("https://shop.example", "Demo shop " * 9)))
    assert placed.h5_url and placed.prepay_id is None and placed.sign_type == "RSA"
    scene = json.loads(simsrv.sim.pay.order(MCH, "h5order001").scene_info)
    assert scene == {"payer_client_ip": "203.0.113.9",
                     "h5_info": {"app_name": ("Demo shop " * 4)[:32], "app_url": "https://shop.example",
                                 "type": "Wap"}}


async def test_a_gray_merchant_asks_for_replies_signed_with_the_public_key(simsrv):  # noqa: F811
    set_mode(simsrv, "gray", 0.0)
    await v3_gateway_for(simsrv, "gray").place_order(order("gray000002"))
    # Without our Wechatpay-Serial WeChat would sign with the platform certificate (W5);
    # the gateway names the public key, so a public-key-only gateway reads the same replies.
    assert (await v3_gateway_for(simsrv, "public_key").query_order("gray000002")).state == "NOTPAY"


async def test_a_public_key_merchant_configured_with_certificates_gets_the_keeper_s_error(simsrv):  # noqa: F811
    set_mode(simsrv, "public_key")
    gateway = v3_gateway_for(simsrv, "platform_cert")
    with pytest.raises(errors.PlatformCertificatesUnavailableError, match="public key"):
        await gateway.refresh_trust()
    with pytest.raises(errors.PlatformCertificatesUnavailableError):
        await gateway.place_order(order("pkonly0001"))
    code, orders = await simsrv.get_json("/_sim/orders")
    assert "pkonly0001" not in str(orders)  # refused before the order was sent
    assert gateway.trust_state() is None


async def test_a_certificate_merchant_configured_with_the_public_key_is_refused_by_wechat(simsrv):  # noqa: F811
    set_mode(simsrv, "platform_cert")
    with pytest.raises(errors.InvalidRequestError, match="Wechatpay-Serial"):
        await v3_gateway_for(simsrv, "public_key").place_order(order("certonly01"))


# --- notifies: probes, tampering, clocks, serials --------------------------------------------


async def test_a_signtest_probe_is_refused_and_the_real_notify_read(simsrv, inbox):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    simsrv.sim.faults.add("notify", "signtest", count=1)
    await paid_notify(simsrv, inbox, gateway, "probe00001")
    (probe_h, probe_b), (real_h, real_b) = inbox.received
    assert probe_h["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    probe = await gateway.read_payment_notify(probe_h, probe_b)
    refused(probe, "signtest_probe", proven=False)
    assert gateway.notify_reply(probe.verdict).status == 400  # non-2xx, as WeChat expects
    assert isinstance(await gateway.read_payment_notify(real_h, real_b), ProvenPayment)


async def test_a_signtest_probe_reply_is_refused_and_not_retried(simsrv):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    await gateway.place_order(order("probe00002"))
    fault = simsrv.sim.faults.add("v3/pay/transactions/out-trade-no/{out_trade_no}", "signtest", count=2)
    with pytest.raises(errors.VerificationError) as refusal:
        await gateway.query_order("probe00002")
    assert refusal.value.code == "signtest_probe" and fault.fired == 1


async def test_tampering_is_refused_before_or_after_the_proof(simsrv, inbox):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    headers, body = await paid_notify(simsrv, inbox, gateway, "tamper0001")
    changed = body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCESs"')
    refused(await gateway.read_payment_notify(headers, changed), "bad_signature", proven=False)
    refused(await gateway.read_payment_notify({**headers, "Wechatpay-Signature": "AAAA"}, body),
            "signature_wrong_length", proven=False)
    no_headers = {k: v for k, v in headers.items() if not k.lower().startswith("wechatpay")}
    refused(await gateway.read_payment_notify(no_headers, body), "missing_header", proven=False)
    # Signed by WeChat over a ciphertext that does not decrypt: proven, and worth an operator's look.
    simsrv.sim.faults.add("notify", "tampered_ciphertext", count=1)
    headers, body = await renotify(simsrv, inbox, "tamper0001")
    refused(await gateway.read_payment_notify(headers, body), "undecryptable", proven=True)


async def test_a_wrong_apiv3_key_is_a_proven_refusal(simsrv, inbox):  # noqa: F811
    headers, body = await paid_notify(simsrv, inbox, v3_gateway_for(simsrv), "apiv3key01")
    wrong = v3_gateway_for(simsrv, apiv3_key="Z" * 32)
    refused(await wrong.read_payment_notify(headers, body), "undecryptable", proven=True)
    refused(await wrong.read_refund_notify(headers, body), "undecryptable", proven=True)


@pytest.mark.parametrize("skew, accepted", [(299, True), (-299, True), (300, False), (-301, False), (86400, False)])
async def test_a_notify_outside_the_300_second_window_is_refused(simsrv, inbox, skew, accepted):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    simsrv.sim.faults.add("notify", "clock_skew", count=1, seconds=skew)
    got = await gateway.read_payment_notify(*await paid_notify(simsrv, inbox, gateway, "skew000001"))
    if accepted:
        assert isinstance(got, ProvenPayment)
    else:
        refused(got, "stale_timestamp", proven=False)
        assert isinstance(await gateway.read_payment_notify(*await renotify(simsrv, inbox, "skew000001")),
                          ProvenPayment)  # WeChat's next attempt, signed now


async def test_a_clock_off_by_more_than_five_minutes_is_named_in_the_error(simsrv):  # noqa: F811
    late = v3_gateway_for(simsrv, clock=lambda: simsrv.clock.now().timestamp() + 400)
    with pytest.raises(errors.MerchantSetupError, match="clock") as refusal:
        await late.place_order(order("clock00001"))
    assert refusal.value.http_status == 401


async def test_an_unknown_serial_is_refused_and_costs_no_download(simsrv, inbox):  # noqa: F811
    set_mode(simsrv, "platform_cert")
    calls = Calls()
    gateway = v3_gateway_for(simsrv, "platform_cert", observer=calls)
    await gateway.refresh_trust()
    headers, body = await paid_notify(simsrv, inbox, gateway, "serial0001")
    simsrv.clock.advance(seconds=61)  # past the keeper's minimum interval: a download would be allowed
    before = calls.to(CERTS)
    for serial in (PUB_ID, "0123456789ABCDEF0123456789ABCDEF01234567", "x" * 2000):
        refused(await gateway.read_payment_notify({**headers, "Wechatpay-Serial": serial}, body),
                "unknown_serial" if len(serial) < 1000 else "malformed_header", proven=False)
    simsrv.sim.faults.add("notify", "wrong_serial", count=1)
    refused(await gateway.read_payment_notify(*await renotify(simsrv, inbox, "serial0001")), "unknown_serial",
            proven=False)
    assert calls.to(CERTS) == before


# --- refund notifies ---------------------------------------------------------------------------


@pytest.mark.parametrize("outcome, status", [("SUCCESS", "SUCCESS"), ("CLOSED", "CLOSED"), ("ABNORMAL", "ABNORMAL")])
async def test_each_refund_outcome_is_read(simsrv, inbox, outcome, status):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    await paid_notify(simsrv, inbox, gateway, "refund0001")
    simsrv.sim.pay.auto_settle_refunds = False
    accepted = await gateway.refund(RefundRequest("rf-1", "refund0001", OA, 990, 500, inbox.url))
    assert accepted.status == "PROCESSING"
    assert (await gateway.query_refund("rf-1")).status == "PROCESSING"
    simsrv.sim.settle_refund(simsrv.sim.pay.refund_by_no(MCH, "rf-1"), outcome)
    headers, body = await delivered(simsrv, inbox, "refund", "rf-1")
    assert json.loads(body)["event_type"] == f"REFUND.{status}"
    notice = await gateway.read_refund_notify(headers, body)
    assert isinstance(notice, RefundNotice) and (notice.status, notice.refund_fen) == (status, 500)
    assert (notice.succeeded_at is not None) == (status == "SUCCESS") and notice.event_id
    assert (await gateway.query_refund("rf-1")).status == status


async def test_a_notify_of_the_other_kind_is_refused_proven(simsrv, inbox):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    payment = await paid_notify(simsrv, inbox, gateway, "kinds00001")
    await gateway.refund(RefundRequest("rf-2", "kinds00001", OA, 990, 10, inbox.url))
    refund = await delivered(simsrv, inbox, "refund", "rf-2")
    as_refund = await gateway.read_refund_notify(*payment)
    as_payment = await gateway.read_payment_notify(*refund)
    refused(as_refund, "event_mismatch", proven=True)
    refused(as_payment, "event_mismatch", proven=True)
    # What WeChat's notify log shows the merchant: which kind of notify it was not.
    assert json.loads(gateway.notify_reply(as_refund.verdict).body) == {"code": "FAIL", "message": "not a refund notify"}
    assert json.loads(gateway.notify_reply(as_payment.verdict).body) == {"code": "FAIL", "message": "not a payment notify"}


async def test_a_payment_notify_is_judged_by_appid_and_mchid_not_by_sign_type(simsrv, inbox):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    proven = await gateway.read_payment_notify(*await paid_notify(simsrv, inbox, gateway, "judge00001"))
    # WeChat's RSA signature proves it whatever the order's payloads were signed with.
    for sign_type in ("RSA", "HMAC-SHA256", "MD5"):
        assert isinstance(gateway.judge_payment_notify(proven, OrderIdentity(OA, MCH, sign_type)), PaymentNotice)
    v2_proven = ProvenPayment("judge00001", "HMAC-SHA256", evidence={"out_trade_no": "judge00001"})
    refused(gateway.judge_payment_notify(v2_proven, OrderIdentity(OA, MCH, "RSA")), "wrong_gateway", proven=True,
            key="judge00001")


# --- replies to WeChat --------------------------------------------------------------------------


def test_replies_are_204_or_the_outcome_s_status_with_json(simsrv):  # noqa: F811
    gateway = v3_gateway_for(simsrv)
    ok = gateway.notify_reply(NotifyVerdict("paid", Outcome.ACCEPTED, "OK"))
    assert (ok.status, ok.content_type, ok.body) == (204, None, b"")
    ignored = gateway.notify_reply(NotifyVerdict("duplicate", Outcome.ACCEPTED))
    assert ignored.status == 204
    busy = gateway.notify_reply(NotifyVerdict("store_unavailable", Outcome.UNAVAILABLE, "暂时无法处理"))
    assert (busy.status, busy.content_type) == (503, "application/json; charset=utf-8")
    assert json.loads(busy.body) == {"code": "FAIL", "message": "暂时无法处理"}
    assert json.loads(gateway.notify_reply(NotifyVerdict("x", Outcome.INVALID)).body)["message"] == "FAIL"


# --- "already paid" when WeChat does not say so ---------------------------------------------------


class OtherWords:
    """Real HTTP to the simulator, with two of its error replies in the other words WeChat's
    APIv3 documents: no ORDERPAID (a paid out_trade_no may be refused as used), and
    RESOURCE_NOT_EXISTS where the simulator says ORDER_NOT_EXIST. Error replies are not signed."""

    WORDS = {(403, "ORDERPAID"): "OUT_TRADE_NO_USED", (404, "ORDER_NOT_EXIST"): "RESOURCE_NOT_EXISTS"}

    def __init__(self) -> None:
        self.inner = TornadoTransport(client="simple")
        self.rewritten: list[str] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        response = await self.inner.send(request)
        if response.status in (403, 404):
            code = json.loads(response.body).get("code")
            other = self.WORDS.get((response.status, code))
            if other is not None:
                self.rewritten.append(code)
                return HttpResponse(response.status, response.headers,
                                    json.dumps({"code": other, "message": "…"}).encode())
        return response


@pytest.fixture
def other_words(simsrv):  # noqa: F811
    transport = OtherWords()
    return transport, V3Gateway(v3_settings(simsrv.base), transport=transport, clock=sim_clock(simsrv))


async def test_a_paid_order_refused_as_used_is_reported_paid(simsrv, inbox, other_words):  # noqa: F811
    transport, gateway = other_words
    await paid_notify(simsrv, inbox, gateway, "asused0001")
    with pytest.raises(errors.OrderPaidError) as paid:
        await gateway.place_order(order("asused0001", notify_url=inbox.url))
    assert transport.rewritten == ["ORDERPAID"] and paid.value.err_code == "OUT_TRADE_NO_USED"
    assert isinstance(paid.value.__cause__, errors.OutTradeNoUsedError)
    await gateway.place_order(order("asused0002"))
    with pytest.raises(errors.OutTradeNoUsedError):  # unpaid: the refusal stands
        await gateway.place_order(order("asused0002", amount_fen=1))


async def test_an_unknown_order_is_order_not_exist_in_either_words(simsrv, other_words):  # noqa: F811
    transport, gateway = other_words
    with pytest.raises(errors.OrderNotExistError):
        await gateway.query_order("unknown001")
    with pytest.raises(errors.OrderNotExistError):
        await gateway.close_order("unknown001")
    assert transport.rewritten == ["ORDER_NOT_EXIST", "ORDER_NOT_EXIST"]


# --- trust state -------------------------------------------------------------------------------


async def test_trust_state_round_trip_through_a_store(simsrv, inbox):  # noqa: F811
    set_mode(simsrv, "platform_cert")
    first = v3_gateway_for(simsrv, "platform_cert")
    assert first.trust_state() is None and first.trust_refresh_due()
    state = await first.refresh_trust()
    assert state == first.trust_state() and not first.trust_refresh_due()
    stored = json.loads(json.dumps(state))  # plain JSON, public material only
    assert "PRIVATE" not in json.dumps(stored) and "BEGIN CERTIFICATE" in stored["certificates"][0]
    headers, body = await paid_notify(simsrv, inbox, first, "trust00001")

    calls = Calls()
    second = v3_gateway_for(simsrv, "platform_cert", observer=calls)  # another process
    refused(await second.read_payment_notify(headers, body), "unknown_serial", proven=False)
    second.load_trust_state(stored)
    assert not second.trust_refresh_due()  # the other process fetched just now
    assert isinstance(await second.read_payment_notify(headers, body), ProvenPayment)
    assert (await second.query_order("trust00001")).state == "SUCCESS"
    assert calls.to(CERTS) == 0
    second.load_trust_state({"version": 1, "certificates": [], "fetched_at": None, "attempted_at": None})
    assert isinstance(await second.read_payment_notify(headers, body), ProvenPayment)  # trusted stays trusted
    for bad in ({"version": 2}, {"version": 1, "certificates": "pem"}, {"version": 1, "certificates": ["x"]}):
        with pytest.raises(errors.ConfigError):
            second.load_trust_state(bad)


async def test_refreshes_keep_to_the_keeper_s_bounds(simsrv):  # noqa: F811
    set_mode(simsrv, "platform_cert")
    calls = Calls()
    gateway = v3_gateway_for(simsrv, "platform_cert", observer=calls)
    fault = simsrv.sim.faults.add(CERTS, "http500", count=3)
    with pytest.raises(errors.TransportError):
        await gateway.refresh_trust()
    assert fault.fired == 3 and gateway.trust_state() is None
    assert not gateway.trust_refresh_due()  # a failed attempt counts: WeChat is not hammered
    simsrv.clock.advance(seconds=59)
    assert not gateway.trust_refresh_due()
    simsrv.clock.advance(seconds=1)
    assert gateway.trust_refresh_due()
    await gateway.refresh_trust()
    simsrv.clock.advance(seconds=12 * HOUR - 1)
    assert not gateway.trust_refresh_due()
    simsrv.clock.advance(seconds=1)
    assert gateway.trust_refresh_due()  # twelve hours on: look for a rotation
    await gateway.refresh_trust()
    # A week before the certificate ends WeChat should offer the next one: refresh, at most once a minute.
    simsrv.clock.advance(seconds=datetime(2029, 12, 25, 1, tzinfo=timezone.utc).timestamp()
                         - simsrv.clock.now().timestamp())
    assert gateway.trust_refresh_due()
    await gateway.refresh_trust()
    assert not gateway.trust_refresh_due()
    simsrv.clock.advance(seconds=60)
    assert gateway.trust_refresh_due()


async def test_a_public_key_merchant_keeps_no_trust_state(simsrv):  # noqa: F811
    calls = Calls()
    gateway = v3_gateway_for(simsrv, "public_key", observer=calls)
    assert gateway.trust_state() is None and not gateway.trust_refresh_due()
    assert await gateway.refresh_trust() is None
    gateway.load_trust_state({"version": 99})  # nothing to load into
    await gateway.place_order(order("pubkey0001"))
    assert calls.to(CERTS) == 0 and calls.to("v3/native") == 1


# --- construction ------------------------------------------------------------------------------


def test_bad_settings_are_refused_with_every_problem(simsrv):  # noqa: F811
    with pytest.raises(errors.ConfigError) as refusal:
        v3_gateway_for(simsrv, apiv3_key="short", public_key_id="PUB_KEY_ID_12x")
    lines = refusal.value.message.splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == ["apiv3_key", "public_key_id"]
    with pytest.raises(errors.ConfigError):
        V3Gateway({"mchid": MCH})  # type: ignore[arg-type]


def test_the_settings_show_no_key():
    settings = v3_settings()
    assert isinstance(settings, V3Settings) and settings.key_mode == "public_key"
    shown = repr(settings)
    assert settings.apiv3_key not in shown and "PRIVATE KEY" not in shown and PUB_ID in shown
