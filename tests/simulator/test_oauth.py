"""Simulated web authorization over real HTTP (protocol digest §14)."""
from __future__ import annotations

import asyncio
import html
import json
import logging
from urllib.parse import urldefrag

import pytest
from wechatpy.exceptions import WeChatOAuthException
from wechatpy.oauth import WeChatOAuth

from wxpay.simulator import demo
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.oauth import OAuthState

from .oauth_token_server import (
    SECOND_OA_APPID,
    SECOND_OA_SECRET,
    location_query,
    make_config,
    make_sim,
    start,
    stop,
)

APPID, SECRET = demo.OFFICIAL_ACCOUNT_APPID, demo.OFFICIAL_ACCOUNT_SECRET
SHOP = "https://shop.example.com/oauth/callback"


@pytest.fixture
async def wx():
    running = await start(make_sim())
    yield running
    await stop(running)


def authorize_params(scope: str = "snsapi_base", state: str = "st8Xy", **kw) -> dict:
    params = {"appid": APPID, "redirect_uri": SHOP, "response_type": "code", "scope": scope, "state": state}
    params.update(kw)
    return params


async def authorize(wx, scope="snsapi_base", appid=APPID, headers=None, **kw) -> str:
    """Run the browser side through to the code."""
    resp = await wx.get("/connect/oauth2/authorize", authorize_params(scope, appid=appid, **kw), headers=headers)
    if scope == "snsapi_userinfo":
        assert resp.code == 200
        approve = _link(resp.body.decode(), "approve")
        resp = await wx.get("/connect/oauth2/authorize" + approve, headers=headers)
    _, query = location_query(resp)
    return query["code"][0]


def _link(page: str, element_id: str) -> str:
    """The href of <a id=element_id> on the consent page (HTML-unescaped)."""
    marker = f'id="{element_id}" href="'
    start = page.index(marker) + len(marker)
    return html.unescape(page[start : page.index('"', start)])


async def exchange(wx, code, appid=APPID, secret=SECRET, grant_type="authorization_code") -> dict:
    return await wx.get_json(
        "/sns/oauth2/access_token", {"appid": appid, "secret": secret, "code": code, "grant_type": grant_type}
    )


# -- authorize page ---------------------------------------------------------


async def test_snsapi_base_redirects_silently_with_code_and_same_state(wx):
    resp = await wx.get("/connect/oauth2/authorize", authorize_params(redirect_uri=SHOP + "?next=%2Fpay&x=a+b"))
    assert resp.headers["Location"].startswith(SHOP + "?next=%2Fpay&x=a+b&code=")
    target, query = location_query(resp)
    assert target == SHOP
    assert query["state"] == ["st8Xy"]
    assert query["next"] == ["/pay"]  # the redirect_uri's own query survives
    assert len(query["code"][0]) == 32


async def test_each_authorization_gets_a_different_code(wx):
    assert await authorize(wx) != await authorize(wx)


async def test_snsapi_userinfo_shows_a_bilingual_consent_page(wx):
    resp = await wx.get("/connect/oauth2/authorize", authorize_params("snsapi_userinfo"))
    assert resp.code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    page = resp.body.decode()
    assert "授权" in page and "允许" in page and "拒绝" in page
    assert "This page asks for your public profile" in page
    assert 'id="sim-user">alice<' in page


async def test_consent_approve_redirects_with_code_and_state(wx):
    resp = await wx.get("/connect/oauth2/authorize", authorize_params("snsapi_userinfo"))
    approve = _link(resp.body.decode(), "approve")
    assert approve.startswith("?")  # relative: works under any mount prefix
    resp = await wx.get("/connect/oauth2/authorize" + approve)
    target, query = location_query(resp)
    assert target == SHOP and query["state"] == ["st8Xy"] and query["code"]


async def test_consent_deny_redirects_with_state_only(wx):
    resp = await wx.get("/connect/oauth2/authorize", authorize_params("snsapi_userinfo"))
    deny = _link(resp.body.decode(), "deny")
    resp = await wx.get("/connect/oauth2/authorize" + deny)
    target, query = location_query(resp)
    assert target == SHOP
    assert query == {"state": ["st8Xy"]}


def _errcode(resp) -> str:
    page = resp.body.decode()
    marker = '<span id="errcode">'
    start = page.index(marker) + len(marker)
    return page[start : page.index("<", start)]


