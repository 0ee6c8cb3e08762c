"""Simulated Mini Program login over real HTTP: ``/_sim/wx-login`` and ``sns/jscode2session``."""
from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import urlencode

import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from wxpay.simulator import demo
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.config import SimApp, SimConfig
from wxpay.simulator.core import Simulator

from .pay_server import MP, OA, START, make_config, running_sim, simsrv  # noqa: F401

SECRET = demo.MINI_PROGRAM_SECRET
OTHER_MP, OTHER_SECRET = "wx5a1d0000000000b2", "other0mini0program0secret0000b2"


async def wx_login(srv, **fields) -> tuple[int, dict]:
    return await srv.post_json("/_sim/wx-login", fields)


async def code_for(srv, user: str = "alice", **fields) -> str:
    status, body = await wx_login(srv, user=user, **fields)
    assert status == 200 and body["errMsg"] == "login:ok", body
    return body["code"]


async def session(srv, code: str, *, appid: str = MP, secret: str = SECRET, grant_type: str = "authorization_code"):
    query = urlencode({"appid": appid, "secret": secret, "js_code": code, "grant_type": grant_type})
    status, body = await srv.get_json(f"/sns/jscode2session?{query}")
    assert status == 200  # WeChat answers its errors with HTTP 200 too
    return body


def two_mini_programs() -> SimConfig:
    base = make_config()
    merchant = base.merchants[0]
    extra = SimApp(OTHER_MP, OTHER_SECRET, "mini_program", open_platform=False)
    return SimConfig(apps=base.apps + (extra,), merchants=(type(merchant)(merchant.mch_id, merchant.api_key,
                     merchant.appids + (OTHER_MP,), merchant.v3),), notify_time_scale=base.notify_time_scale)


async def test_a_wx_login_code_trades_once_for_the_shoppers_openid_and_session(simsrv):
    code = await code_for(simsrv, "alice")
    reply = await session(simsrv, code)
    assert set(reply) == {"openid", "session_key", "unionid"}  # no errcode on success, as WeChat answers
    assert reply["openid"] == simsrv.sim.openid_for(MP, "alice") != simsrv.sim.openid_for(OA, "alice")
    assert reply["unionid"] == simsrv.sim.unionid_for("alice")
    assert len(base64.b64decode(reply["session_key"], validate=True)) == 16
    assert await session(simsrv, code) == {"errcode": 40163, "errmsg": "code been used"}
    # Each login is a new session key; the openid stays the shopper's.
    again = await session(simsrv, await code_for(simsrv, "alice"))
    assert again["openid"] == reply["openid"] and again["session_key"] != reply["session_key"]
    tokens = (await simsrv.get_json("/_sim/tokens"))[1]
    assert tokens["mini_program"] == {"login_codes_pending": 0}


async def test_every_refusal_has_wechats_errcode():
    async with running_sim(sim_config=two_mini_programs()) as srv:
        code = await code_for(srv, appid=MP)
        assert (await session(srv, "0" * 32))["errcode"] == 40029
        assert (await session(srv, code, appid=OTHER_MP, secret=OTHER_SECRET))["errcode"] == 40029  # another app's
        assert (await session(srv, code, appid=OA, secret=demo.OFFICIAL_ACCOUNT_SECRET))["errcode"] == 40013
        assert (await session(srv, code, appid="wx0000000000000000"))["errcode"] == 40013
        assert (await session(srv, code, appid=""))["errcode"] == 41002
        assert (await session(srv, code, secret="x" * 32))["errcode"] == 40125
        assert (await session(srv, code, secret=""))["errcode"] == 41004
        assert (await session(srv, "", ))["errcode"] == 41008
        assert (await session(srv, code, grant_type="client_credential"))["errcode"] == 40002
        # None of that spent the code.
        assert "openid" in await session(srv, code)
        # A Mini Program not bound to the Open platform gets no unionid.
        other = await session(srv, await code_for(srv, appid=OTHER_MP), appid=OTHER_MP, secret=OTHER_SECRET)
        assert set(other) == {"openid", "session_key"}
        # With two Mini Programs, wx-login must be told which.
        status, body = await wx_login(srv, user="alice")
        assert status == 400 and body["errMsg"].startswith("login:fail appid must be one of")


