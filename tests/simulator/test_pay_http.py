"""Pay V2 over real HTTP: raw XML, both failure shapes, and the happy paths end to end."""
from __future__ import annotations

import gzip

from wxpay import signing
from wxpay.xmlcodec import build_xml, parse_xml

from .pay_server import APP, KEY, MCH, MP, OA, merchant, signed_body, simsrv  # noqa: F401


async def test_bad_signature_is_an_unsigned_layer1_fail(simsrv):
    resp = await simsrv.raw("/pay/unifiedorder", signed_body({"out_trade_no": "order0001"}, key="X" * 32))
    reply = parse_xml(resp.body)
    assert reply == {"return_code": "FAIL", "return_msg": "签名错误"}


async def test_declared_sign_type_is_the_one_checked(simsrv):
    # An HMAC signature under a body that declares MD5 (by omission) fails.
    params = {"appid": OA, "mch_id": MCH, "nonce_str": "n1", "out_trade_no": "order0001"}
    params["sign"] = signing.sign(params, KEY, signing.HMAC_SHA256)
    reply = parse_xml((await simsrv.raw("/pay/orderquery", build_xml(params))).body)
    assert reply["return_code"] == "FAIL"
    ok = await simsrv.call("/pay/orderquery", {"out_trade_no": "order0001"}, sign_type=signing.HMAC_SHA256)
    assert ok["return_code"] == "SUCCESS" and ok["err_code"] == "ORDERNOTEXIST"


async def test_transport_failure_shapes(simsrv):
    assert parse_xml((await simsrv.raw("/pay/orderquery", b"not xml")).body)["return_msg"] == "XML格式错误"
    assert parse_xml((await simsrv.raw("/pay/orderquery", b" ")).body)["return_code"] == "FAIL"
    get = await simsrv.raw("/pay/orderquery", method="GET")
    assert parse_xml(get.body) == {"return_code": "FAIL", "return_msg": "请使用post方法"}
    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>'
    assert parse_xml((await simsrv.raw("/pay/orderquery", hostile)).body)["return_code"] == "FAIL"
    unknown = await simsrv.raw("/pay/orderquery", signed_body({"mch_id": "1234567890"}))
    assert parse_xml(unknown.body)["return_code"] == "FAIL"