@pytest.mark.parametrize(
    "change, errcode",
    [
        ({"appid": ""}, "10012"),
        ({"appid": "wx0000000000000bad"}, "10012"),
        ({"appid": demo.MINI_PROGRAM_APPID}, "10016"),
        ({"appid": demo.MOBILE_APP_APPID}, "10016"),
        ({"redirect_uri": ""}, "10011"),
        ({"scope": ""}, "10010"),
        ({"scope": "snsapi_login"}, "10010"),
        ({"redirect_uri": "javascript:alert(1)"}, "10003"),
        ({"redirect_uri": "/relative/path"}, "10003"),
    ],
)
async def test_authorize_errors_show_wechats_error_page(wx, change, errcode):
    resp = await wx.get("/connect/oauth2/authorize", authorize_params(**change))
    assert resp.code == 200
    assert "Location" not in resp.headers
    assert "Oops! Something went wrong" in resp.body.decode()
    assert _errcode(resp) == errcode
    assert resp.headers["X-Sim-Errcode"] == errcode


async def test_configured_domains_give_10003_on_mismatch():
    config = make_config(extra={"oauth_domains": {APPID: ["shop.example.com", "dev.example.com:8443"]}})
    wx = await start(make_sim(config))
    try:
        ok = await wx.get("/connect/oauth2/authorize", authorize_params())
        assert ok.code == 302
        with_port = await wx.get("/connect/oauth2/authorize", authorize_params(redirect_uri="https://dev.example.com:8443/cb"))
        assert with_port.code == 302
        for uri in ("https://evil.example.net/cb", "https://sub.shop.example.com/cb", "https://dev.example.com/cb"):
            resp = await wx.get("/connect/oauth2/authorize", authorize_params(redirect_uri=uri))
            assert resp.code == 200 and _errcode(resp) == "10003", uri
    finally:
        await stop(wx)


# -- who is logged in, openid and unionid ------------------------------------


async def test_default_user_is_the_first_configured_one(wx):
    token = await exchange(wx, await authorize(wx))
    assert token["openid"] == wx.sim.oauth.openid(APPID, "alice")


async def test_sim_user_param_switches_user_and_sets_a_cookie(wx):
    resp = await wx.get("/connect/oauth2/authorize", authorize_params(sim_user="bob"))
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("sim_user=bob")
    _, query = location_query(resp)
    bob = (await exchange(wx, query["code"][0]))["openid"]
    assert bob == wx.sim.oauth.openid(APPID, "bob")
    # The cookie alone keeps bob logged in.
    again = await authorize(wx, headers={"Cookie": "sim_user=bob"})
    assert (await exchange(wx, again))["openid"] == bob


async def test_invalid_sim_user_is_refused(wx):
    resp = await wx.get("/connect/oauth2/authorize", authorize_params(sim_user="<script>"))
    assert resp.code == 400


async def test_openid_is_stable_per_user_and_differs_per_user_and_app(wx):
    alice1 = (await exchange(wx, await authorize(wx)))["openid"]
    alice2 = (await exchange(wx, await authorize(wx)))["openid"]
    bob = (await exchange(wx, await authorize(wx, sim_user="bob")))["openid"]
    other_app = await exchange(wx, await authorize(wx, appid=SECOND_OA_APPID), appid=SECOND_OA_APPID, secret=SECOND_OA_SECRET)
    assert alice1 == alice2
    assert len({alice1, bob, other_app["openid"]}) == 3
    assert alice1.startswith("o") and len(alice1) == 28


async def test_unionid_only_for_userinfo_and_shared_across_apps(wx):
    base = await exchange(wx, await authorize(wx))
    assert set(base) == {"access_token", "expires_in", "refresh_token", "openid", "scope"}
    assert base["scope"] == "snsapi_base" and base["expires_in"] == 7200
    info1 = await exchange(wx, await authorize(wx, "snsapi_userinfo"))
    assert set(info1) == {"access_token", "expires_in", "refresh_token", "openid", "scope", "unionid"}
    assert info1["scope"] == "snsapi_userinfo"
    info2 = await exchange(
        wx, await authorize(wx, "snsapi_userinfo", appid=SECOND_OA_APPID), appid=SECOND_OA_APPID, secret=SECOND_OA_SECRET
    )
    assert info1["unionid"] == info2["unionid"] and info1["openid"] != info2["openid"]


def test_openids_differ_between_simulator_instances_but_survive_persistence():
    config = make_config()
    clock = FakeClock()
    one, two = OAuthState(config, clock), OAuthState(config, clock)
    assert one.openid(APPID, "alice") != two.openid(APPID, "alice")
    restored = OAuthState.from_json(json.loads(json.dumps(one.to_json())), config, clock)
    assert restored.openid(APPID, "alice") == one.openid(APPID, "alice")


