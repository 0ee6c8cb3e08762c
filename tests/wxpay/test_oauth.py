"""OAuth: the authorize URL's shape, the state rules, and each errcode."""
from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from wxpay import errors as e
from wxpay.endpoints import Endpoints
from wxpay.err_codes import ERRCODES
from wxpay.oauth import OAuthClient
from wxpay.transport import HttpResponse

from .replies import APPID, OPENID, FakeWeChat

SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CODE = "061Xk5Ga1mWQwC0L2dHa1UWb4r3Xk5Gd"


def reply(data: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "application/json; encoding=utf-8"},
                        json.dumps(data, ensure_ascii=False).encode())


def oauth(fake=None, **kw) -> OAuthClient:
    return OAuthClient(APPID, SECRET, transport=fake or FakeWeChat(b"{}"), **kw)


TOKEN = {"access_token": "ACCESS_TOKEN_USER", "expires_in": 7200, "refresh_token": "REFRESH_TOKEN",
         "openid": OPENID, "scope": "snsapi_base", "is_snapshotuser": 1, "unionid": "o6_bmasdasdsad6_2sgVt7hMZOPfL"}


def test_authorize_url_shape():
    url = oauth().authorize_url("https://shop.example.com/oauth/callback?next=/pay/1", state="Ab3xYz")
    assert url.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?appid=")
    assert url.endswith("#wechat_redirect")
    query = url.split("?", 1)[1].split("#", 1)[0]
    # order as WeChat documents it; redirect_uri fully encoded
    assert [p.split("=")[0] for p in query.split("&")] == ["appid", "redirect_uri", "response_type", "scope", "state"]
    assert "redirect_uri=https%3A%2F%2Fshop.example.com%2Foauth%2Fcallback%3Fnext%3D%2Fpay%2F1&" in query
    params = parse_qs(query)
    assert params == {
        "appid": [APPID], "redirect_uri": ["https://shop.example.com/oauth/callback?next=/pay/1"],
        "response_type": ["code"], "scope": ["snsapi_base"], "state": ["Ab3xYz"],
    }


def test_authorize_url_userinfo_scope_and_single_base():
    c = oauth(endpoints=Endpoints.single("http://127.0.0.1:8000/_wechat"))
    url = c.authorize_url("http://127.0.0.1:8000/oauth/callback", "snsapi_userinfo", "s1")
    assert urlsplit(url).path == "/_wechat/connect/oauth2/authorize"
    assert "scope=snsapi_userinfo" in url


@pytest.mark.parametrize("state", ["", "a" * 129, "has space", "dash-ed", "汉字", "a&b=c", None])
def test_bad_state_is_refused(state):
    with pytest.raises(e.InvalidArgumentError) as info:
        oauth().authorize_url("https://shop.example.com/cb", state=state)
    assert isinstance(info.value, ValueError)


def test_state_of_128_alphanumerics_is_fine():
    assert "state=" + "Z9" * 64 in oauth().authorize_url("https://shop.example.com/cb", state="Z9" * 64)


@pytest.mark.parametrize("kwargs", [
    {"redirect_uri": "/relative/cb", "state": "s"},
    {"redirect_uri": "javascript:alert(1)", "state": "s"},
    {"redirect_uri": "https://shop.example.com/cb", "state": "s", "scope": "snsapi_login"},
])
def test_bad_redirect_or_scope_is_refused(kwargs):
    with pytest.raises(e.InvalidArgumentError):
        oauth().authorize_url(**kwargs)


async def test_exchange_code_request_and_token():
    fake = FakeWeChat(reply(TOKEN))
    token = await oauth(fake).exchange_code(CODE)
    request = fake.last
    assert request.method == "GET"
    parts = urlsplit(request.url)
    assert (parts.netloc, parts.path) == ("api.weixin.qq.com", "/sns/oauth2/access_token")
    assert parse_qs(parts.query) == {"appid": [APPID], "secret": [SECRET], "code": [CODE],
                                     "grant_type": ["authorization_code"]}
    assert token.openid == OPENID and token.access_token == "ACCESS_TOKEN_USER"
    assert token.expires_in == 7200 and token.scopes == ("snsapi_base",)
    assert token.is_snapshotuser is True and token.unionid.startswith("o6_")
    assert "ACCESS_TOKEN_USER" not in repr(token) and "REFRESH_TOKEN" not in repr(token)