async def test_native_order_query_pay_and_notify(simsrv, merchant):
    reply = await simsrv.unified("native0001", notify_url=merchant.url, attach="a1")
    assert reply["result_code"] == "SUCCESS" and reply["trade_type"] == "NATIVE"
    assert reply["prepay_id"].startswith("wx") and len(reply["prepay_id"]) == 36
    assert reply["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    query = await simsrv.call("/pay/orderquery", {"out_trade_no": "native0001"})
    assert query["trade_state"] == "NOTPAY" and "transaction_id" not in query
    code, scan = await simsrv.post_json("/_sim/scan", {"code_url": reply["code_url"], "outcome": "ok", "user": "bob"})
    assert code == 200 and scan["ok"] and scan["trade_state"] == "SUCCESS"
    delivery = await simsrv.sim.notifier.wait(scan["notify_delivery"])
    assert delivery.state == "delivered" and len(delivery.attempts) == 1
    notify = parse_xml(merchant.received[0])
    signing.verify(notify, KEY, signing.MD5)
    assert "sign_type" not in notify
    assert notify["openid"] == simsrv.openid("bob") and notify["attach"] == "a1"
    assert notify["transaction_id"].startswith("42") and len(notify["transaction_id"]) == 28
    paid = await simsrv.call("/pay/orderquery", {"transaction_id": notify["transaction_id"]})
    assert paid["trade_state"] == "SUCCESS" and paid["time_end"] == notify["time_end"] and paid["cash_fee"] == "100"
    again = await simsrv.unified("native0001", notify_url=merchant.url, attach="a1")
    assert again["err_code"] == "ORDERPAID"


async def test_hmac_order_replies_and_notifies_with_hmac(simsrv, merchant):
    openid = simsrv.openid("alice")
    reply = await simsrv.unified("hmac00001", trade_type="JSAPI", openid=openid, notify_url=merchant.url,
                                 sign_type=signing.HMAC_SHA256)
    assert len(reply["sign"]) == 64
    code, paid = await simsrv.post_json("/_sim/pay", {"prepay_id": reply["prepay_id"], "outcome": "ok"})
    assert paid["result"] == {"err_msg": "get_brand_wcpay_request:ok"}
    await simsrv.sim.notifier.wait(paid["notify_delivery"])
    notify = parse_xml(merchant.received[0])
    assert signing.verify(notify, KEY, signing.HMAC_SHA256) == signing.HMAC_SHA256


async def test_reentry_same_params_same_prepay_different_params_refused(simsrv):
    first = await simsrv.unified("reenter01")
    second = await simsrv.unified("reenter01")
    assert second["prepay_id"] == first["prepay_id"] and second["code_url"] == first["code_url"]
    changed = await simsrv.unified("reenter01", total_fee=101)
    assert changed["result_code"] == "FAIL" and changed["err_code"] == "OUT_TRADE_NO_USED"
    simsrv.clock.advance(hours=2, seconds=1)  # prepay_id and code_url expire after 2 h
    third = await simsrv.unified("reenter01")
    assert third["prepay_id"] != first["prepay_id"] and third["code_url"] != first["code_url"]
    code, old = await simsrv.post_json("/_sim/scan", {"code_url": first["code_url"], "outcome": "ok"})
    assert not old["ok"]


async def test_mini_program_and_app_orders(simsrv):
    mp = await simsrv.unified("mini00001", appid=MP, trade_type="JSAPI", openid=simsrv.openid("alice", MP))
    assert mp["result_code"] == "SUCCESS"
    wrong = await simsrv.unified("mini00002", appid=MP, trade_type="JSAPI", openid=simsrv.openid("alice", OA))
    assert wrong["err_code"] == "PARAM_ERROR" and wrong["err_code_des"] == "appid和openid不匹配"
    app = await simsrv.unified("app000001", appid=APP, trade_type="APP")
    assert app["result_code"] == "SUCCESS" and "code_url" not in app
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": app["prepay_id"], "outcome": "cancel"})
    assert res["result"] == {"errCode": -2} and res["trade_state"] == "NOTPAY"
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": mp["prepay_id"], "outcome": "ok"})
    assert res["result"] == {"errMsg": "requestPayment:ok"}


async def test_mweb_url_points_at_this_simulator_under_its_prefix(simsrv):
    reply = await simsrv.unified("mweb00001", trade_type="MWEB",
                                 scene_info='{"h5_info":{"type":"Wap","wap_url":"https://shop.example","wap_name":"s"}}')
    assert reply["mweb_url"].startswith(simsrv.base + "/_sim/mweb?prepay_id=" + reply["prepay_id"] + "&package=")


async def test_close_refund_refundquery_bill(simsrv, merchant):
    await simsrv.unified("close0001")
    early = await simsrv.call("/pay/closeorder", {"out_trade_no": "close0001"})
    assert early["err_code"] == "TRADE_STATE_ERROR"
    simsrv.clock.advance(minutes=5)
    closed = await simsrv.call("/pay/closeorder", {"out_trade_no": "close0001"})
    assert closed["result_code"] == "SUCCESS"
    assert (await simsrv.call("/pay/closeorder", {"out_trade_no": "close0001"}))["err_code"] == "ORDERCLOSED"
    assert (await simsrv.unified("close0001"))["err_code"] == "ORDERCLOSED"
    assert (await simsrv.call("/pay/closeorder", {"out_trade_no": "nosuch001"}))["err_code"] == "ORDERNOTEXIST"

    order = await simsrv.unified("refund001", total_fee=300)
    await simsrv.post_json("/_sim/scan", {"code_url": order["code_url"], "outcome": "ok"})
    refund = {"out_trade_no": "refund001", "out_refund_no": "r1", "total_fee": 300, "refund_fee": 100,
              "notify_url": merchant.url}
    first = await simsrv.call("/secapi/pay/refund", refund)
    assert first["result_code"] == "SUCCESS" and first["refund_fee"] == "100"
    repeat = await simsrv.call("/secapi/pay/refund", refund)
    assert repeat["refund_id"] == first["refund_id"]  # same out_refund_no refunds once
    over = await simsrv.call("/secapi/pay/refund", {**refund, "out_refund_no": "r2", "refund_fee": 201})
    assert over["err_code"] == "NOTENOUGH"
    assert (await simsrv.call("/secapi/pay/refund", {**refund, "out_refund_no": "r2", "refund_fee": 200}))["result_code"] == "SUCCESS"
    query = await simsrv.call("/pay/refundquery", {"out_trade_no": "refund001"})
    assert query["refund_count"] == "2" and query["refund_status_0"] == "SUCCESS" and query["out_refund_no_1"] == "r2"
    assert (await simsrv.call("/pay/refundquery", {"out_refund_no": "nope"}))["err_code"] == "REFUNDNOTEXIST"
    assert simsrv.sim.pay.refunds[(MCH, "r1")].client_cert.startswith("emulated")
    assert (await simsrv.call("/pay/orderquery", {"out_trade_no": "refund001"}))["trade_state"] == "REFUND"

    simsrv.clock.advance(days=1)  # the bill for day T is ready at 09:00 on T+1
    resp = await simsrv.raw("/pay/downloadbill", signed_body({"bill_date": "20260105", "bill_type": "ALL"}))
    lines = resp.body.decode("utf-8").strip().split("\r\n")
    assert lines[0].startswith("交易时间,公众账号ID,商户号")
    assert len(lines) == 1 + 3 + 2  # header, one payment + two refunds, summary header + row
    assert lines[-2].startswith("总交易单数") and lines[-1].startswith("`3,`3.00,`3.00")
    assert all(v.startswith("`") for v in lines[1].split(","))
    gz = await simsrv.raw("/pay/downloadbill", signed_body({"bill_date": "20260105", "tar_type": "GZIP"}))
    assert gzip.decompress(gz.body) == resp.body
    none = await simsrv.raw("/pay/downloadbill", signed_body({"bill_date": "20260101"}))
    assert parse_xml(none.body) == {"return_code": "FAIL", "return_msg": "No Bill Exist"}
    bad = await simsrv.raw("/pay/downloadbill", signed_body({"bill_date": "20260105"}, key="Y" * 32))
    assert parse_xml(bad.body)["return_msg"] == "SIGN ERROR"