# -- sns/oauth2/access_token ------------------------------------------------


async def test_code_is_single_use(wx):
    code = await authorize(wx)
    assert "access_token" in await exchange(wx, code)
    assert await exchange(wx, code) == {"errcode": 40163, "errmsg": "code been used"}


async def test_code_expires_after_five_minutes(wx):
    fresh, stale = await authorize(wx), await authorize(wx)
    wx.clock.advance(299)
    assert "access_token" in await exchange(wx, fresh)
    wx.clock.advance(1)
    assert (await exchange(wx, stale))["errcode"] == 42003


@pytest.mark.parametrize(
    "change, errcode",
    [
        ({"code": "0" * 32}, 40029),
        ({"code": ""}, 41008),
        ({"appid": "wx0000000000000bad"}, 40013),
        ({"appid": ""}, 41002),
        ({"secret": "wrong"}, 40125),
        ({"secret": ""}, 41004),
        ({"grant_type": "client_credential"}, 40002),
        ({"grant_type": ""}, 40002),
    ],
)
async def test_exchange_errors(wx, change, errcode):
    params = {"appid": APPID, "secret": SECRET, "code": await authorize(wx), "grant_type": "authorization_code"}
    params.update(change)
    resp = await wx.get("/sns/oauth2/access_token", params)
    assert resp.code == 200 and resp.headers["Content-Type"].startswith("application/json")
    body = json.loads(resp.body)
    assert body["errcode"] == errcode and body["errmsg"]
    assert set(body) == {"errcode", "errmsg"}


async def test_code_of_another_app_is_invalid(wx):
    code = await authorize(wx)
    assert (await exchange(wx, code, appid=SECOND_OA_APPID, secret=SECOND_OA_SECRET))["errcode"] == 40029
    # ...and was not consumed by the failed attempt.
    assert "access_token" in await exchange(wx, code)


async def test_access_log_shows_no_code_or_secret(wx, caplog):
    code = await authorize(wx)
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        await exchange(wx, code)
    assert "sns/oauth2/access_token" in caplog.text
    assert code not in caplog.text and SECRET not in caplog.text


# -- refresh, userinfo, auth ----------------------------------------------------


async def refresh(wx, refresh_token, appid=APPID, grant_type="refresh_token") -> dict:
    return await wx.get_json(
        "/sns/oauth2/refresh_token", {"appid": appid, "grant_type": grant_type, "refresh_token": refresh_token}
    )


async def userinfo(wx, token, openid, lang=None) -> dict:
    params = {"access_token": token, "openid": openid} | ({"lang": lang} if lang else {})
    return await wx.get_json("/sns/userinfo", params)


async def test_refresh_extends_a_valid_token(wx):
    grant = await exchange(wx, await authorize(wx, "snsapi_userinfo"))
    wx.clock.advance(7000)
    again = await refresh(wx, grant["refresh_token"])
    assert set(again) == {"access_token", "expires_in", "refresh_token", "openid", "scope"}
    assert again["access_token"] == grant["access_token"] and again["expires_in"] == 7200
    assert again["refresh_token"] == grant["refresh_token"] and again["openid"] == grant["openid"]
    assert again["scope"] == "snsapi_userinfo"
    wx.clock.advance(7000)  # past the original expiry, inside the extended one
    assert (await userinfo(wx, grant["access_token"], grant["openid"]))["openid"] == grant["openid"]


async def test_refresh_replaces_an_expired_token(wx):
    grant = await exchange(wx, await authorize(wx))
    wx.clock.advance(7200)
    assert (await wx.get_json("/sns/auth", {"access_token": grant["access_token"], "openid": grant["openid"]}))["errcode"] == 42001
    again = await refresh(wx, grant["refresh_token"])
    assert again["access_token"] != grant["access_token"]
    ok = await wx.get_json("/sns/auth", {"access_token": again["access_token"], "openid": grant["openid"]})
    assert ok == {"errcode": 0, "errmsg": "ok"}


async def test_refresh_token_lives_thirty_days(wx):
    grant = await exchange(wx, await authorize(wx))
    wx.clock.advance(days=30, seconds=-1)
    assert "access_token" in await refresh(wx, grant["refresh_token"])
    wx.clock.advance(1)
    assert await refresh(wx, grant["refresh_token"]) == {"errcode": 42002, "errmsg": "refresh_token expired"}


