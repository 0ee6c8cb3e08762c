"""An independent client against the simulator: wechatpy's WeChatPay (sync, in a thread).

wechatpy is pointed at the simulator by its ``API_BASE_URL`` attribute; its
refund wants certificate files, so a throwaway self-signed pair is made with
openssl (the simulator speaks plain HTTP and emulates the TLS client check).
wechatpy verifies notify signatures and decrypts refund notifies with its own
code, so these tests also cross-check the simulator's signing and crypto.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature_hmac

from wxpay.simulator.clock import FakeClock
from wxpay.timeutil import CHINA_TZ

from .pay_server import APP, KEY, MCH, OA, cert_pair, merchant, running_sim  # noqa: F401


@pytest.fixture
async def wsim():
    # wechatpy stamps time_start/time_expire with the real clock, so start there.
    async with running_sim(FakeClock(datetime.now(timezone.utc))) as srv:
        yield srv


def make_pay(srv, *, appid=OA, api_key=KEY, cert=None) -> WeChatPay:
    pay = WeChatPay(appid, api_key, MCH, mch_cert=cert[0] if cert else None, mch_key=cert[1] if cert else None,
                    timeout=10)
    pay.API_BASE_URL = srv.base + "/"
    return pay


def run(fn, *args, **kw):
    return asyncio.to_thread(fn, *args, **kw)


async def test_order_create_query_pay_notify_close(wsim, merchant):
    pay = make_pay(wsim)
    created = await run(pay.order.create, "NATIVE", "Demo shop-tea", 88, merchant.url, client_ip="127.0.0.1",
                        out_trade_no="wcpy00001", product_id="tea")
    assert created["result_code"] == "SUCCESS" and created["code_url"].startswith("weixin://wxpay/")
    assert pay.check_signature(dict(created))  # wechatpy's own MD5 check of our reply
    assert (await run(pay.order.query, out_trade_no="wcpy00001"))["trade_state"] == "NOTPAY"

    code, scan = await wsim.post_json("/_sim/scan", {"code_url": created["code_url"], "outcome": "ok"})
    await wsim.sim.notifier.wait(scan["notify_delivery"])
    notify = pay.parse_payment_result(merchant.received[0])  # raises on a bad signature
    assert notify["total_fee"] == 88 and notify["out_trade_no"] == "wcpy00001"
    queried = await run(pay.order.query, transaction_id=notify["transaction_id"])
    assert queried["trade_state"] == "SUCCESS"

    await run(pay.order.create, "NATIVE", "Demo shop-tea", 88, merchant.url, client_ip="127.0.0.1",
              out_trade_no="wcpy00002", product_id="tea")
    with pytest.raises(WeChatPayException) as too_early:
        await run(pay.order.close, "wcpy00002")
    assert too_early.value.errcode == "TRADE_STATE_ERROR"
    wsim.clock.advance(minutes=6)
    assert (await run(pay.order.close, "wcpy00002"))["result_code"] == "SUCCESS"
    with pytest.raises(WeChatPayException) as closed:
        await run(pay.order.close, "wcpy00002")
    assert closed.value.errcode == "ORDERCLOSED"


async def test_hmac_order_via_wechatpy(wsim):
    pay = make_pay(wsim)
    created = await run(pay.order.create, "JSAPI", "Demo shop-tea", 5, "http://127.0.0.1:9/n",
                        client_ip="127.0.0.1", user_id=wsim.openid("carol"), out_trade_no="wcpyhmac1",
                        sign_type="HMAC-SHA256")
    got = dict(created)
    sign = got.pop("sign")
    assert sign == calculate_signature_hmac(got, KEY)


async def test_failure_shapes_reach_wechatpy(wsim):
    bad = make_pay(wsim, api_key="WrongKey" * 4)
    with pytest.raises(WeChatPayException) as sign_err:
        await run(bad.order.query, out_trade_no="wcpy00009")
    assert sign_err.value.return_code == "FAIL" and sign_err.value.return_msg == "签名错误"
    assert sign_err.value.result_code is None

    pay = make_pay(wsim)
    with pytest.raises(WeChatPayException) as missing:
        await run(pay.order.query, out_trade_no="wcpy00009")
    assert (missing.value.return_code, missing.value.result_code, missing.value.errcode) == ("SUCCESS", "FAIL", "ORDERNOTEXIST")
    with pytest.raises(WeChatPayException) as openid:
        await run(pay.order.create, "JSAPI", "x-y", 1, "http://127.0.0.1:9/n", client_ip="127.0.0.1",
                  user_id="o-not-a-user-of-this-app", out_trade_no="wcpy00010")
    assert openid.value.errcode == "PARAM_ERROR"
    with pytest.raises(WeChatPayException) as no_refund:
        await run(pay.refund.query, out_trade_no="wcpy00009")
    assert no_refund.value.errcode == "REFUNDNOTEXIST"


async def test_refund_with_certificate_and_encrypted_notify(wsim, merchant, cert_pair):
    pay = make_pay(wsim, cert=cert_pair)
    created = await run(pay.order.create, "NATIVE", "Demo shop-cake", 500, merchant.url, client_ip="127.0.0.1",
                        out_trade_no="wcpyrf001", product_id="cake")
    code, scan = await wsim.post_json("/_sim/scan", {"code_url": created["code_url"], "outcome": "ok"})
    await wsim.sim.notifier.wait(scan["notify_delivery"])

    refund = await run(pay.refund.apply, 500, 200, "wcpyr0001", out_trade_no="wcpyrf001", notify_url=merchant.url)
    assert refund["result_code"] == "SUCCESS" and refund["refund_fee"] == "200"
    with pytest.raises(WeChatPayException) as over:
        await run(pay.refund.apply, 500, 301, "wcpyr0002", out_trade_no="wcpyrf001")
    assert over.value.errcode == "NOTENOUGH"
    query = await run(pay.refund.query, out_refund_no="wcpyr0001")
    assert query["refund_status_0"] == "SUCCESS" and query["refund_id_0"] == refund["refund_id"]

    deliveries = wsim.sim.notifier.list("refund", "wcpyr0001")
    await wsim.sim.notifier.wait(deliveries[0]["id"])
    decrypted = pay.parse_refund_notify_result(merchant.received[-1])  # wechatpy's own AES
    assert decrypted["refund_id"] == refund["refund_id"] and decrypted["refund_fee"] == 200
    assert decrypted["refund_status"] == "SUCCESS" and decrypted["out_trade_no"] == "wcpyrf001"
    assert wsim.sim.pay.refunds[(MCH, "wcpyr0001")].client_cert.startswith("emulated")


async def test_download_bill_and_app_params(wsim):
    pay = make_pay(wsim, appid=APP)
    created = await run(pay.order.create, "APP", "Demo app-gem", 600, "http://127.0.0.1:9/n",
                        client_ip="127.0.0.1", out_trade_no="wcpyapp01")
    params = pay.order.get_appapi_params(created["prepay_id"])
    code, paid = await wsim.post_json("/_sim/pay", {"prepay_id": created["prepay_id"], "outcome": "ok", "payload": params})
    assert paid["ok"] and paid["result"] == {"errCode": 0}
    tampered = {**params, "sign": "0" * 32}
    created2 = await run(pay.order.create, "APP", "Demo app-gem", 600, "http://127.0.0.1:9/n",
                         client_ip="127.0.0.1", out_trade_no="wcpyapp02")
    code, refused = await wsim.post_json("/_sim/pay", {"prepay_id": created2["prepay_id"], "outcome": "ok",
                                                       "payload": {**tampered, "prepayid": created2["prepay_id"]}})
    assert not refused["ok"] and refused["error"] == "支付验证签名失败" and refused["result"] == {"errCode": -1}

    bill_date = wsim.sim.pay.orders[(MCH, "wcpyapp01")].paid_at.astimezone(CHINA_TZ).strftime("%Y%m%d")
    with pytest.raises(WeChatPayException) as creating:
        await run(pay.tools.download_bill, bill_date)
    assert creating.value.return_msg in ("Bill Creating", "No Bill Exist")
    wsim.clock.advance(days=1, hours=10)
    text = await run(pay.tools.download_bill, bill_date)
    assert isinstance(text, str) and "wcpyapp01" in text and text.splitlines()[-2].startswith("总交易单数")
