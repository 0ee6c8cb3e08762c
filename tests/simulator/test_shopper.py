"""The shopper's side: pay outcomes, front-end payload checks (T6/T8), the H5 cashier's checks."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlencode

import pytest

from wxpay import payloads
from wxpay.simulator.pay_state import Order
from wxpay.simulator.shopper import MWEB_ERRORS, check_payload

from .pay_server import KEY, MP, OA, merchant, running_sim, simsrv  # noqa: F401

T1_KEY = "192006250b4c09247ec02edce69f6a2d"
SCENE = '{"h5_info":{"type":"Wap","wap_url":"https://shop.example","wap_name":"Shop"}}'


def _order(**kw) -> Order:
    base = dict(appid="wx2421b1c4370ec43b", mch_id="1900000109", out_trade_no="t00001", trade_type="JSAPI",
                body="b", total_fee=1, notify_url="http://x/n", spbill_create_ip="127.0.0.1", sign_type="MD5",
                created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), fingerprint={},
                prepay_id="u802345jgfjsdfgsdg888")
    base.update(kw)
    return Order(**base)


def test_bridge_paysign_vector_t6_is_accepted_and_tampering_refused():
    payload = {"appId": "wx2421b1c4370ec43b", "timeStamp": "1395712654", "nonceStr": "e61463f8efa94090b1f366cccfbbb444",
               "package": "prepay_id=u802345jgfjsdfgsdg888", "signType": "MD5", "paySign": "0784A14C2CD35747364F62512E724FD8"}
    assert check_payload(_order(), payload, T1_KEY, "official_account") is None
    assert check_payload(_order(), {**payload, "nonceStr": "x"}, T1_KEY, "official_account") == "支付验证签名失败"
    assert check_payload(_order(sign_type="HMAC-SHA256"), payload, T1_KEY, "official_account") is not None
    hmac_payload = {**payload, "signType": "HMAC-SHA256",
                    "paySign": "09064E137ACF9AEAA1B73E43E70968EC55B3952D4BC0A6FCEBB6F86FB2912319"}  # T7
    assert check_payload(_order(sign_type="HMAC-SHA256"), hmac_payload, T1_KEY, "official_account") is None


def test_app_sign_vector_t8_is_accepted():
    order = _order(appid="wxd930ea5d5a258f4f", trade_type="APP", prepay_id="WX1217752501201407033233368018")
    payload = {"appid": "wxd930ea5d5a258f4f", "partnerid": "1900000109", "prepayid": "WX1217752501201407033233368018",
               "package": "Sign=WXPay", "noncestr": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "timestamp": "1412000000",
               "sign": "839926B9D3F85F49E26B271C4DD2C44E"}
    assert check_payload(order, payload, T1_KEY, "mobile_app") is None
    assert check_payload(order, {**payload, "package": "prepay_id=x"}, T1_KEY, "mobile_app") is not None


async def test_our_payload_builders_pass_the_simulated_cashier(simsrv):
    jsapi = await simsrv.unified("shop00001", trade_type="JSAPI", openid=simsrv.openid(), sign_type="HMAC-SHA256")
    bridge, choose = payloads.jsapi_payloads(OA, jsapi["prepay_id"], KEY, "HMAC-SHA256")
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": jsapi["prepay_id"], "outcome": "fail",
                                                     "payload": choose.to_dict()})
    assert res["ok"] and res["result"] == {"err_msg": "get_brand_wcpay_request:fail"} and res["trade_state"] == "NOTPAY"
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": jsapi["prepay_id"], "outcome": "ok",
                                                     "payload": bridge.to_dict()})
    assert res["ok"] and res["trade_state"] == "SUCCESS"
    mp = await simsrv.unified("shop00002", appid=MP, trade_type="JSAPI", openid=simsrv.openid(appid=MP))
    good = payloads.mini_program_payload(MP, mp["prepay_id"], KEY, "MD5").to_dict()
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": mp["prepay_id"], "payload": {**good, "signType": "HMAC-SHA256"}})
    assert not res["ok"] and res["reason"] == "BAD_PAYLOAD" and res["result"] == {"errMsg": "requestPayment:fail"}
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": mp["prepay_id"], "payload": good})
    assert res["ok"] and res["result"] == {"errMsg": "requestPayment:ok"}


async def test_outcomes_and_refusals(simsrv):
    reply = await simsrv.unified("shop00003", trade_type="JSAPI", openid=simsrv.openid())
    prepay = reply["prepay_id"]
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": prepay, "outcome": "userpaying"})
    assert res["trade_state"] == "USERPAYING"
    assert (await simsrv.call("/pay/orderquery", {"out_trade_no": "shop00003"}))["trade_state"] == "USERPAYING"
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": prepay, "outcome": "maybe"})
    assert code == 400
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": "wx-unknown", "outcome": "ok"})
    assert code == 404
    simsrv.clock.advance(hours=2)
    code, res = await simsrv.post_json("/_sim/pay", {"prepay_id": prepay, "outcome": "ok"})
    assert not res["ok"] and res["error"] == "缺少参数：total_fee" and res["reason"] == "PREPAY_EXPIRED"
    page = await simsrv.raw("/_sim/pay?prepay_id=" + prepay, method="GET")
    assert page.code == 200 and "userpaying" in page.body.decode()


async def test_pay_page_form_post(simsrv):
    reply = await simsrv.unified("shop00004")
    body = urlencode({"prepay_id": reply["prepay_id"], "outcome": "ok"}).encode()
    resp = await simsrv.raw("/_sim/pay", body)
    assert resp.code == 200 and simsrv.sim.pay.order("1900000109", "shop00004").trade_state == "SUCCESS"


async def mweb(srv, out_trade_no: str, ip: str = "127.0.0.1") -> str:
    reply = await srv.unified(out_trade_no, trade_type="MWEB", scene_info=SCENE, spbill_create_ip=ip)
    return reply["mweb_url"]


async def open_mweb(srv, url: str, **headers) -> tuple[str, str]:
    from tornado.httpclient import AsyncHTTPClient

    resp = await AsyncHTTPClient().fetch(url, headers=headers, raise_error=False, follow_redirects=False)
    return resp.headers.get("X-Sim-Error", ""), resp.body.decode("utf-8")


async def test_mweb_checks_show_wechats_texts(simsrv):
    url = await mweb(simsrv, "mweb00001")
    ref = {"Referer": "https://shop.example/cart"}
    err, body = await open_mweb(simsrv, url, **ref, **{"User-Agent": "Mozilla/5.0 MicroMessenger/8.0"})
    assert err == "IN_WECHAT" and MWEB_ERRORS["IN_WECHAT"] in body
    err, body = await open_mweb(simsrv, url)
    assert err == "NO_REFERER" and "商家参数格式有误，请联系商家解决" in body
    err, body = await open_mweb(simsrv, url, Referer="https://evil.example/")
    assert err == "DOMAIN" and "商家存在未配置的参数" in body
    err, _ = await open_mweb(simsrv, url + "&" + urlencode({"redirect_url": "https://evil.example/back"}), **ref)
    assert err == "DOMAIN"
    err, body = await open_mweb(simsrv, url, **ref)
    assert err == "" and "<form" in body
    simsrv.clock.advance(minutes=5)
    err, body = await open_mweb(simsrv, url, **ref)
    assert err == "EXPIRED" and "支付请求已失效，请重新发起支付" in body


async def test_mweb_client_ip_and_forwarded_for(simsrv):
    url = await mweb(simsrv, "mweb00002", ip="203.0.113.7")
    ref = {"Referer": "https://m.shop.example/"}
    err, body = await open_mweb(simsrv, url, **ref, **{"X-Forwarded-For": "203.0.113.7"})
    assert err == "IP" and "网络环境未能通过安全验证，请稍后再试" in body  # not trusted by default
    simsrv.sim.trust_forwarded_for = True
    err, _ = await open_mweb(simsrv, url, **ref, **{"X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
    assert err == ""


async def test_mweb_pays_and_returns_to_redirect_url(simsrv, merchant):
    reply = await simsrv.unified("mweb00003", trade_type="MWEB", scene_info=SCENE, notify_url=merchant.url)
    from urllib.parse import parse_qs, urlsplit

    q = {k: v[0] for k, v in parse_qs(urlsplit(reply["mweb_url"]).query).items()}
    form = urlencode({**q, "outcome": "ok", "redirect_url": "https://shop.example/done?o=1"}).encode()
    resp = await simsrv.raw("/_sim/mweb", form)
    assert resp.code == 302 and resp.headers["Location"] == "https://shop.example/done?o=1"
    order = simsrv.sim.pay.order("1900000109", "mweb00003")
    assert order.trade_state == "SUCCESS" and order.trade_type == "MWEB"
    [delivery] = simsrv.sim.notifier.list("pay", "mweb00003")
    assert (await simsrv.sim.notifier.wait(delivery["id"])).state == "delivered"


@pytest.mark.parametrize("domains", [["pay.example"], {"1900000109": ["pay.example"]}])
async def test_configured_h5_domains_win(domains):
    async with running_sim(extra={"h5_domains": domains}) as srv:
        url = await mweb(srv, "mweb00004")
        assert (await open_mweb(srv, url, Referer="https://shop.example/"))[0] == "DOMAIN"
        assert (await open_mweb(srv, url, Referer="https://pay.example/"))[0] == ""
