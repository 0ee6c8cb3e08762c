"""A Mini Program shopper in sandbox, end to end over real HTTP: ``wx.login`` (the
simulator plays the Mini Program runtime), ``POST /api/mini-program/sessions``
(the server trades the code at the simulated ``sns/jscode2session``), the
payment call with that openid, ``wx.requestPayment`` (the simulator checks
the paySign) and the confirmed payment. An openid WeChat refuses is the
merchant's 400 ``openid_rejected``, never a 502."""
from __future__ import annotations

import asyncio
import base64
import logging
import re
import subprocess
from pathlib import Path

import pytest
from tornado.web import create_signed_value

from wxpay.simulator import demo

from .browser import Browser, as_json
from .conftest import API_TOKEN, start_server
from .journey import create_checkout, prepay, sign_in_with_wechat, wait_status
from .live import start_live

MP = demo.MINI_PROGRAM_APPID
README = Path(__file__).resolve().parents[2] / "README.md"

# Settings per API version the server speaks to WeChat.
API_VERSIONS: dict[str, dict] = {"v2": {}, "v3": {"wechat.api_version": "v3"}}


@pytest.fixture(params=sorted(API_VERSIONS))
async def server(request, tmp_path):
    instance = await start_server(tmp_path, **API_VERSIONS[request.param])
    try:
        yield instance
    finally:
        await instance.stop(grace=2)


def merchant_of(instance) -> Browser:
    b = Browser(f"http://127.0.0.1:{instance.port}")
    b.token_headers = {"Authorization": f"Bearer {API_TOKEN}"}  # type: ignore[attr-defined]
    return b


async def wx_login(b: Browser, user: str = "alice", **extra: str) -> str:
    """What wx.login() gives the Mini Program page; the simulator plays that runtime."""
    r = await b.post("/_wechat/_sim/wx-login", json_body={"user": user, **extra})
    assert r.code == 200, r.body
    return as_json(r)["code"]


async def sessions(b: Browser, body) -> tuple[int, dict]:
    r = await b.post("/api/mini-program/sessions", json_body=body, headers=b.token_headers)
    return r.code, as_json(r)


def jscode2session_calls(instance) -> int:
    rows = [r for r in instance.services.call_stats.snapshot() if r["endpoint"] == "sns/jscode2session"]
    return rows[0]["calls_total"] if rows else 0


async def test_a_mini_program_shopper_signs_in_and_pays(server):
    merchant = merchant_of(server)
    code = await wx_login(merchant, "alice")
    status, login = await sessions(merchant, {"code": code})
    assert status == 200, login
    assert login == {"openid": server.simulator.openid_for(MP, "alice"),
                     "unionid": server.simulator.unionid_for("alice")}  # no session_key unless asked

    checkout = await create_checkout(merchant, 2600)
    r = await merchant.post(f"/api/checkouts/{checkout['id']}/payment", headers=merchant.token_headers,
                            json_body={"client": "mini_program", "openid": login["openid"], "client_ip": "203.0.113.7"})
    assert r.code == 200, r.body
    request_payment = as_json(r)["request_payment"]
    # The Mini Program calls wx.requestPayment(request_payment); the simulated WeChat checks it and pays.
    prepay_id = request_payment["package"].removeprefix("prepay_id=")
    paid = as_json(await merchant.post("/_wechat/_sim/pay", json_body={
        "prepay_id": prepay_id, "outcome": "ok", "payload": request_payment}))
    assert paid["ok"] and paid["result"] == {"errMsg": "requestPayment:ok"}, paid
    await wait_status(merchant, checkout["id"], "paid")
    order = server.simulator.pay.order_by_prepay(prepay_id)
    assert (order.appid, order.openid, order.trade_type) == (MP, login["openid"], "JSAPI")

    # The code was traded: a second exchange is the merchant's 400, with a next step.
    status, again = await sessions(merchant, {"code": code})
    assert (status, again["code"]) == (400, "login_code_already_used") and "wx.login" in again["message"]


async def test_an_openid_wechat_refuses_is_a_400_and_the_checkout_stays_payable(server):
    merchant = merchant_of(server)
    checkout = await create_checkout(merchant, 990)
    path = f"/api/checkouts/{checkout['id']}/payment"
    for wrong in ("oMadeUpOpenid0000000000000000", server.simulator.openid_for(demo.OFFICIAL_ACCOUNT_APPID, "bob")):
        r = await merchant.post(path, headers=merchant.token_headers,
                                json_body={"client": "mini_program", "openid": wrong})
        assert r.code == 400, r.body
        body = as_json(r)
        assert body["code"] == "openid_rejected" and "/api/mini-program/sessions" in body["message"]
    orders = await server.services.orders.for_checkout(checkout["id"])
    assert [(o.state, o.failure) for o in orders] == [("failed", "openid_mismatch")] * 2
    # The right openid still pays.
    _, login = await sessions(merchant, {"code": await wx_login(merchant, "bob")})
    r = await merchant.post(path, headers=merchant.token_headers,
                            json_body={"client": "mini_program", "openid": login["openid"]})
    assert r.code == 200, r.body