async def test_plain_token_without_optional_fields():
    data = {k: v for k, v in TOKEN.items() if k not in ("is_snapshotuser", "unionid")}
    token = await oauth(FakeWeChat(reply(data))).exchange_code(CODE)
    assert token.is_snapshotuser is False and token.unionid is None


@pytest.mark.parametrize("errcode", sorted(ERRCODES))
async def test_each_errcode_maps_to_its_class(errcode):
    cls, _ = ERRCODES[errcode]
    fake = FakeWeChat(reply({"errcode": errcode, "errmsg": "some reason"}))
    with pytest.raises(e.ApiError) as info:
        await oauth(fake).exchange_code(CODE)
    assert type(info.value) is cls and info.value.errcode == errcode


@pytest.mark.parametrize("errcode,cls", [
    (40029, e.OAuthCodeError), (40163, e.OAuthCodeUsedError), (42003, e.OAuthCodeExpiredError),
])
async def test_code_errors_are_distinct(errcode, cls):
    with pytest.raises(e.OAuthCodeError) as info:
        await oauth(FakeWeChat(reply({"errcode": errcode, "errmsg": "x"}))).exchange_code(CODE)
    assert type(info.value) is cls


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b"[]", b'{"errcode": "abc"}', b'{"openid": "x"}'])
async def test_malformed_json_is_protocol_error(body):
    with pytest.raises(e.ProtocolError):
        await oauth(FakeWeChat(body)).exchange_code(CODE)


async def test_refresh_request():
    fake = FakeWeChat(reply(TOKEN))
    token = await oauth(fake).refresh("REFRESH_TOKEN")
    parts = urlsplit(fake.last.url)
    assert parts.path == "/sns/oauth2/refresh_token"
    assert parse_qs(parts.query) == {"appid": [APPID], "grant_type": ["refresh_token"], "refresh_token": ["REFRESH_TOKEN"]}
    assert "secret" not in parse_qs(parts.query)
    assert token.refresh_token == "REFRESH_TOKEN"


async def test_refresh_token_expired():
    with pytest.raises(e.RefreshTokenError):
        await oauth(FakeWeChat(reply({"errcode": 42002, "errmsg": "refresh_token timeout"}))).refresh("R")


async def test_userinfo():
    data = {"openid": OPENID, "nickname": "小明", "sex": 1, "province": "广东", "city": "深圳", "country": "中国",
            "headimgurl": "https://thirdwx.qlogo.cn/mmopen/x/132", "privilege": ["chinaunicom"], "unionid": "u1"}
    fake = FakeWeChat(reply(data))
    info = await oauth(fake).userinfo("ACCESS_TOKEN_USER", OPENID, lang="en")
    assert parse_qs(urlsplit(fake.last.url).query)["lang"] == ["en"]
    assert (info.nickname, info.sex, info.city, info.privilege) == ("小明", 1, "深圳", ["chinaunicom"])
    with pytest.raises(e.ApiError) as err:
        await oauth(FakeWeChat(reply({"errcode": 48001, "errmsg": "api unauthorized"}))).userinfo("T", OPENID)
    assert err.value.errcode == 48001


async def test_check():
    assert await oauth(FakeWeChat(reply({"errcode": 0, "errmsg": "ok"}))).check("T", OPENID) is True
    assert await oauth(FakeWeChat(reply({"errcode": 40003, "errmsg": "invalid openid"}))).check("T", OPENID) is False
    assert await oauth(FakeWeChat(reply({"errcode": 42001, "errmsg": "expired"}))).check("T", OPENID) is False
    with pytest.raises(e.ApiBusyError):
        await oauth(FakeWeChat(reply({"errcode": -1, "errmsg": "system busy"}))).check("T", OPENID)


async def test_code_and_secret_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    records = []
    c = oauth(FakeWeChat(reply({"errcode": 40163, "errmsg": "code been used"}), reply(TOKEN)), observer=records.append)
    with pytest.raises(e.OAuthCodeUsedError):
        await c.exchange_code(CODE)
    await c.exchange_code(CODE)
    assert CODE not in caplog.text and SECRET not in caplog.text
    assert SECRET not in repr(c)
    assert [(r.endpoint, r.ok, r.error_code) for r in records] == [
        ("sns/oauth2/access_token", False, "40163"), ("sns/oauth2/access_token", True, None)]
