"""The gateway's notify shell, as WeChat and an operator see it: the message of
each refusal, the size boundary, an unexpected error inside a version's
reader, and the exact bytes of each version's reply.

Each case pins a survivor of the mutation run (docs/MUTATION.md). The V2
and V3 gateways are the real ones, built the way the other gateway tests
build them (the simulated WeChat on loopback; no call reaches it here).
"""
from __future__ import annotations

import json

import pytest

from wxpay import errors
from wxpay.gateway import NotifyVerdict, OrderIdentity, Outcome, ProvenPayment, refusal_for
from wxpay.v2_gateway import refund_status

from tests.simulator.pay_server import cert_pair, simsrv  # noqa: F401
from .gateway_sim import v2_gateway_for, v3_gateway_for


@pytest.mark.parametrize("exc, message", [
    (errors.MessageTooLargeError("big"), "body too large"),
    (errors.SignatureError("no"), "signature error"),
    (errors.VerificationError("probe", code="signtest_probe"), "signature error"),
    (errors.DecryptError("no"), "does not decrypt"),
    (errors.IdentityMismatchError("theirs"), "appid or mch_id mismatch"),
    (errors.ProtocolError("bad"), "malformed notify"),
    (errors.ReturnFailError("FAIL"), "OK"),
])
def test_each_refusal_tells_wechat_why_in_a_few_words(exc, message):
    assert refusal_for(exc).verdict.message == message


@pytest.fixture
def gateways(simsrv, cert_pair):  # noqa: F811
    return {"v2": v2_gateway_for(simsrv, cert_pair), "v3": v3_gateway_for(simsrv)}


@pytest.mark.parametrize("version", ["v2", "v3"])
async def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_too_large(gateways, version):
    gateway = gateways[version]
    limit = gateway.max_notify_bytes
    for read in (gateway.read_payment_notify, gateway.read_refund_notify):
        at_limit = await read({}, b" " * limit)
        over = await read({}, b" " * (limit + 1))
        assert at_limit.verdict.code != "too_large"
        assert (over.verdict.code, over.verdict.outcome, over.verdict.message) == (
            "too_large", Outcome.TOO_LARGE, "body too large")


async def test_an_unexpected_error_inside_a_reader_is_a_refusal_not_a_crash(gateways):
    """Headers that are not a mapping make the V3 reader fail in a way no rule names: internal_error, retried."""
    gateway = gateways["v3"]
    for read in (gateway.read_payment_notify, gateway.read_refund_notify):
        got = await read(None, b"{}")  # type: ignore[arg-type]
        assert (got.verdict.code, got.verdict.outcome, got.verdict.message, got.proven) == (
            "internal_error", Outcome.FAILED, "internal error", False)
    odd = ProvenPayment("W1", "RSA", evidence=object())
    judged = gateway.judge_payment_notify(odd, OrderIdentity("wx1", "1900000109", "RSA"))
    assert (judged.verdict.code, judged.proven, judged.key) == ("wrong_gateway", True, "W1")


def test_v3_answers_204_with_no_body_or_the_outcome_s_status_with_a_json_reason(gateways):
    gateway = gateways["v3"]
    ok = gateway.notify_reply(NotifyVerdict("paid", Outcome.ACCEPTED, "OK"))
    assert (ok.status, ok.content_type, ok.body) == (204, None, b"")
    refused = gateway.notify_reply(NotifyVerdict("amount_mismatch", Outcome.INVALID, "amount mismatch"))
    assert (refused.status, refused.content_type) == (400, "application/json; charset=utf-8")
    assert refused.body == b'{"code":"FAIL","message":"amount mismatch"}'
    silent = gateway.notify_reply(NotifyVerdict("x", Outcome.UNAVAILABLE, ""))
    assert (silent.status, json.loads(silent.body)) == (503, {"code": "FAIL", "message": "FAIL"})


def test_v2_answers_xml_with_the_outcome_s_status(gateways):
    gateway = gateways["v2"]
    ok = gateway.notify_reply(NotifyVerdict("paid", Outcome.ACCEPTED, "OK"))
    assert (ok.status, ok.content_type) == (200, "text/xml; charset=utf-8")
    assert ok.body == b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    refused = gateway.notify_reply(NotifyVerdict("unknown_order", Outcome.UNKNOWN, "unknown order"))
    assert refused.status == 404 and b"<return_code><![CDATA[FAIL]]></return_code>" in refused.body
    assert b"<return_msg><![CDATA[unknown order]]></return_msg>" in refused.body
    bare = gateway.notify_reply(NotifyVerdict("x", Outcome.FAILED, ""))
    assert bare.status == 500 and b"<return_msg><![CDATA[FAIL]]></return_msg>" in bare.body


def test_v2_refund_words_in_the_contract_s_words():
    assert [refund_status(w) for w in ("SUCCESS", "REFUNDCLOSE", "PROCESSING", "CHANGE", "NEWWORD")] == [
        "SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL", "NEWWORD"]