async def test_codes_expire_after_five_minutes():
    clock = FakeClock(START)
    async with running_sim(clock) as srv:
        code = await code_for(srv)
        clock.advance(minutes=5)
        assert await session(srv, code) == {"errcode": 40029, "errmsg": "invalid code"}


async def test_a_shopper_logging_in_too_often_gets_45011_and_keeps_the_code():
    clock = FakeClock(START)
    async with running_sim(clock) as srv:
        srv.sim.mini_program.per_minute = 2
        for _ in range(2):
            assert "openid" in await session(srv, await code_for(srv, "bob"))
        code = await code_for(srv, "bob")
        assert (await session(srv, code))["errcode"] == 45011
        assert "openid" in await session(srv, await code_for(srv, "carol"))  # per shopper
        clock.advance(60)
        assert "openid" in await session(srv, code)  # the next minute, the same code works


async def test_a_high_risk_shopper_is_blocked_with_40226(simsrv):
    code = await code_for(simsrv, risk="high")
    assert await session(simsrv, code) == {"errcode": 40226, "errmsg": "code blocked"}


@pytest.mark.parametrize("fields, why", [
    ({"appid": OA}, "appid must be one of"),
    ({"appid": "wx0000000000000000"}, "appid must be one of"),
    ({"user": "no spaces"}, "user must be"),
    ({"risk": "medium"}, "risk must be"),
])
async def test_wx_login_refuses_what_it_cannot_mint(simsrv, fields, why):
    status, body = await wx_login(simsrv, **fields)
    assert status == 400 and why in body["errMsg"] and "code" not in body


async def test_wx_login_takes_a_form_too(simsrv):
    resp = await simsrv.raw("/_sim/wx-login", b"user=dave")
    code = json.loads(resp.body)["code"]
    assert (await session(simsrv, code))["openid"] == simsrv.sim.openid_for(MP, "dave")


async def test_the_openid_pays_and_a_made_up_or_foreign_one_is_refused(simsrv):
    openid = (await session(simsrv, await code_for(simsrv, "erin")))["openid"]
    paid = await simsrv.unified("mp-login-1", trade_type="JSAPI", appid=MP, openid=openid, product_id=None)
    assert paid["result_code"] == "SUCCESS", paid
    for wrong in ("oMadeUpOpenid0000000000000000", simsrv.sim.openid_for(OA, "erin")):
        refused = await simsrv.unified(f"mp-login-{wrong[-4:]}", trade_type="JSAPI", appid=MP, openid=wrong,
                                       product_id=None)
        assert (refused["result_code"], refused["err_code"], refused["err_code_des"]) == (
            "FAIL", "PARAM_ERROR", "appid和openid不匹配")


async def test_faults_reach_jscode2session(simsrv):
    await simsrv.post_json("/_sim/faults", {"endpoint": "sns/jscode2session", "kind": "systemerror"})
    assert (await session(simsrv, await code_for(simsrv)))["errcode"] == -1


async def test_unused_codes_survive_a_restart(tmp_path):
    state = tmp_path / "sim.json"
    first = Simulator(make_config(), clock=FakeClock(START), state_path=state)
    code = first.mini_program.login(MP, "frank")
    await first.state_file.save()
    second = Simulator(make_config(), clock=FakeClock(START), state_path=state)
    reply = second.mini_program.exchange(MP, SECRET, code, "authorization_code")
    assert reply["openid"] == first.openid_for(MP, "frank")


async def test_an_independent_client_wechatpy_trades_the_code(simsrv):
    # A token handed in, so it never fetches one (its token URL is fixed to WeChat's own host).
    client = WeChatClient(MP, SECRET, access_token="unused-by-jscode2session")
    client.API_BASE_URL = client.wxa.API_BASE_URL = simsrv.base + "/"
    code = await code_for(simsrv, "grace")
    reply = await asyncio.to_thread(client.wxa.code_to_session, code)
    assert reply["openid"] == simsrv.sim.openid_for(MP, "grace")
    with pytest.raises(WeChatClientException) as refused:
        await asyncio.to_thread(client.wxa.code_to_session, code)
    assert refused.value.errcode == 40163
