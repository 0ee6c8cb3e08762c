"""Both versions' gateways held together: notifies told apart by shape, answered in their own form.

Against the simulated WeChat over loopback HTTP: an order placed under
APIv2 and one under APIv3 for the same merchant, each paid, each notify
read by the gateway of its shape; what each gateway shows an operator and
keeps for the audit trail.
"""
from __future__ import annotations

import json

import pytest

from wxpay.errors import ConfigError
from wxpay.gateway import NotifyVerdict, Outcome, ProvenPayment, RefundNotice, RefundRequest, notify_version
from wxpay.gateways import Gateways
from wxpay.simulator import demo
from tests.simulator.pay_server import KEY, MCH, OA, cert_pair, simsrv  # noqa: F401
from .gateway_sim import APIV3_KEY, delivered, inbox, order, v2_gateway_for, v3_gateway_for  # noqa: F401
from .test_gateways import scan


@pytest.mark.parametrize("body, version", [
    (b"<xml><a>1</a></xml>", "v2"), (b"  \r\n\t{\"id\":1}", "v3"), (b"", "v2"), (b"[]", "v2"), (b"\xef\xbb\xbf{", "v2"),
])
def test_a_notify_s_version_is_its_shape_not_its_headers(body, version):
    assert notify_version({}, body) == version
    assert notify_version({"Wechatpay-Signature": "x", "Wechatpay-Serial": "PUB_KEY_ID_1"}, body) == version


async def test_each_version_s_notify_goes_to_its_own_gateway(simsrv, inbox, cert_pair):  # noqa: F811
    v2, v3 = v2_gateway_for(simsrv, cert_pair), v3_gateway_for(simsrv)
    gateways = Gateways(v3, v2)
    assert gateways.primary is v3 and gateways.versions == ("v3", "v2") and gateways.api_version == "v3"
    for gateway, no in ((v2, "set0001"), (v3, "set0002")):
        placed = await gateway.place_order(order(no, notify_url=inbox.url))
        await scan(simsrv, placed.code_url)
        headers, body = await delivered(simsrv, inbox, "pay", no)
        version, chosen = gateways.for_notify(headers, body)
        assert (version, chosen) == (gateway.api_version, gateway)
        proven = await chosen.read_payment_notify(headers, body)
        assert isinstance(proven, ProvenPayment) and proven.out_trade_no == no
        # The other version's gateway refuses it, unproven: the shape decides, not a guess.
        other = v3 if gateway is v2 else v2
        refused = await other.read_payment_notify(headers, body)
        assert not isinstance(refused, ProvenPayment) and not refused.proven


async def test_an_apiv3_notify_keeps_its_decrypted_resource_for_the_audit_never_a_key(simsrv, inbox):  # noqa: F811
    v3 = v3_gateway_for(simsrv)
    placed = await v3.place_order(order("set0003", notify_url=inbox.url))
    await scan(simsrv, placed.code_url)
    proven = await v3.read_payment_notify(*await delivered(simsrv, inbox, "pay", "set0003"))
    assert isinstance(proven, ProvenPayment)
    kept = json.loads(proven.record)
    assert kept["event_type"] == "TRANSACTION.SUCCESS" and kept["wechatpay_serial"] == demo.PUBLIC_KEY_ID
    assert kept["resource"]["out_trade_no"] == "set0003" and kept["resource"]["amount"]["total"] == 990
    assert APIV3_KEY not in proven.record and "ciphertext" not in proven.record
    await v3.refund(RefundRequest("set-r1", "set0003", OA, 990, 10, inbox.url))
    notice = await v3.read_refund_notify(*await delivered(simsrv, inbox, "refund", "set-r1"))
    assert isinstance(notice, RefundNotice)
    assert json.loads(notice.record)["resource"]["out_refund_no"] == "set-r1"
    assert APIV3_KEY not in notice.record and "ciphertext" not in notice.record


async def test_an_apiv2_notify_keeps_its_raw_body(simsrv, inbox, cert_pair):  # noqa: F811
    v2 = v2_gateway_for(simsrv, cert_pair)
    placed = await v2.place_order(order("set0004", notify_url=inbox.url))
    await scan(simsrv, placed.code_url)
    proven = await v2.read_payment_notify(*await delivered(simsrv, inbox, "pay", "set0004"))
    assert isinstance(proven, ProvenPayment) and proven.record is None


def test_a_version_without_a_gateway_is_still_answered_in_its_own_form(simsrv, cert_pair):  # noqa: F811
    gateways = Gateways(v3_gateway_for(simsrv))
    refused = NotifyVerdict("api_version_not_configured", Outcome.INVALID, "not configured")
    v2 = gateways.reply("v2", refused)
    assert v2.status == 400 and v2.content_type.startswith("text/xml") and b"<return_code><![CDATA[FAIL]]>" in v2.body
    v3 = gateways.reply("v3", NotifyVerdict("paid", Outcome.ACCEPTED, "OK"))
    assert (v3.status, v3.body) == (204, b"")
    assert gateways.get("v2") is None


def test_both_gateways_must_be_of_one_merchant_and_of_two_versions(simsrv, cert_pair):  # noqa: F811
    with pytest.raises(ConfigError):
        Gateways(v3_gateway_for(simsrv), v3_gateway_for(simsrv))
    other = v2_gateway_for(simsrv, cert_pair)
    other.mch_id = "1900000999"
    with pytest.raises(ConfigError):
        Gateways(v3_gateway_for(simsrv), other)


def test_what_each_gateway_shows_an_operator(simsrv, cert_pair):  # noqa: F811
    v2 = v2_gateway_for(simsrv, cert_pair).describe()
    assert v2 == {"api_version": "v2", "mch_id": MCH, "sign_type": "HMAC-SHA256"}
    public = v3_gateway_for(simsrv).describe()
    assert (public["api_version"], public["key_mode"], public["public_key_id"], public["merchant_serial_no"]) == \
        ("v3", "public_key", demo.PUBLIC_KEY_ID, demo.MERCHANT_SERIAL_NO)
    assert "platform_certificates" not in public
    gray = v3_gateway_for(simsrv, "gray", platform_certificate_pems=(demo.v3_pem("platform_cert.pem"),)).describe()
    assert gray["key_mode"] == "gray" and [c["serial_no"] for c in gray["platform_certificates"]] == \
        [demo.PLATFORM_SERIAL_NO]
    assert gray["platform_certificates"][0]["not_after"].year == 2030
    shown = repr((v2, public, gray))
    assert KEY not in shown and APIV3_KEY not in shown and "PRIVATE" not in shown


def test_only_platform_certificate_mode_keeps_trust(simsrv, cert_pair):  # noqa: F811
    assert not v2_gateway_for(simsrv, cert_pair).keeps_trust()
    assert not v3_gateway_for(simsrv).keeps_trust()
    platform = v3_gateway_for(simsrv, "platform_cert")
    assert platform.keeps_trust() and platform.trust_state() is None  # kept from before the first download
    assert v3_gateway_for(simsrv, "gray").keeps_trust()
