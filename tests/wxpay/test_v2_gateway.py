"""The APIv2 gateway against the simulated WeChat over real HTTP on loopback:
every method of the contract, the payloads checked the way the WeChat app
checks them, and each way a notify is refused."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from wxpay import errors, signing
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.gateway import H5Site, NotifyVerdict, OrderIdentity, OrderRequest, Outcome, PaymentNotice, ProvenPayment, \
    RefundNotice, RefundRequest, Refusal
from wxpay.merchant import Merchant
from wxpay.notify import read_notify
from wxpay.v2_gateway import V2Gateway, refund_status
from wxpay.xmlcodec import build_xml, parse_xml
from tests.simulator.pay_server import APP, KEY, MCH, MP, OA, START, cert_pair, merchant, simsrv  # noqa: F401

HMAC = signing.HMAC_SHA256


async def no_sleep(_seconds: float) -> None:
    return None


def gateway_for(simsrv, cert_pair, sign_type: str = HMAC, *, key: str = KEY) -> V2Gateway:
    m = Merchant(MCH, key, OA, sign_type=sign_type, cert_path=cert_pair[0], key_path=cert_pair[1])
    client = WxPayClient(m, endpoints=Endpoints.single(simsrv.base), sleep=no_sleep)
    return V2Gateway(client, appids=(MP, APP))


@pytest.fixture
def gateway(simsrv, cert_pair):
    return gateway_for(simsrv, cert_pair)


def order(no: str, trade_type: str = "NATIVE", **kw) -> OrderRequest:
    fields = dict(out_trade_no=no, trade_type=trade_type, appid=OA, amount_fen=990, description="Demo-tea",
                  notify_url="http://127.0.0.1:9/notify", client_ip="127.0.0.1",
                  expires_at=START + timedelta(hours=1), product_id="co_1" if trade_type == "NATIVE" else None)
    fields.update(kw)
    return OrderRequest(**fields)


async def pay(simsrv, prepay_id: str, payload: dict | None = None) -> dict:
    body = {"prepay_id": prepay_id, "outcome": "ok"}
    if payload is not None:
        body["payload"] = payload
    code, paid = await simsrv.post_json("/_sim/pay", body)
    assert code == 200, paid
    await simsrv.sim.notifier.wait(paid["notify_delivery"])
    return paid


def resigned(body: bytes, sign_type: str, **changes: str) -> bytes:
    fields = {k: v for k, v in read_notify(body).items() if k not in ("sign", "sign_type")}
    fields.update(changes)
    if sign_type != signing.MD5:
        fields["sign_type"] = sign_type
    fields["sign"] = signing.sign(fields, KEY, sign_type)
    return build_xml(fields)


async def test_a_jsapi_payment_end_to_end(simsrv, merchant, gateway):
    openid = simsrv.openid("alice")
    placed = await gateway.place_order(order("gw0001", "JSAPI", openid=openid, notify_url=merchant.url))
    assert placed.prepay_id and placed.sign_type == HMAC and placed.trade_type == "JSAPI"
    payloads = gateway.jsapi_payloads(appid=OA, prepay_id=placed.prepay_id, sign_type=placed.sign_type)
    bridge, choose = payloads.bridge.to_dict(), payloads.choose_wx_pay.to_dict()
    assert bridge["paySign"] == choose["paySign"] and bridge["signType"] == HMAC
    assert (await gateway.query_order("gw0001")).state == "NOTPAY"

    await pay(simsrv, placed.prepay_id, bridge)  # the simulated WeChat app checks paySign
    proven = await gateway.read_payment_notify({}, merchant.received[0])
    assert isinstance(proven, ProvenPayment) and proven.out_trade_no == "gw0001" and proven.signed_with == HMAC
    notice = gateway.judge_payment_notify(proven, OrderIdentity(OA, MCH, HMAC))
    assert isinstance(notice, PaymentNotice)
    assert (notice.amount_fen, notice.mch_id, notice.appid, notice.payer_openid) == (990, MCH, OA, openid)

    facts = await gateway.query_order("gw0001")
    assert facts.paid and facts.state == "SUCCESS" and facts.amount_fen == 990
    assert facts.transaction_id == notice.transaction_id and facts.paid_at == notice.paid_at
    assert facts.paid_at.utcoffset() == timedelta(0) and facts.payer_openid == openid


async def test_refund_its_notify_its_query_and_the_bill(simsrv, merchant, gateway):
    placed = await gateway.place_order(order("gw0002", notify_url=merchant.url))
    code, _ = await simsrv.post_json("/_sim/scan", {"code_url": placed.code_url, "outcome": "ok"})
    assert code == 200
    accepted = await gateway.refund(RefundRequest("gw-r1", "gw0002", OA, 990, 90, merchant.url, reason="chipped"))
    assert accepted.refund_fen == 90 and accepted.refund_id and accepted.status is None
    [delivery] = simsrv.sim.notifier.list("refund", "gw-r1")
    await simsrv.sim.notifier.wait(delivery["id"])
    notice = await gateway.read_refund_notify({}, merchant.received[-1])
    assert isinstance(notice, RefundNotice)
    assert (notice.out_refund_no, notice.out_trade_no, notice.refund_fen, notice.status, notice.appid) == \
        ("gw-r1", "gw0002", 90, "SUCCESS", OA)
    assert notice.refund_id == accepted.refund_id and notice.succeeded_at is not None
    facts = await gateway.query_refund("gw-r1", appid=OA)
    assert (facts.status, facts.refund_fen, facts.refund_id, facts.out_trade_no) == \
        ("SUCCESS", 90, accepted.refund_id, "gw0002")
    with pytest.raises(errors.NotEnoughError):
        await gateway.refund(RefundRequest("gw-r2", "gw0002", OA, 990, 901, merchant.url))
    with pytest.raises(errors.RefundNotExistError):
        await gateway.query_refund("gw-r9")

    simsrv.clock.advance(days=1)
    bill = await gateway.day_bill(date(2026, 1, 5))
    assert [(line.out_trade_no, line.is_payment, line.is_refund) for line in bill.lines] == \
        [("gw0002", True, False), ("gw0002", False, True)]
    refund_line = bill.lines[1]
    assert (refund_line.out_refund_no, refund_line.refund_fen, refund_line.refund_status) == ("gw-r1", 90, "SUCCESS")
    assert bill.lines[0].amount_fen == 990
    with pytest.raises(errors.NoBillError):
        await gateway.day_bill(date(2026, 1, 4))


async def test_each_trade_type_gets_what_its_client_needs(simsrv, merchant, gateway):
    native = await gateway.place_order(order("gw0003"))
    assert native.code_url and native.code_url.startswith("weixin://")
    h5 = await gateway.place_order(order("gw0004", "MWEB", h5_site=H5Site("http://127.0.0.1:8000", "Demo shop " * 9)))
    assert h5.h5_url and gateway.h5_return_url(h5.h5_url, "http://127.0.0.1:8000/pay/co_1/result").startswith(
        h5.h5_url + "&redirect_url=http%3A%2F%2F127.0.0.1")
    app = await gateway.place_order(order("gw0005", "APP", appid=APP, notify_url=merchant.url))
    payload = gateway.app_payload(appid=APP, prepay_id=app.prepay_id, sign_type=app.sign_type).to_dict()
    assert payload["partnerid"] == MCH
    await pay(simsrv, app.prepay_id, payload)
    mini = await gateway.place_order(order("gw0006", "JSAPI", appid=MP, openid=simsrv.openid("bob", MP),
                                           notify_url=merchant.url))
    payload = gateway.mini_program_payload(appid=MP, prepay_id=mini.prepay_id, sign_type=mini.sign_type).to_dict()
    await pay(simsrv, mini.prepay_id, payload)
    assert [(await gateway.query_order(no)).state for no in ("gw0005", "gw0006")] == ["SUCCESS", "SUCCESS"]


async def test_payloads_only_for_sign_types_it_can_sign(gateway):
    assert gateway.signs("MD5") and gateway.signs(HMAC) and not gateway.signs("RSA")
    for make in (gateway.jsapi_payloads, gateway.mini_program_payload, gateway.app_payload):
        with pytest.raises(errors.InvalidArgumentError):
            make(appid=OA, prepay_id="wx1", sign_type="RSA")
    # An order made with MD5 before the merchant moved to HMAC is still signed its own way.
    bridge = gateway.jsapi_payloads(appid=OA, prepay_id="wx1", sign_type="MD5").bridge.to_dict()
    assert bridge["signType"] == "MD5" and len(bridge["paySign"]) == 32


async def test_close_and_what_wechat_says_about_orders(simsrv, merchant, gateway):
    placed = await gateway.place_order(order("gw0007"))
    with pytest.raises(errors.BusinessError):  # WeChat: not within five minutes of creation
        await gateway.close_order("gw0007", appid=OA)
    simsrv.clock.advance(minutes=6)
    await gateway.close_order("gw0007", appid=OA)
    assert (await gateway.query_order("gw0007")).state == "CLOSED"
    with pytest.raises(errors.OrderClosedError):
        await gateway.close_order("gw0007")
    paid = await gateway.place_order(order("gw0008", notify_url=merchant.url))
    await simsrv.post_json("/_sim/scan", {"code_url": paid.code_url, "outcome": "ok"})
    with pytest.raises(errors.OrderPaidError):
        await gateway.close_order("gw0008")
    with pytest.raises(errors.OrderNotExistError):
        await gateway.query_order("gw0009")
    await gateway.place_order(order("gw0015"))
    with pytest.raises(errors.OutTradeNoUsedError):
        await gateway.place_order(order("gw0015", amount_fen=1))
    assert placed.out_trade_no == "gw0007"


async def test_orders_and_refunds_are_checked_before_any_call(simsrv, gateway):
    with pytest.raises(errors.InvalidArgumentError):
        await gateway.place_order(order("gw0010", "JSAPI"))  # no openid
    with pytest.raises(errors.InvalidArgumentError):
        await gateway.refund(RefundRequest("gw-r3", "gw0010", OA, 100, 101, "http://127.0.0.1:9/n"))
    code, orders = await simsrv.get_json("/_sim/orders")
    assert code == 200 and "gw0010" not in str(orders)


# -- notifies refused --------------------------------------------------------------------------


async def paid_notify(simsrv, merchant, gateway, no: str) -> bytes:
    placed = await gateway.place_order(order(no, notify_url=merchant.url))
    await simsrv.post_json("/_sim/scan", {"code_url": placed.code_url, "outcome": "ok"})
    [delivery] = simsrv.sim.notifier.list("pay", no)
    await simsrv.sim.notifier.wait(delivery["id"])
    return merchant.received[-1]


def refused(got, code: str, *, proven: bool, key: str | None = None, outcome: Outcome = Outcome.INVALID) -> None:
    assert isinstance(got, Refusal), got
    assert (got.verdict.code, got.verdict.outcome, got.proven, got.key) == (code, outcome, proven, key)


async def test_a_payment_notify_is_proven_before_anything_else(simsrv, merchant, gateway):
    body = await paid_notify(simsrv, merchant, gateway, "gw0011")
    cheaper = build_xml({**read_notify(body), "total_fee": "1"})  # WeChat's signature, another amount
    refused(await gateway.read_payment_notify({}, cheaper), "bad_signature", proven=False, key="gw0011")
    forged = body.replace(b"gw0011", b"gw0012")
    refused(await gateway.read_payment_notify({}, forged), "bad_signature", proven=False, key="gw0012")
    weird = resigned(body, HMAC, out_trade_no="gw\n0011")
    refused(await gateway.read_payment_notify({}, build_xml({**parse_xml(weird), "sign": "0" * 64})), "bad_signature",
            proven=False, key=None)  # a name outside WeChat's charset is not kept
    refused(await gateway.read_payment_notify({}, resigned(body, HMAC, out_trade_no="")), "missing_out_trade_no",
            proven=False)
    refused(await gateway.read_payment_notify({}, b"<xml><a>1</a>"), "malformed_message", proven=False)
    refused(await gateway.read_payment_notify({}, b'<!DOCTYPE x [<!ENTITY a "b">]><xml/>'), "unsafe_xml",
            proven=False)
    refused(await gateway.read_payment_notify({}, b"<xml>" + b" " * 40000 + b"</xml>"), "too_large",
            proven=False, outcome=Outcome.TOO_LARGE)


async def test_a_proven_notify_is_judged_against_its_order(simsrv, merchant, gateway):
    body = await paid_notify(simsrv, merchant, gateway, "gw0013")
    ours = OrderIdentity(OA, MCH, HMAC)
    # Signed by our key, but with MD5 while the order is HMAC-SHA256: not this order's notify.
    md5 = await gateway.read_payment_notify({}, resigned(body, signing.MD5))
    assert isinstance(md5, ProvenPayment) and md5.signed_with == signing.MD5
    refused(gateway.judge_payment_notify(md5, ours), "bad_signature", proven=False, key="gw0013")
    proven = await gateway.read_payment_notify({}, body)
    refused(gateway.judge_payment_notify(proven, OrderIdentity(MP, MCH, HMAC)), "identity_mismatch", proven=True,
            key="gw0013")
    fail = await gateway.read_payment_notify({}, resigned(body, HMAC, result_code="FAIL", err_code="SYSTEMERROR"))
    refused(gateway.judge_payment_notify(fail, ours), "ignored_wechat_busy", proven=True, key="gw0013",
            outcome=Outcome.ACCEPTED)
    bad_fee = await gateway.read_payment_notify({}, resigned(body, HMAC, total_fee="9.90"))
    refused(gateway.judge_payment_notify(bad_fee, ours), "malformed_message", proven=True, key="gw0013")
    assert isinstance(gateway.judge_payment_notify(proven, ours), PaymentNotice)


async def test_a_refund_notify_proves_itself_by_decrypting(simsrv, merchant, cert_pair, gateway):
    placed = await gateway.place_order(order("gw0014", notify_url=merchant.url))
    await simsrv.post_json("/_sim/scan", {"code_url": placed.code_url, "outcome": "ok"})
    await gateway.refund(RefundRequest("gw-r4", "gw0014", OA, 990, 990, merchant.url))
    [delivery] = simsrv.sim.notifier.list("refund", "gw-r4")
    await simsrv.sim.notifier.wait(delivery["id"])
    body = merchant.received[-1]
    fields = read_notify(body)
    refused(await gateway.read_refund_notify({}, build_xml({**fields, "appid": "wx0000000000000bad"})),
            "identity_mismatch", proven=False)
    refused(await gateway.read_refund_notify({}, build_xml({**fields, "mch_id": "1900000999"})),
            "identity_mismatch", proven=False)
    tampered = fields["req_info"][:-8] + ("A" * 8 if not fields["req_info"].endswith("A" * 8) else "B" * 8)
    refused(await gateway.read_refund_notify({}, build_xml({**fields, "req_info": tampered})), "undecryptable",
            proven=False)
    refused(await gateway.read_refund_notify({}, build_xml({"return_code": "FAIL", "appid": OA, "mch_id": MCH})),
            "ignored_wechat_rejected_request", proven=False, outcome=Outcome.ACCEPTED)
    other_key = gateway_for(simsrv, cert_pair, key="Z" * 32)  # configured with another key
    refused(await other_key.read_refund_notify({}, body), "undecryptable", proven=False)
    assert isinstance(await gateway.read_refund_notify({}, body), RefundNotice)


def test_replies_are_xml_with_the_outcome_s_status(gateway):
    ok = gateway.notify_reply(NotifyVerdict("paid", Outcome.ACCEPTED, "OK"))
    assert (ok.status, ok.content_type) == (200, "text/xml; charset=utf-8")
    assert parse_xml(ok.body) == {"return_code": "SUCCESS", "return_msg": "OK"}
    busy = gateway.notify_reply(NotifyVerdict("store_unavailable", Outcome.UNAVAILABLE, "temporarily unable"))
    assert busy.status == 503 and parse_xml(busy.body) == {"return_code": "FAIL", "return_msg": "temporarily unable"}


def test_refund_words_are_the_contract_s():
    assert [refund_status(s) for s in ("SUCCESS", "REFUNDCLOSE", "PROCESSING", "CHANGE", "ODD")] == \
        ["SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL", "ODD"]


def test_the_key_is_not_in_its_repr(gateway):
    assert KEY not in repr(gateway) and MCH in repr(gateway)


async def test_a_notify_method_never_raises(gateway, caplog):
    """Whatever goes wrong inside, the caller gets a refusal with a verdict, never an exception."""
    broken = ProvenPayment("gw0016", HMAC, evidence=None)  # not a notify this gateway read
    refused(gateway.judge_payment_notify(broken, OrderIdentity(OA, MCH, HMAC)), "internal_error", proven=False,
            key="gw0016", outcome=Outcome.FAILED)
    refused(await gateway.read_payment_notify({}, b"\xff\xfe<xml>"), "malformed_message", proven=False)
    refused(await gateway.read_refund_notify({}, b""), "malformed_message", proven=False)
    assert "payment notify could not be judged" in caplog.text