async def test_refresh_errors(wx):
    grant = await exchange(wx, await authorize(wx))
    assert (await refresh(wx, "nope"))["errcode"] == 40030
    assert (await refresh(wx, ""))["errcode"] == 41003
    assert (await refresh(wx, grant["refresh_token"], appid=SECOND_OA_APPID))["errcode"] == 40030
    assert (await refresh(wx, grant["refresh_token"], appid="wx0000000000000bad"))["errcode"] == 40013
    assert (await refresh(wx, grant["refresh_token"], grant_type="authorization_code"))["errcode"] == 40002


async def test_userinfo_profile_and_lang(wx):
    grant = await exchange(wx, await authorize(wx, "snsapi_userinfo", sim_user="carol"))
    zh = await userinfo(wx, grant["access_token"], grant["openid"])
    assert set(zh) == {"openid", "nickname", "sex", "province", "city", "country", "headimgurl", "privilege", "unionid"}
    assert zh["openid"] == grant["openid"] and zh["unionid"] == grant["unionid"]
    assert zh["nickname"] == "carol" and zh["country"] == "中国" and zh["privilege"] == []
    en = await userinfo(wx, grant["access_token"], grant["openid"], "en")
    assert en["country"] == "China"
    tw = await userinfo(wx, grant["access_token"], grant["openid"], "zh_TW")
    assert tw["country"] == "中國"


async def test_userinfo_with_a_base_token_is_48001(wx):
    grant = await exchange(wx, await authorize(wx))
    assert await userinfo(wx, grant["access_token"], grant["openid"]) == {"errcode": 48001, "errmsg": "api unauthorized"}


async def test_userinfo_token_errors(wx):
    grant = await exchange(wx, await authorize(wx, "snsapi_userinfo"))
    assert (await userinfo(wx, "bogus", grant["openid"]))["errcode"] == 40001
    assert (await userinfo(wx, "", grant["openid"]))["errcode"] == 41001
    assert (await userinfo(wx, grant["access_token"], "oSomeoneElse"))["errcode"] == 40003
    wx.clock.advance(7200)
    assert (await userinfo(wx, grant["access_token"], grant["openid"]))["errcode"] == 42001


async def test_sns_auth(wx):
    grant = await exchange(wx, await authorize(wx))
    ok = {"access_token": grant["access_token"], "openid": grant["openid"]}
    assert await wx.get_json("/sns/auth", ok) == {"errcode": 0, "errmsg": "ok"}
    bad_openid = await wx.get_json("/sns/auth", ok | {"openid": wx.sim.oauth.openid(APPID, "bob")})
    assert bad_openid == {"errcode": 40003, "errmsg": "invalid openid"}
    assert (await wx.get_json("/sns/auth", ok | {"access_token": "x"}))["errcode"] == 40001


async def test_state_survives_to_json_round_trip(wx):
    pending, used = await authorize(wx), await authorize(wx)
    grant = await exchange(wx, used)
    snapshot = json.loads(json.dumps(wx.sim.oauth.to_json()))
    wx.sim.oauth = OAuthState.from_json(snapshot, wx.sim.config, wx.sim.clock)
    assert (await exchange(wx, used))["errcode"] == 40163
    assert (await exchange(wx, pending))["openid"] == grant["openid"]
    assert "access_token" in await refresh(wx, grant["refresh_token"])


async def test_faults_apply_to_oauth_endpoints(wx):
    wx.sim.faults.add("sns/oauth2/access_token", "systemerror")
    code = await authorize(wx)
    assert await exchange(wx, code) == {"errcode": -1, "errmsg": "system error"}
    wx.sim.faults.add("connect/oauth2/authorize", "http500")
    resp = await wx.get("/connect/oauth2/authorize", authorize_params())
    assert resp.code == 500


# -- an independent client: wechatpy -------------------------------------------


def _wechatpy_oauth(wx, scope="snsapi_base") -> WeChatOAuth:
    client = WeChatOAuth(APPID, SECRET, SHOP, scope=scope, state="wpy1")
    client.API_BASE_URL = wx.base + "/"
    client.OAUTH_BASE_URL = wx.base + "/connect/"
    return client


async def _code_via(wx, client: WeChatOAuth) -> str:
    url, _ = urldefrag(client.authorize_url)
    resp = await wx.get(url[len(wx.base) :])
    if client.scope == "snsapi_userinfo":
        resp = await wx.get("/connect/oauth2/authorize" + _link(resp.body.decode(), "approve"))
    target, query = location_query(resp)
    assert target == SHOP and query["state"] == ["wpy1"]
    return query["code"][0]


