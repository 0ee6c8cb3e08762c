"""What only the APIv2 gateway does, against the simulated WeChat over real HTTP
on loopback: sign types, the five-minute close rule, each way an XML notify is
refused. The behaviour both versions share is in test_gateways.py."""
from __future__ import annotations

import pytest

from wxpay import errors, signing
from wxpay.gateway import NotifyVerdict, OrderIdentity, Outcome, PaymentNotice, ProvenPayment, RefundNotice, \
    RefundRequest, Refusal
from wxpay.notify import read_notify
from wxpay.v2_gateway import refund_status
from wxpay.xmlcodec import build_xml, parse_xml
from tests.simulator.pay_server import KEY, MCH, MP, OA, cert_pair, merchant, simsrv  # noqa: F401
from .gateway_sim import HMAC, order, v2_gateway_for as gateway_for


@pytest.fixture
def gateway(simsrv, cert_pair):  # noqa: F811
    return gateway_for(simsrv, cert_pair)


def resigned(body: bytes, sign_type: str, **changes: str) -> bytes:
    fields = {k: v for k, v in read_notify(body).items() if k not in ("sign", "sign_type")}
    fields.update(changes)
    if sign_type != signing.MD5:
        fields["sign_type"] = sign_type
    fields["sign"] = signing.sign(fields, KEY, sign_type)
    return build_xml(fields)


async def test_an_order_signed_md5_before_a_move_to_hmac_is_still_signed_its_own_way(gateway):
    bridge = gateway.jsapi_payloads(appid=OA, prepay_id="wx1", sign_type="MD5").bridge.to_dict()
    assert bridge["signType"] == "MD5" and len(bridge["paySign"]) == 32
    bridge = gateway.jsapi_payloads(appid=OA, prepay_id="wx1", sign_type=HMAC).bridge.to_dict()
    assert bridge["signType"] == HMAC and len(bridge["paySign"]) == 64


async def test_wechat_refuses_to_close_an_order_younger_than_five_minutes(simsrv, gateway):
    await gateway.place_order(order("gw0007"))
    with pytest.raises(errors.BusinessError):
        await gateway.close_order("gw0007", appid=OA)
    assert (await gateway.query_order("gw0007")).state == "NOTPAY"
    simsrv.clock.advance(minutes=6)
    await gateway.close_order("gw0007", appid=OA)
    assert (await gateway.query_order("gw0007")).state == "CLOSED"


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
    # WeChat's out_trade_no is at most 32 characters: the 32nd still names the notify, a 33rd does not.
    longest, longer = "g" * 32, "g" * 33
    proven = await gateway.read_payment_notify({}, resigned(body, HMAC, out_trade_no=longest))
    assert isinstance(proven, ProvenPayment) and proven.out_trade_no == longest
    refused(await gateway.read_payment_notify({}, resigned(body, HMAC, out_trade_no=longer)), "missing_out_trade_no",
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
    # The refund's notify, whatever else arrived after it (the payment notify is delivered concurrently).
    body = next(b for b in reversed(merchant.received) if b"<req_info>" in b)
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
