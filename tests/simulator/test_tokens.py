"""Simulated cgi-bin/token, stable_token and getticket over real HTTP (digest §15)."""
from __future__ import annotations

import asyncio
import json

import pytest
from wechatpy.client import WeChatClient
from wechatpy.exceptions import WeChatClientException

from wxpay.simulator import demo
from wxpay.simulator.tokens import TokenState

from .oauth_token_server import SECOND_OA_APPID, SECOND_OA_SECRET, make_config, make_sim, start, stop

APPID, SECRET = demo.OFFICIAL_ACCOUNT_APPID, demo.OFFICIAL_ACCOUNT_SECRET
QUOTA = 5


@pytest.fixture
async def wx():
    running = await start(make_sim(make_config(token_daily_quota=QUOTA)))
    yield running
    await stop(running)


async def fetch(wx, appid=APPID, secret=SECRET, grant_type="client_credential") -> dict:
    return await wx.get_json("/cgi-bin/token", {"grant_type": grant_type, "appid": appid, "secret": secret})


async def stable(wx, force=None, appid=APPID, secret=SECRET, grant_type="client_credential") -> dict:
    body = {"grant_type": grant_type, "appid": appid, "secret": secret}
    if force is not None:
        body["force_refresh"] = force
    return await wx.post_json("/cgi-bin/stable_token", body)


async def ticket(wx, token, type="jsapi") -> dict:
    return await wx.get_json("/cgi-bin/ticket/getticket", {"access_token": token, "type": type})


# -- cgi-bin/token ---------------------------------------------------------------


async def test_token_success_shape(wx):
    body = await fetch(wx)
    assert set(body) == {"access_token", "expires_in"}
    assert body["expires_in"] == 7200
    assert wx.sim.tokens.check(body["access_token"]) == 0
    assert wx.sim.tokens.owner(body["access_token"]) == APPID


@pytest.mark.parametrize(
    "change, errcode",
    [
        ({"appid": "wx0000000000000bad"}, 40013),
        ({"appid": ""}, 41002),
        ({"secret": "wrong"}, 40125),
        ({"secret": ""}, 41004),
        ({"grant_type": "authorization_code"}, 40002),
        ({"grant_type": ""}, 40002),
    ],
)
async def test_token_errors(wx, change, errcode):
    body = await fetch(wx, **change)
    assert body["errcode"] == errcode and set(body) == {"errcode", "errmsg"}


async def test_new_fetch_cuts_previous_token_to_five_minutes(wx):
    first = (await fetch(wx))["access_token"]
    wx.clock.advance(60)
    second = (await fetch(wx))["access_token"]
    assert first != second
    wx.clock.advance(299)
    assert (await ticket(wx, first))["errcode"] == 0  # overlap: both work
    assert (await ticket(wx, second))["errcode"] == 0
    wx.clock.advance(1)
    assert await ticket(wx, first) == {
        "errcode": 40001,
        "errmsg": "invalid credential, access_token is invalid or not latest",
    }
    assert (await ticket(wx, second))["errcode"] == 0


async def test_fetch_for_one_app_leaves_another_apps_token_alone(wx):
    mine = (await fetch(wx))["access_token"]
    await fetch(wx, SECOND_OA_APPID, SECOND_OA_SECRET)
    wx.clock.advance(3600)
    assert wx.sim.tokens.check(mine) == 0


async def test_token_expires_after_7200_seconds(wx):
    token = (await fetch(wx))["access_token"]
    wx.clock.advance(7199)
    assert wx.sim.tokens.check(token) == 0
    wx.clock.advance(1)
    assert wx.sim.tokens.check(token) == 42001
    assert await ticket(wx, token) == {"errcode": 42001, "errmsg": "access_token expired"}


async def test_daily_quota_then_45009_until_the_china_day_turns(wx):
    # The clock starts at 23:00 China time (15:00 UTC).
    for _ in range(QUOTA):
        assert "access_token" in await fetch(wx)
    assert await fetch(wx) == {"errcode": 45009, "errmsg": "reach max api daily quota limit"}
    other = await fetch(wx, SECOND_OA_APPID, SECOND_OA_SECRET)
    assert "access_token" in other  # the quota is per app
    wx.clock.advance(minutes=59, seconds=59)
    assert (await fetch(wx))["errcode"] == 45009
    wx.clock.advance(1)  # 00:00 in China, still the same UTC day
    assert wx.clock.now().day == 1
    assert "access_token" in await fetch(wx)


async def test_refused_fetch_keeps_the_current_token(wx):
    for _ in range(QUOTA):
        last = (await fetch(wx))["access_token"]
    assert (await fetch(wx))["errcode"] == 45009
    wx.clock.advance(600)
    assert wx.sim.tokens.check(last) == 0


async def test_bad_secret_does_not_use_quota(wx):
    for _ in range(QUOTA + 2):
        assert (await fetch(wx, secret="wrong"))["errcode"] == 40125
    assert "access_token" in await fetch(wx)


# -- cgi-bin/stable_token ----------------------------------------------------------