async def test_wechatpy_oauth_full_flow(wx):
    client = _wechatpy_oauth(wx, "snsapi_userinfo")
    code = await _code_via(wx, client)
    grant = await asyncio.to_thread(client.fetch_access_token, code)
    assert grant["scope"] == "snsapi_userinfo" and client.open_id == grant["openid"]
    refreshed = await asyncio.to_thread(client.refresh_access_token, grant["refresh_token"])
    assert refreshed["openid"] == grant["openid"]
    info = await asyncio.to_thread(client.get_user_info)
    assert info["openid"] == grant["openid"] and info["unionid"] == grant["unionid"]
    assert await asyncio.to_thread(client.check_access_token) is True


async def test_wechatpy_oauth_sees_40163_42003_48001(wx):
    client = _wechatpy_oauth(wx)
    code = await _code_via(wx, client)
    await asyncio.to_thread(client.fetch_access_token, code)
    with pytest.raises(WeChatOAuthException) as used:
        await asyncio.to_thread(client.fetch_access_token, code)
    assert used.value.errcode == 40163

    with pytest.raises(WeChatOAuthException) as base_scope:
        await asyncio.to_thread(client.get_user_info)
    assert base_scope.value.errcode == 48001

    stale = await _code_via(wx, client)
    wx.clock.advance(minutes=5)
    with pytest.raises(WeChatOAuthException) as expired:
        await asyncio.to_thread(client.fetch_access_token, stale)
    assert expired.value.errcode == 42003
    with pytest.raises(WeChatOAuthException) as token_expired:
        wx.clock.advance(7200)
        await asyncio.to_thread(client.check_access_token)
    assert token_expired.value.errcode == 42001



# -- the real Simulator and make_app --------------------------------------------


async def test_with_the_real_simulator_app():
    from tornado.httpserver import HTTPServer
    from tornado.testing import bind_unused_port

    from wxpay.simulator.app import make_app
    from wxpay.simulator.core import Simulator

    from .oauth_token_server import START, Running

    sim = Simulator(make_config(), clock=FakeClock(START))
    sock, port = bind_unused_port()
    server = HTTPServer(make_app(sim, "/_wechat", xsrf_cookies=True))
    server.add_sockets([sock])
    wx = Running(sim, f"http://127.0.0.1:{port}/_wechat", server)
    try:
        code = await authorize(wx, "snsapi_userinfo", sim_user="dave")
        grant = await exchange(wx, code)
        assert (await userinfo(wx, grant["access_token"], grant["openid"]))["nickname"] == "dave"
        assert sim.openid_belongs(APPID, grant["openid"])  # the pay side accepts this openid
        assert not sim.openid_belongs(SECOND_OA_APPID, grant["openid"])
        token = (await wx.get_json("/cgi-bin/token", {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}))["access_token"]
        jsapi = await wx.get_json("/cgi-bin/ticket/getticket", {"access_token": token, "type": "jsapi"})
        assert jsapi["errcode"] == 0 and sim.tokens.ticket_owner(jsapi["ticket"]) == APPID
        view = await wx.get_json("/_sim/tokens")
        assert view["apps"][APPID]["calls_today"] == 1 and view["oauth"]["user_tokens_valid"] == 1

        restored = Simulator(make_config(), clock=sim.clock)
        restored.load_json(json.loads(json.dumps(sim.to_json())))
        server.stop()
        await server.close_all_connections()
        sock, port = bind_unused_port()
        server = HTTPServer(make_app(restored, "/_wechat"))
        server.add_sockets([sock])
        wx = Running(restored, f"http://127.0.0.1:{port}/_wechat", server)
        assert (await exchange(wx, code))["errcode"] == 40163
        assert restored.tokens.check(token) == 0
        assert (await refresh(wx, grant["refresh_token"]))["openid"] == grant["openid"]
    finally:
        server.stop()
        await server.close_all_connections()


def test_remembered_openids_are_the_derived_ones():
    from wxpay.simulator.oauth import OAuthState

    state = OAuthState(make_config(), FakeClock(), seed=b"s" * 32)
    first = state.openid(APPID, "alice")
    assert state.openid(APPID, "alice") == first  # from memory
    assert OAuthState(make_config(), FakeClock(), seed=b"s" * 32).openid(APPID, "alice") == first
    assert state.openid(SECOND_OA_APPID, "alice") != first != state.openid(APPID, "bob")
    assert OAuthState(make_config(), FakeClock(), seed=b"t" * 32).openid(APPID, "alice") != first
