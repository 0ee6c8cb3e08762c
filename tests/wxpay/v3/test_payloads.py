"""Front-end payloads against F1-F3."""
from __future__ import annotations

import pytest

from wxpay.errors import InvalidArgumentError
from wxpay.v3 import MerchantSigner
from wxpay.v3.keys import load_public_key
from wxpay.v3.payloads import app_payload, jsapi_payloads, mini_program_payload
from wxpay.v3.signing import decode_signature, lines_message, rsa_verify

from .vectors import KEYS, MCHID, MERCHANT_SERIAL, by_id, load, merchant_key

F = by_id(load("frontend-sign.json")["vectors"])


def signer(clock=lambda: 1767240000.5) -> MerchantSigner:
    return MerchantSigner(MCHID, MERCHANT_SERIAL, merchant_key(), clock=clock)


def _prepay(package: str) -> str:
    return package.removeprefix("prepay_id=")


def test_f1_jsapi_bridge_and_choose_wx_pay():
    p = F["F1_jsapi_bridge"]["payload"]
    bridge, choose = jsapi_payloads(signer(), p["appId"], _prepay(p["package"]), timestamp=p["timeStamp"], nonce=p["nonceStr"])
    assert bridge.to_dict() == p
    assert choose.to_dict() == {"timestamp": p["timeStamp"], "nonceStr": p["nonceStr"], "package": p["package"],
                                "signType": "RSA", "paySign": p["paySign"]}


def test_f2_mini_program():
    v = F["F2_miniprogram_requestPayment"]
    p = v["payload"]
    appid = v["string_to_sign"].split("\n")[0]
    got = mini_program_payload(signer(), appid, _prepay(p["package"]), timestamp=p["timeStamp"], nonce=p["nonceStr"])
    assert got.to_dict() == p


def test_f3_app():
    p = F["F3_app"]["payload"]
    got = app_payload(signer(), p["appid"], p["prepayid"], timestamp=p["timestamp"], nonce=p["noncestr"])
    assert got.to_dict() == p


@pytest.mark.parametrize("vid", sorted(F))
def test_strings_to_sign(vid):
    v = F[vid]
    fields = v["string_to_sign"].split("\n")[:-1]
    assert lines_message(*fields) == v["string_to_sign"].encode()
    sig = v["payload"].get("paySign") or v["payload"]["sign"]
    assert rsa_verify(load_public_key(KEYS["merchant"]["public_key_pem"]), lines_message(*fields), decode_signature(sig))


def test_defaults_use_the_signers_clock_and_a_fresh_nonce():
    bridge, choose = jsapi_payloads(signer(), "wx0000000000test1", "wx0112")
    assert bridge.time_stamp == "1767240000" == choose.timestamp
    assert bridge.nonce_str == choose.nonce_str and len(bridge.nonce_str) == 32
    assert jsapi_payloads(signer(), "wx0000000000test1", "wx0112")[0].nonce_str != bridge.nonce_str


@pytest.mark.parametrize(
    "call",
    [
        lambda s: jsapi_payloads(s, "", "wx01"),
        lambda s: jsapi_payloads(s, "wx1", ""),
        lambda s: jsapi_payloads(s, "wx1", "prepay_id=wx01"),
        lambda s: jsapi_payloads(s, "wx1", "wx01", timestamp=1767240000000),
        lambda s: jsapi_payloads(s, "wx1", "wx01", nonce="x" * 33),
        lambda s: jsapi_payloads(s, "wx1\n", "wx01"),
        lambda s: mini_program_payload(s, "wx1", "wx01", timestamp="17672400"),
        lambda s: app_payload(s, "wx1", "prepay_id=wx01"),
        lambda s: app_payload(s, "wx1", ""),
    ],
    ids=["no-appid", "no-prepay", "prefixed", "milliseconds", "long-nonce", "newline", "short-ts", "app-prefixed", "app-empty"],
)
def test_bad_arguments(call):
    with pytest.raises(InvalidArgumentError):
        call(signer())