async def test_stable_normal_mode_returns_the_same_token_while_valid(wx):
    first = await stable(wx)
    assert set(first) == {"access_token", "expires_in"} and first["expires_in"] == 7200
    wx.clock.advance(1000)
    again = await stable(wx, force=False)
    assert again == {"access_token": first["access_token"], "expires_in": 6200}


async def test_stable_rotates_five_minutes_early_with_overlap(wx):
    first = (await stable(wx))["access_token"]
    seen = []
    for step in (3000, 3000, 899, 1):  # t = 3000, 6000, 6899, 6900
        wx.clock.advance(step)
        seen.append(await stable(wx))
    assert all(reply["expires_in"] >= 300 for reply in seen)
    assert [r["access_token"] == first for r in seen] == [True, True, True, False]
    second = seen[-1]["access_token"]
    assert seen[-1]["expires_in"] == 7200
    wx.clock.advance(299)
    assert wx.sim.tokens.check(first) == 0 and wx.sim.tokens.check(second) == 0
    wx.clock.advance(1)
    assert wx.sim.tokens.check(first) == 42001 and wx.sim.tokens.check(second) == 0


async def test_stable_and_basic_token_spaces_are_separate(wx):
    stable_token = (await stable(wx))["access_token"]
    basic = (await fetch(wx))["access_token"]
    assert stable_token != basic
    await fetch(wx)  # cuts the basic token, not the stable one
    wx.clock.advance(600)
    assert wx.sim.tokens.check(stable_token) == 0
    assert wx.sim.tokens.check(basic) == 40001
    assert (await ticket(wx, stable_token))["errcode"] == 0


async def test_stable_does_not_use_the_token_quota(wx):
    for _ in range(QUOTA + 3):
        assert "access_token" in await stable(wx)
    assert "access_token" in await fetch(wx)


async def test_stable_force_refresh_invalidates_the_previous_token(wx):
    old = (await stable(wx))["access_token"]
    forced = await stable(wx, force=True)
    assert forced["access_token"] != old and forced["expires_in"] == 7200
    assert wx.sim.tokens.check(old) == 40001
    assert (await stable(wx))["access_token"] == forced["access_token"]


async def test_stable_force_refresh_needs_30_seconds_between(wx):
    first = (await stable(wx, force=True))["access_token"]
    wx.clock.advance(29)
    assert (await stable(wx, force=True))["access_token"] == first  # no refresh
    wx.clock.advance(1)
    assert (await stable(wx, force=True))["access_token"] != first


async def test_stable_force_refresh_at_most_20_a_day(wx):
    tokens = set()
    for _ in range(21):
        tokens.add((await stable(wx, force=True))["access_token"])
        wx.clock.advance(30)
    assert len(tokens) == 20  # the 21st call returned the 20th token
    assert wx.sim.tokens.view()["apps"][APPID]["stable_force_today"] == 20


async def test_stable_errors(wx):
    assert (await stable(wx, secret="wrong"))["errcode"] == 40125
    assert (await stable(wx, appid="wx0000000000000bad"))["errcode"] == 40013
    assert (await stable(wx, grant_type="refresh_token"))["errcode"] == 40002
    assert (await stable(wx, force="yes"))["errcode"] == 40097
    assert (await wx.post_json("/cgi-bin/stable_token", None, raw=b"appid=x&secret=y"))["errcode"] == 47001
    assert (await wx.post_json("/cgi-bin/stable_token", [1, 2]))["errcode"] == 47001
    assert (await wx.get_json("/cgi-bin/stable_token", {"appid": APPID}))["errcode"] == 43002


# -- cgi-bin/ticket/getticket -----------------------------------------------------------


async def test_ticket_shape_and_reuse(wx):
    token = (await fetch(wx))["access_token"]
    first = await ticket(wx, token)
    assert set(first) == {"errcode", "errmsg", "ticket", "expires_in"}
    assert first["errcode"] == 0 and first["errmsg"] == "ok" and first["expires_in"] == 7200
    wx.clock.advance(100)
    second = await ticket(wx, token)
    assert second["ticket"] == first["ticket"] and second["expires_in"] == 7100
    assert wx.sim.tokens.ticket_owner(first["ticket"]) == APPID
    wx.clock.advance(7100)
    assert wx.sim.tokens.ticket_owner(first["ticket"]) is None


async def test_ticket_is_renewed_near_expiry(wx):
    first = await ticket(wx, (await fetch(wx))["access_token"])
    wx.clock.advance(6900)
    renewed = await ticket(wx, (await fetch(wx))["access_token"])
    assert renewed["ticket"] != first["ticket"] and renewed["expires_in"] == 7200


async def test_ticket_errors(wx):
    token = (await fetch(wx))["access_token"]
    assert (await ticket(wx, "not-a-token"))["errcode"] == 40001
    assert (await ticket(wx, ""))["errcode"] == 41001
    assert (await ticket(wx, token, type="bogus"))["errcode"] == 40097
    card = await ticket(wx, token, type="wx_card")
    assert card["errcode"] == 0 and card["ticket"] != (await ticket(wx, token))["ticket"]
    # A ticket is not an access token.
    assert (await ticket(wx, card["ticket"]))["errcode"] == 40001


