"""Official Account tokens and tickets, and the errors that mean 'refresh'."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from wxpay import errors as e
from wxpay.endpoints import Endpoints
from wxpay.official import OfficialAccountClient
from wxpay.transport import HttpResponse

from .replies import APPID, FakeWeChat

SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
NOW = datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc)
TOKEN_VALUE = "78_abcDEF-ghi" + "x" * 120


def reply(data: dict) -> HttpResponse:
    return HttpResponse(200, {"Content-Type": "application/json"}, json.dumps(data).encode())


def official(fake, **kw) -> OfficialAccountClient:
    return OfficialAccountClient(APPID, SECRET, transport=fake, clock=lambda: NOW, **kw)


async def test_access_token():
    fake = FakeWeChat(reply({"access_token": TOKEN_VALUE, "expires_in": 7200}))
    token = await official(fake).access_token()
    parts = urlsplit(fake.last.url)
    assert (fake.last.method, parts.netloc, parts.path) == ("GET", "api.weixin.qq.com", "/cgi-bin/token")
    assert parse_qs(parts.query) == {"grant_type": ["client_credential"], "appid": [APPID], "secret": [SECRET]}
    assert token.value == TOKEN_VALUE and token.expires_in == 7200
    assert token.obtained_at == NOW and token.expires_at == NOW + timedelta(hours=2)
    assert TOKEN_VALUE not in repr(token)


async def test_stable_token_posts_json():
    fake = FakeWeChat(reply({"access_token": TOKEN_VALUE, "expires_in": 5400}))
    client = official(fake, endpoints=Endpoints.single("http://127.0.0.1:8000/_wechat"))
    token = await client.stable_token(force_refresh=True)
    request = fake.last
    assert request.method == "POST" and request.url == "http://127.0.0.1:8000/_wechat/cgi-bin/stable_token"
    assert request.headers["Content-Type"].startswith("application/json")
    assert json.loads(request.body) == {"grant_type": "client_credential", "appid": APPID, "secret": SECRET,
                                        "force_refresh": True}
    assert token.expires_in == 5400
    with pytest.raises(e.InvalidArgumentError):
        await client.stable_token(force_refresh="yes")


async def test_jsapi_ticket():
    fake = FakeWeChat(reply({"errcode": 0, "errmsg": "ok", "ticket": "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg", "expires_in": 7200}))
    ticket = await official(fake).jsapi_ticket(TOKEN_VALUE)
    assert parse_qs(urlsplit(fake.last.url).query) == {"access_token": [TOKEN_VALUE], "type": ["jsapi"]}
    assert urlsplit(fake.last.url).path == "/cgi-bin/ticket/getticket"
    assert ticket.value.startswith("sM4AOV") and ticket.expires_in == 7200
    assert ticket.expires_at == NOW + timedelta(hours=2)


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_stale_token_is_token_invalid_error(errcode):
    fake = FakeWeChat(reply({"errcode": errcode, "errmsg": "invalid credential"}))
    with pytest.raises(e.TokenInvalidError) as info:
        await official(fake).jsapi_ticket("stale")
    assert info.value.errcode == errcode


@pytest.mark.parametrize("errcode,cls", [
    (45009, e.QuotaExceededError), (40164, e.ApiError), (40013, e.ApiError), (-1, e.ApiBusyError),
])
async def test_token_errors(errcode, cls):
    with pytest.raises(e.ApiError) as info:
        await official(FakeWeChat(reply({"errcode": errcode, "errmsg": "x"}))).access_token()
    assert type(info.value) is cls


async def test_missing_fields_are_protocol_errors():
    with pytest.raises(e.ProtocolError):
        await official(FakeWeChat(reply({"expires_in": 7200}))).access_token()
    with pytest.raises(e.ProtocolError):
        await official(FakeWeChat(reply({"access_token": "t", "expires_in": "soon"}))).access_token()


async def test_each_call_goes_to_wechat():
    """No caching here: the server's store owns the cache and the refresh lease."""
    fake = FakeWeChat(reply({"access_token": "a", "expires_in": 7200}), reply({"access_token": "b", "expires_in": 7200}))
    client = official(fake)
    assert [(await client.access_token()).value for _ in range(2)] == ["a", "b"]
    assert len(fake.requests) == 2


async def test_http_5xx_is_transport_error():
    with pytest.raises(e.TransportError):
        await official(FakeWeChat(HttpResponse(503, {}, b""))).access_token()