async def test_the_session_key_only_when_asked_and_never_in_the_log(server, caplog):
    caplog.set_level(logging.DEBUG)
    merchant = merchant_of(server)
    code = await wx_login(merchant, "carol")
    status, login = await sessions(merchant, {"code": code, "include_session_key": True})
    assert status == 200 and len(base64.b64decode(login["session_key"], validate=True)) == 16
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert login["session_key"] not in logged and code not in logged


@pytest.mark.parametrize("body, status, code", [
    ({}, 400, "invalid_login_code"),
    ({"code": ""}, 400, "invalid_login_code"),
    ({"code": "has space"}, 400, "invalid_login_code"),
    ({"code": "c" * 129}, 400, "invalid_login_code"),
    ({"code": 12345}, 400, "invalid_login_code"),
    ({"code": "abc", "include_session_key": "yes"}, 400, "invalid_include_session_key"),
    ({"code": "abc", "openid": "o1"}, 400, "unknown_field"),
    (["abc"], 400, "invalid_body"),
])
async def test_a_malformed_request_costs_no_call_to_wechat(running, merchant, body, status, code):
    before = jscode2session_calls(running)
    got_status, got = await sessions(merchant, body)
    assert (got_status, got["code"]) == (status, code)
    assert jscode2session_calls(running) == before


async def test_wechats_refusals_each_have_a_code_the_merchant_can_act_on(running, merchant):
    status, body = await sessions(merchant, {"code": "0" * 32})
    assert (status, body["code"]) == (400, "login_code_rejected")
    status, body = await sessions(merchant, {"code": await wx_login(merchant, "dan", risk="high")})
    assert (status, body["code"]) == (403, "login_blocked_by_wechat")
    running.simulator.mini_program.per_minute = 0
    r = await merchant.post("/api/mini-program/sessions", json_body={"code": await wx_login(merchant, "eve")},
                            headers=merchant.token_headers)
    assert (r.code, as_json(r)["code"], r.headers["Retry-After"]) == (429, "too_many_logins", "60")
    running.simulator.mini_program.per_minute = 100
    await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "sns/jscode2session", "kind": "http500"})
    status, body = await sessions(merchant, {"code": await wx_login(merchant, "eve")})
    assert (status, body["code"]) == (502, "wechat_unreachable")
    r = await Browser(merchant.base).post("/api/mini-program/sessions", json_body={"code": "abc"})
    assert r.code == 401


async def test_without_a_mini_program_configured_the_call_says_so(tmp_path):
    live = await start_live(tmp_path)  # no wechat.mini_program_appid; nothing reaches WeChat
    try:
        b = Browser(f"http://127.0.0.1:{live.port}")
        r = await b.post("/api/mini-program/sessions", json_body={"code": "abc"},
                         headers={"Authorization": "Bearer " + "t" * 40})
        assert (r.code, as_json(r)["code"]) == (400, "mini_program_not_configured")
        assert live.services.call_stats.snapshot() == []
    finally:
        await live.stop(grace=1)


async def test_the_page_forgets_a_sign_in_wechat_refuses(running, base_url, merchant):
    """A shopper's openid cookie from another appid (the merchant changed wechat.appid):
    400 openid_rejected, the cookie is cleared, and the reload signs in afresh."""
    checkout = await create_checkout(merchant, 700)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    foreign = running.simulator.openid_for(MP, "frank")
    secret = running.settings.server.cookie_secret
    shopper.cookies["wx_openid"] = create_signed_value(secret, "wx_openid", foreign).decode()
    r = await shopper.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
    assert (r.code, as_json(r)["code"]) == (400, "openid_rejected")
    assert "wx_openid" not in shopper.cookies
    again, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    assert (await prepay(again, checkout["id"]))["bridge"]


def readme_walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### A Mini Program in sandbox"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_the_readme_walkthrough_is_there_and_runnable_shell():
    script = readme_walkthrough()
    assert "/api/mini-program/sessions" in script and "/_wechat/_sim/wx-login" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


async def test_the_readme_walkthrough_runs_as_written(running, base_url):
    """The README's curl walkthrough, run by bash against this server (its port for 8000)."""
    script = readme_walkthrough().replace("localhost:8000", base_url)
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, (out.decode(), err.decode())
    lines = out.decode().splitlines()
    assert lines[-1] == "paid", out.decode()
    openid = running.simulator.openid_for(MP, "alice")
    assert any(openid in line for line in lines)
