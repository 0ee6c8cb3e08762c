"""The pay rules without HTTP: PayState straight, plus the refund crypto vector T5."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from wxpay import signing
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.config import SimConfig
from wxpay.simulator.crypto import build_root_xml, decrypt_req_info, encrypt_req_info
from wxpay.simulator.pay_state import PayFail, PayState, ReturnFail, ShopperError
from wxpay.timeutil import wire_time
from wxpay.xmlcodec import parse_xml

from .pay_server import APP, KEY, MCH, MP, OA, START

VECTOR = Path(__file__).resolve().parents[1] / "wxpay" / "vectors" / "refund-notify-T5.json"


@pytest.fixture
def state():
    clock = FakeClock(START)
    return PayState(SimConfig.demo(), clock, openid_belongs=lambda appid, openid: openid == f"o-{appid}")


def req(**kw):
    params = {"appid": OA, "mch_id": MCH, "nonce_str": "n" * 16, "body": "Shop-item", "out_trade_no": "rule0001",
              "total_fee": "100", "spbill_create_ip": "127.0.0.1", "notify_url": "https://m.example/notify",
              "trade_type": "NATIVE", "product_id": "p"}
    params.update({k: v for k, v in kw.items()})
    return {k: v for k, v in params.items() if v is not None}


def order(state, **kw):
    merchant = state.config.merchant(MCH)
    return state.unified_order(req(**kw), merchant, kw.get("sign_type") or "MD5")


def fails(state, code, **kw):
    with pytest.raises(PayFail) as err:
        order(state, **kw)
    assert err.value.err_code == code, err.value
    return err.value.err_code_des


def test_refund_crypto_reproduces_vector_t5():
    if not VECTOR.exists():
        pytest.fail(f"vector file missing: {VECTOR}")
    v = json.loads(VECTOR.read_text(encoding="utf-8"))
    plain = decrypt_req_info(v["req_info"], v["api_key"])
    assert hashlib.md5(v["api_key"].encode()).hexdigest() == v["aes_key"]
    assert hashlib.sha256(plain).hexdigest() == "b707671ec7a175abcd80ff33e6bab415457d12ea7e7d8621e1642a67fd848791"
    assert encrypt_req_info(plain, v["api_key"]) == v["req_info"]  # byte for byte
    assert parse_xml(plain, root="root") == v["expected"]


def test_root_xml_round_trips_through_encryption():
    plain = build_root_xml({"a": "x]]>y", "n": 5, "skip": None})
    assert parse_xml(decrypt_req_info(encrypt_req_info(plain, KEY), KEY), root="root") == {"a": "x]]>y", "n": "5"}
    with pytest.raises(ValueError):
        decrypt_req_info(encrypt_req_info(plain, KEY), "another-key")


def test_signature_and_sign_type(state):
    params = req()
    params["sign"] = signing.sign(params, KEY)
    assert state.authenticate(params) == (state.config.merchant(MCH), "MD5")
    with pytest.raises(ReturnFail, match="签名错误"):
        state.authenticate({**params, "total_fee": "1"})
    hmac = {**req(), "sign_type": "HMAC-SHA256"}
    hmac["sign"] = signing.sign(hmac, KEY, "HMAC-SHA256")
    assert state.authenticate(hmac)[1] == "HMAC-SHA256"
    with pytest.raises(ReturnFail):  # sign_type is signed: dropping it breaks the signature
        state.authenticate({k: v for k, v in hmac.items() if k != "sign_type"})
    with pytest.raises(ReturnFail):
        state.authenticate({**hmac, "sign_type": "SHA1"})
    with pytest.raises(ReturnFail):
        state.authenticate({**params, "mch_id": "999"})


@pytest.mark.parametrize("out_trade_no", ["short", "x" * 33, "has space1", "中文订单号123", "semi;colon1"])
def test_out_trade_no_rules(state, out_trade_no):
    fails(state, "INVALID_REQUEST", out_trade_no=out_trade_no)


def test_out_trade_no_allowed_charset(state):
    assert order(state, out_trade_no="Ab_-|*@9")["prepay_id"]


@pytest.mark.parametrize("fee", ["0", "-1", "1.00", "01", "abc", "99999999999"])
def test_total_fee_must_be_positive_integer_fen(state, fee):
    fails(state, "INVALID_REQUEST", total_fee=fee)


@pytest.mark.parametrize("url", ["https://m.example/notify?x=1", "/notify", "ftp://m.example/n",
                                 "https://m.example/n#frag", "https://m.example/" + "n" * 250])
def test_notify_url_absolute_without_query(state, url):
    fails(state, "INVALID_REQUEST", notify_url=url)


def test_required_fields_and_lengths(state):
    assert fails(state, "LACK_PARAMS", body=None) == "缺少参数body"
    fails(state, "LACK_PARAMS", trade_type="JSAPI")  # openid
    fails(state, "LACK_PARAMS", product_id=None)  # NATIVE
    fails(state, "LACK_PARAMS", trade_type="MWEB")  # scene_info
    fails(state, "INVALID_REQUEST", trade_type="MWEB", scene_info='{"store_info":{}}')
    fails(state, "INVALID_REQUEST", body="好" * 43)  # 129 UTF-8 bytes > 127
    fails(state, "INVALID_REQUEST", nonce_str="n" * 33)
    fails(state, "INVALID_REQUEST", spbill_create_ip="not-an-ip")
    fails(state, "INVALID_REQUEST", trade_type="MICROPAY")
    fails(state, "INVALID_REQUEST", fee_type="USD")
    fails(state, "INVALID_REQUEST", time_expire="2026-01-05")
    fails(state, "INVALID_REQUEST", time_expire=wire_time(START + timedelta(seconds=30)))
    assert order(state, time_expire=wire_time(START + timedelta(minutes=2)))["prepay_id"]


def test_app_and_identity_checks(state):
    fails(state, "APPID_NOT_EXIST", appid="wx0000000000000000")
    fails(state, "INVALID_REQUEST", appid=APP, trade_type="NATIVE")
    fails(state, "INVALID_REQUEST", trade_type="APP")
    assert fails(state, "PARAM_ERROR", trade_type="JSAPI", openid=f"o-{MP}") == "appid和openid不匹配"
    assert order(state, trade_type="JSAPI", openid=f"o-{OA}")["trade_type"] == "JSAPI"


def test_time_expire_closes_the_order(state):
    order(state, time_expire=wire_time(START + timedelta(minutes=10)))
    o = state.order(MCH, "rule0001")
    state.clock.advance(minutes=10)
    assert state.order(MCH, "rule0001").trade_state == "CLOSED"
    with pytest.raises(ShopperError) as err:
        state.pay(o, "ok")
    assert err.value.reason == "ORDERCLOSED"


def test_mweb_url_lives_five_minutes_prepay_two_hours(state):
    order(state, trade_type="MWEB", scene_info='{"h5_info":{"type":"Wap"}}')
    o = state.order(MCH, "rule0001")
    first_package = o.mweb_package
    state.clock.advance(minutes=5)
    assert not o.mweb_valid(state.clock.now()) and o.prepay_valid(state.clock.now())
    again = order(state, trade_type="MWEB", scene_info='{"h5_info":{"type":"Wap"}}')
    assert again["prepay_id"] == o.prepay_id and o.mweb_package != first_package


def paid(state, out_trade_no="rule0001", fee="1000"):
    order(state, out_trade_no=out_trade_no, total_fee=fee)
    o = state.order(MCH, out_trade_no)
    assert state.pay(o, "ok")
    return o


def refund(state, no, fee, total="1000", out_trade_no="rule0001", **kw):
    params = {"appid": OA, "mch_id": MCH, "nonce_str": "n", "out_trade_no": out_trade_no, "out_refund_no": no,
              "total_fee": total, "refund_fee": str(fee), **kw}
    return state.refund(params, state.config.merchant(MCH), client_cert="test")


def test_fifty_partial_refunds_at_most(state):
    paid(state)
    for n in range(50):
        refund(state, f"r{n}", 1)
    with pytest.raises(PayFail) as err:
        refund(state, "r50", 1)
    assert err.value.err_code == "ERROR"
    query = state.refund_query({"appid": OA, "nonce_str": "n", "out_trade_no": "rule0001", "offset": "45"},
                               state.config.merchant(MCH))
    assert query["total_refund_count"] == 50 and query["refund_count"] == 5 and query["out_refund_no_0"] == "r45"
    with pytest.raises(PayFail) as err:
        state.refund_query({"appid": OA, "nonce_str": "n", "out_trade_no": "rule0001", "offset": "51"},
                           state.config.merchant(MCH))
    assert err.value.err_code == "PARAM_ERROR"


def test_refund_rules(state):
    with pytest.raises(PayFail) as err:
        refund(state, "r1", 1)
    assert err.value.err_code == "ORDERNOTEXIST"
    order(state)
    with pytest.raises(PayFail) as err:  # unpaid orders cannot be refunded
        refund(state, "r1", 1, total="100")
    assert err.value.err_code == "ORDERNOTEXIST"
    paid(state, "rule0002")
    r, new = refund(state, "r1", 400, out_trade_no="rule0002")
    assert new and r.refund_status == "SUCCESS" and r.refund_id.isdigit()
    again, new = refund(state, "r1", 400, out_trade_no="rule0002")
    assert again is r and not new
    with pytest.raises(PayFail) as err:  # same out_refund_no, other amount
        refund(state, "r1", 401, out_trade_no="rule0002")
    assert err.value.err_code == "INVALID_REQUEST"
    with pytest.raises(PayFail) as err:  # total_fee must be the order's
        refund(state, "r2", 1, total="999", out_trade_no="rule0002")
    assert err.value.err_code == "INVALID_REQUEST"
    with pytest.raises(PayFail) as err:
        refund(state, "r 2", 1, out_trade_no="rule0002")
    assert err.value.err_code == "PARAM_ERROR"
    state.clock.advance(days=366)
    with pytest.raises(PayFail) as err:
        refund(state, "r3", 1, out_trade_no="rule0002")
    assert err.value.err_code == "TRADE_OVERDUE"


def test_refundclose_makes_the_money_refundable_again(state):
    state.auto_settle_refunds = False
    paid(state)
    r, _ = refund(state, "r1", 1000)
    state.settle_refund(r, "REFUNDCLOSE")
    r2, _ = refund(state, "r2", 1000)
    assert r2.refund_status == "PROCESSING"


def test_state_round_trips_through_json(state):
    o = paid(state)
    refund(state, "r1", 10)
    data = json.loads(json.dumps(state.to_json()))
    again = PayState.from_json(data, state.config, state.clock)
    same = again.order(MCH, "rule0001")
    assert same == o and again.order_by_prepay(o.prepay_id) is same
    assert again.refund_by_no(MCH, "r1").refund_fee == 10
    assert again.order_query({"appid": OA, "nonce_str": "n", "transaction_id": o.transaction_id},
                             state.config.merchant(MCH))["trade_state"] == "REFUND"
