"""NATIVE on a desktop, MWEB in a mobile browser, and the Mini Program / App
payload endpoint, each paid through the simulator over real HTTP, under
both API versions (APIv3's payloads are RSA-signed, checked by the
simulator as the WeChat app and the App SDK check them)."""
from __future__ import annotations

import base64

from wxpay import signing
from wxpay.simulator import demo
from wxpay.v3.signing import lines_message, rsa_verify

from .browser import DESKTOP_UA, MOBILE_UA, Browser, as_json
from .conftest import BOTH_VERSIONS, start_server
from .journey import create_checkout, query_of, wait_status
from .test_journey import MERCHANT_PUBLIC_KEY


@BOTH_VERSIONS
async def test_desktop_gets_a_qr_code_and_scanning_pays(running, base_url, merchant):
    checkout = await create_checkout(merchant, 990)
    desktop = Browser(base_url, DESKTOP_UA)
    page = await desktop.get(checkout["pay_url"])
    assert page.code == 200 and b"Green tea" in page.body and "_xsrf" in desktop.cookies
    r = await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    result = as_json(r)
    assert result["trade_type"] == "NATIVE" and result["code_url"].startswith("weixin://wxpay/")
    assert result["qr_svg"].startswith("data:image/svg+xml;base64,")
    scanned = await desktop.post("/_wechat/_sim/scan", json_body={"code_url": result["code_url"], "outcome": "ok"})
    assert scanned.code == 200, scanned.body
    await wait_status(desktop, checkout["id"], "paid")


@BOTH_VERSIONS
async def test_mobile_browser_goes_to_mweb_and_returns_to_a_result_page(running, base_url, merchant):
    checkout = await create_checkout(merchant, 321)
    phone = Browser(base_url, MOBILE_UA)
    await phone.get(checkout["pay_url"])
    result = as_json(await phone.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
    assert result["trade_type"] == "MWEB"
    mweb = result["mweb_url"]
    assert query_of(mweb)["redirect_url"] == f"{base_url}/pay/{checkout['id']}/result"
    # The cashier refuses a visit without the merchant page as Referer (§13.6) ...
    refused = await phone.get(mweb)
    assert "商家参数格式有误".encode() in refused.body
    # ... and pays with it, then returns to our result page, which must ask the server.
    cashier = await phone.get(mweb, headers={"Referer": checkout["pay_url"]})
    assert cashier.code == 200, cashier.body
    form = {**query_of(mweb), "outcome": "ok"}
    back = await phone.post(
        "/_wechat/_sim/mweb", body="&".join(f"{k}={v}" for k, v in form.items()).replace(":", "%3A").replace("/", "%2F"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": checkout["pay_url"]},
    )
    assert back.code == 302 and back.headers["Location"] == f"{base_url}/pay/{checkout['id']}/result"
    landing = await phone.get(back.headers["Location"])
    assert landing.code == 200
    await wait_status(phone, checkout["id"], "paid")


async def test_client_ip_comes_from_trusted_proxies_only(tmp_path):
    for trusted, expect in ((("127.0.0.1/32",), "203.0.113.9"), ((), "127.0.0.1")):
        instance = await start_server(tmp_path / f"t{len(trusted)}", **{"server.trusted_proxies": list(trusted)})
        try:
            base = f"http://127.0.0.1:{instance.port}"
            merchant = Browser(base)
            merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}
            checkout = await create_checkout(merchant)
            phone = Browser(base, MOBILE_UA)
            await phone.get(checkout["pay_url"])
            spoof = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
            result = as_json(await phone.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True, headers=spoof))
            order = await instance.services.orders.require(result["out_trade_no"])
            assert order.client_ip == expect
        finally:
            await instance.stop(grace=1)