# -- inspection, persistence, faults ---------------------------------------------------------


async def test_sim_tokens_view_records_issuance_without_token_values(wx):
    token = (await fetch(wx))["access_token"]
    stable_token = (await stable(wx))["access_token"]
    jsapi = (await ticket(wx, token))["ticket"]
    for _ in range(QUOTA):
        await fetch(wx)
    resp = await wx.get("/_sim/tokens")
    assert resp.code == 200
    text = resp.body.decode()
    view = json.loads(text)
    for value in (token, stable_token, jsapi):
        assert value not in text
    kinds = [(e["kind"], e["endpoint"], e["outcome"]) for e in reversed(view["issued"])]
    assert kinds[:3] == [
        ("access_token", "cgi-bin/token", "issued"),
        ("stable_token", "cgi-bin/stable_token", "issued"),
        ("jsapi_ticket", "cgi-bin/ticket/getticket", "issued"),
    ]
    assert kinds[-1] == ("access_token", "cgi-bin/token", "refused 45009")
    assert all(e["appid"] == APPID and e["time"].startswith("2026-01-01T15:00") for e in view["issued"])
    app = view["apps"][APPID]
    assert app["calls_today"] == QUOTA and app["daily_quota"] == QUOTA
    assert app["access_token"]["expires_in"] == 7200 and app["jsapi_ticket"]["token"].endswith("…")
    assert view["apps"][SECOND_OA_APPID]["access_token"] is None
    assert view["china_day"] == "2026-01-01" and "oauth" in view


async def test_state_survives_to_json_round_trip(wx):
    for _ in range(QUOTA):
        token = (await fetch(wx))["access_token"]
    stable_token = (await stable(wx, force=True))["access_token"]
    jsapi = (await ticket(wx, token))["ticket"]
    snapshot = json.loads(json.dumps(wx.sim.tokens.to_json()))
    wx.sim.tokens = TokenState.from_json(snapshot, wx.sim.config, wx.sim.clock)
    assert wx.sim.tokens.check(token) == 0
    assert (await fetch(wx))["errcode"] == 45009
    assert (await stable(wx))["access_token"] == stable_token
    assert (await ticket(wx, token))["ticket"] == jsapi
    assert len(wx.sim.tokens.view()["issued"]) == QUOTA + 4


async def test_issuing_endpoints_mark_the_state_changed(wx):
    token = (await fetch(wx))["access_token"]
    await stable(wx)
    await ticket(wx, token)
    assert wx.sim.changes == 3
    await wx.get("/_sim/tokens")
    assert wx.sim.changes == 3


async def test_faults_apply_to_token_endpoints(wx):
    wx.sim.faults.add("cgi-bin/token", "systemerror")
    assert await fetch(wx) == {"errcode": -1, "errmsg": "system error"}
    wx.sim.faults.add("cgi-bin/ticket/getticket", "http500")
    resp = await wx.get("/cgi-bin/ticket/getticket", {"access_token": "x", "type": "jsapi"})
    assert resp.code == 500
    wx.sim.faults.add("*", "http500", count=None)
    assert (await wx.get("/_sim/tokens")).code == 200  # the inspection view is never faulted


# -- an independent client: wechatpy's WeChatClient --------------------------------------------


class SimWeChatClient(WeChatClient):
    """wechatpy hard-codes the token URL in fetch_access_token; point it at the simulator."""

    def __init__(self, base: str, appid: str, secret: str) -> None:
        super().__init__(appid, secret)
        self.API_BASE_URL = base + "/cgi-bin/"

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


async def test_wechatpy_client_token_and_ticket(wx):
    client = SimWeChatClient(wx.base, APPID, SECRET)
    token = await asyncio.to_thread(lambda: client.access_token)
    assert wx.sim.tokens.check(token) == 0
    reply = await asyncio.to_thread(client.jsapi.get_ticket)
    assert reply["errcode"] == 0 and wx.sim.tokens.ticket_owner(reply["ticket"]) == APPID


async def test_wechatpy_client_sees_45009_and_40125(wx):
    client = SimWeChatClient(wx.base, APPID, SECRET)
    for _ in range(QUOTA):
        await asyncio.to_thread(client.fetch_access_token)
    with pytest.raises(WeChatClientException) as quota:
        await asyncio.to_thread(client.fetch_access_token)
    assert quota.value.errcode == 45009
    wrong = SimWeChatClient(wx.base, SECOND_OA_APPID, "wrong")
    with pytest.raises(WeChatClientException) as secret:
        await asyncio.to_thread(wrong.fetch_access_token)
    assert secret.value.errcode == 40125


async def test_wechatpy_client_recovers_from_a_superseded_token(wx):
    client = SimWeChatClient(wx.base, APPID, SECRET)
    await asyncio.to_thread(client.fetch_access_token)
    stale = client.session.get(client.access_token_key)
    await fetch(wx)  # someone else fetched: the client's token is cut to 5 minutes
    wx.clock.advance(300)
    reply = await asyncio.to_thread(client.jsapi.get_ticket)  # 40001 → refetch → retry
    assert reply["errcode"] == 0
    assert client.session.get(client.access_token_key) != stale
