"""Mini Program login (``MiniProgramClient.code_to_session``) against the simulator
over loopback, and WeChat's refusal of an openid mapped to one class in both versions."""
from __future__ import annotations

import json
import logging

import pytest

from tests.simulator.pay_server import running_sim
from wxpay import errors as e
from wxpay.endpoints import Endpoints
from wxpay.errors import business_error
from wxpay.mini_program import MiniProgramClient
from wxpay.simulator import demo
from wxpay.transport import HttpRequest, HttpResponse
from wxpay.v3.err_codes import error_from_reply

MP, SECRET = demo.MINI_PROGRAM_APPID, demo.MINI_PROGRAM_SECRET


def client_for(srv, secret: str = SECRET) -> MiniProgramClient:
    return MiniProgramClient(MP, secret, endpoints=Endpoints.single(srv.base))


async def test_a_code_becomes_the_session_and_the_secrets_stay_out_of_logs_and_reprs(caplog):
    caplog.set_level(logging.DEBUG)
    async with running_sim() as srv:
        code = srv.sim.mini_program.login(MP, "alice")
        got = await client_for(srv).code_to_session(code)
    assert got.openid == srv.sim.openid_for(MP, "alice") and got.unionid == srv.sim.unionid_for("alice")
    assert got.session_key and got.session_key not in repr(got) and SECRET not in repr(client_for(srv))
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for secret in (got.session_key, code, SECRET):
        assert secret not in text
    assert "sns/jscode2session" in text  # the call itself is logged (endpoint, latency, outcome)


async def test_each_refusal_is_its_own_class():
    async with running_sim() as srv:
        client = client_for(srv)
        with pytest.raises(e.LoginCodeError) as unknown:
            await client.code_to_session("0" * 32)
        assert type(unknown.value) is e.LoginCodeError and unknown.value.errcode == 40029
        code = srv.sim.mini_program.login(MP, "bob")
        await client.code_to_session(code)
        with pytest.raises(e.LoginCodeUsedError) as used:
            await client.code_to_session(code)
        assert used.value.code == "login_code_used" and "single-use" in used.value.message
        with pytest.raises(e.LoginBlockedError):
            await client.code_to_session(srv.sim.mini_program.login(MP, "carol", "high"))
        srv.sim.mini_program.per_minute = 0
        with pytest.raises(e.LoginRateLimitedError) as busy:
            await client.code_to_session(srv.sim.mini_program.login(MP, "dave"))
        assert busy.value.retryable
        with pytest.raises(e.ApiError) as secret:
            await client_for(srv, "x" * 32).code_to_session("whatever")
        assert secret.value.errcode == 40125 and "mini_program_secret" in secret.value.message
        # The shared table still means OAuth for the OAuth endpoint.
        assert type(e.api_error({"errcode": 40029, "errmsg": "invalid code"})) is e.OAuthCodeError


@pytest.mark.parametrize("code", ["", "has space", "a" * 129, "汉字", None, 42])
async def test_a_malformed_code_is_refused_before_any_call(code):
    calls: list[HttpRequest] = []

    async def transport(request: HttpRequest) -> HttpResponse:
        calls.append(request)
        return HttpResponse(200, {}, b"{}")

    with pytest.raises(e.InvalidArgumentError):
        await MiniProgramClient(MP, SECRET, transport=transport).code_to_session(code)
    assert calls == []


@pytest.mark.parametrize("body", [{"openid": "o1"}, {"session_key": "k"}, {"openid": "o1", "session_key": 7}])
async def test_a_reply_without_openid_or_session_key_is_a_protocol_error(body):
    async def transport(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, {}, json.dumps(body).encode())

    with pytest.raises(e.ProtocolError):
        await MiniProgramClient(MP, SECRET, transport=transport).code_to_session("c0de")


def test_v2_param_error_naming_the_openid_is_an_openid_mismatch():
    refused = business_error({"err_code": "PARAM_ERROR", "err_code_des": "appid和openid不匹配"})
    assert type(refused) is e.OpenidMismatchError and refused.code == "openid_mismatch"
    assert isinstance(refused, e.InvalidRequestError)  # callers that catch the parent still do
    other = business_error({"err_code": "PARAM_ERROR", "err_code_des": "body参数长度有误"})
    assert type(other) is e.InvalidRequestError


@pytest.mark.parametrize("status, body, cls", [
    (400, {"code": "PARAM_ERROR", "message": "appid和openid不匹配",
           "detail": {"field": "/payer/openid", "location": "body", "issue": "openid不属于该appid"}},
     e.OpenidMismatchError),
    (403, {"code": "OPENID_MISMATCH", "message": "openid与appid不匹配"}, e.OpenidMismatchError),
    (400, {"code": "PARAM_ERROR", "message": "输入源“/body/amount/total”映射到值字段“总金额”必填性规则校验失败",
           "detail": {"field": "/amount/total"}}, e.InvalidRequestError),
])
def test_v3_refusals_of_the_openid_are_the_same_class(status, body, cls):
    assert type(error_from_reply(status, json.dumps(body, ensure_ascii=False).encode())) is cls