@BOTH_VERSIONS
async def test_mini_program_and_app_payloads(running, base_url, merchant, api_version):
    checkout = await create_checkout(merchant, 4200)
    path = f"/api/checkouts/{checkout['id']}/payment"
    openid = running.simulator.default_openid(demo.MINI_PROGRAM_APPID)
    r = await merchant.post(path, json_body={"client": "mini_program", "openid": openid, "client_ip": "203.0.113.7"},
                            headers=merchant.token_headers)
    assert r.code == 200, r.body
    mp = as_json(r)["request_payment"]
    assert set(mp) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    if api_version == "v3":
        assert mp["signType"] == "RSA"
        lines = lines_message(demo.MINI_PROGRAM_APPID, mp["timeStamp"], mp["nonceStr"], mp["package"])
        assert rsa_verify(MERCHANT_PUBLIC_KEY, lines, base64.b64decode(mp["paySign"]))
    else:
        signed = {"appId": demo.MINI_PROGRAM_APPID, **{k: mp[k] for k in ("timeStamp", "nonceStr", "package", "signType")}}
        assert mp["paySign"] == signing.sign(signed, demo.API_KEY, mp["signType"])

    r = await merchant.post(path, json_body={"client": "app", "client_ip": "203.0.113.7"}, headers=merchant.token_headers)
    app = as_json(r)["app"]
    assert app["package"] == "Sign=WXPay" and app["partnerid"] == demo.MCH_ID and app["appid"] == demo.MOBILE_APP_APPID
    if api_version == "v3":  # signed over appid, timestamp, noncestr, prepayid (V3 digest §7)
        lines = lines_message(app["appid"], app["timestamp"], app["noncestr"], app["prepayid"])
        assert rsa_verify(MERCHANT_PUBLIC_KEY, lines, base64.b64decode(app["sign"]))
    else:
        six = {k: app[k] for k in ("appid", "partnerid", "prepayid", "package", "noncestr", "timestamp")}
        assert app["sign"] == signing.sign(six, demo.API_KEY, "MD5")
    # The simulator, playing the App SDK, accepts the payload and the payment lands.
    paid = await merchant.post("/_wechat/_sim/pay", json_body={"prepay_id": app["prepayid"], "outcome": "ok", "payload": app})
    assert as_json(paid)["result"] == {"errCode": 0}
    await wait_status(merchant, checkout["id"], "paid")

    r = await merchant.post(path, json_body={"client": "mini_program"}, headers=merchant.token_headers)
    assert r.code in (400, 409)
    r = await merchant.post(path, json_body={"client": "tv"}, headers=merchant.token_headers)
    assert as_json(r)["code"] == "invalid_client"


async def test_oauth_callback_refresh_does_not_spend_the_code_twice(running, base_url, merchant):
    checkout = await create_checkout(merchant)
    from .browser import WECHAT_UA

    shopper = Browser(base_url, WECHAT_UA)
    first = await shopper.get(checkout["pay_url"])
    authorize = first.headers["Location"]
    to_callback = await shopper.get(authorize)
    callback = to_callback.headers["Location"]
    oauth_cookie = shopper.cookies["wx_oauth"]
    done = await shopper.get(callback)
    assert done.code == 302 and done.headers["Location"] == f"/pay/{checkout['id']}"
    # A refresh of the callback (the state cookie replayed too): no second exchange.
    shopper.cookies["wx_oauth"] = oauth_cookie
    again = await shopper.get(callback)
    assert again.code == 302, again.body
    tokens = as_json(await shopper.get("/_wechat/_sim/tokens"))
    assert "40163" not in str(tokens)
    # A forged state is refused, and an open redirect is impossible.
    forged = await Browser(base_url, WECHAT_UA).get(callback.replace("state=", "state=x"))
    assert forged.code == 403


async def test_status_reports_expired_checkouts(running, base_url, merchant):
    checkout = await create_checkout(merchant, expires_in_minutes=5)
    services = running.services
    c = await services.checkouts.get(checkout["id"])
    await services.store.update_if("checkouts", c.id, {"status": "open"}, {"expires_at": services.now()})
    assert as_json(await merchant.get(f"/pay/{checkout['id']}/status"))["status"] == "expired"
    report = await services.reconciler.run_once()
    assert report.checkouts_closed == 1
    assert as_json(await merchant.get(f"/pay/{checkout['id']}/status"))["status"] == "closed"


@BOTH_VERSIONS
async def test_a_prepay_is_reused_only_when_this_gateway_can_sign_its_order(running, base_url, merchant, api_version):
    """Same shopper, same slot: the stored order is handed out again; one whose sign
    type this API version cannot sign (an APIv2 order after a move to APIv3, or the
    reverse) is not: a new order is made, and the old one goes to the reconciler to
    be asked about and closed, so a page still holding its payload cannot pay twice."""
    checkout = await create_checkout(merchant, 655)
    desktop = Browser(base_url, DESKTOP_UA)
    await desktop.get(checkout["pay_url"])
    first = as_json(await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
    again = as_json(await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
    assert again["reused"] and again["out_trade_no"] == first["out_trade_no"]
    foreign = {"v2": "RSA", "v3": "MD5"}[api_version]
    await running.services.store.update_if("orders", first["out_trade_no"], {}, {"sign_type": foreign})
    other = as_json(await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
    assert not other["reused"] and other["out_trade_no"] != first["out_trade_no"]
    old = await running.services.orders.require(first["out_trade_no"])
    assert old.state == "prepaid" and old.close_requested and old.next_check_at <= running.services.now()
    assert not (await running.services.orders.require(other["out_trade_no"])).close_requested
