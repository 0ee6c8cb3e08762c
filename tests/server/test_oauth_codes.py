"""A WeChat OAuth code yields an openid once, to the browser whose state
started the sign-in, and its cached result expires. A real sandbox server,
the simulated WeChat over real HTTP, one cookie jar per browser.

The OAuth service's clock is swapped for one the tests move (it is read per
call), so expiry needs no waiting.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import tornado.web

from handlers.i18n import strings
from service.clock import utcnow
from service.models import OAUTH_CODES
from service.oauth import RECORD_TTL, REPEAT_WINDOW

from .browser import WECHAT_UA, Browser
from .journey import create_checkout, query_of

ZH = strings("zh")


class Clock:
    def __init__(self) -> None:
        self.t = utcnow()

    def __call__(self):
        return self.t


def exchanges(running) -> int:
    """How many times the server traded a code at (simulated) WeChat."""
    rows = {r["endpoint"]: r for r in running.services.call_stats.snapshot()}
    row = next((r for name, r in rows.items() if "oauth2/access_token" in name), None)
    return row["calls_total"] if row else 0


def openid_of(running, browser: Browser) -> str | None:
    raw = browser.cookies.get("wx_openid")
    value = raw and tornado.web.decode_signed_value(running.settings.server.cookie_secret, "wx_openid", raw)
    return value.decode() if value else None


async def start_sign_in(base: str, pay_url: str) -> tuple[Browser, str]:
    """Open the pay URL in WeChat and let the simulator answer the authorize
    page: the browser now holds its state cookie and the callback URL."""
    shopper = Browser(base, WECHAT_UA)
    r = await shopper.get(pay_url)
    assert r.code == 302, r.body
    r = await shopper.get(r.headers["Location"])
    assert r.code == 302 and "/oauth/callback?" in r.headers["Location"], r.headers
    return shopper, r.headers["Location"]


def error_code(page) -> str:
    """The code the error page shows small, for support."""
    text = page.body.decode()
    return text.split('<code id="error-code">')[1].split("</code>")[0]


async def test_a_code_replayed_from_another_browser_gets_nothing(running, base_url, merchant):
    checkout = await create_checkout(merchant)
    alice, callback = await start_sign_in(base_url, checkout["pay_url"])
    code, state = query_of(callback)["code"], query_of(callback)["state"]
    r = await alice.get(callback)
    assert r.code == 302 and checkout["pay_url"].endswith(r.headers["Location"])
    assert openid_of(running, alice)

    # Mallory has her own sign-in going (her own signed state cookie) and
    # presents Alice's code with her state, at once (inside any repeat window).
    mallory, _ = await start_sign_in(base_url, checkout["pay_url"])
    mallory_state = mallory.cookies["wx_oauth"]
    own_state = tornado.web.decode_signed_value(
        running.settings.server.cookie_secret, "wx_oauth", mallory_state).decode().split("|")[0]
    page = await mallory.get("/oauth/callback?" + urlencode({"code": code, "state": own_state}))
    assert page.code == 403 and error_code(page) == "oauth_code_replayed"
    assert ZH["err_signin_title"].encode() in page.body and page.headers["Content-Type"].startswith("text/html")
    assert f'href="{urlsplit(checkout["pay_url"]).path}"'.encode() in page.body  # the next step: the pay page
    assert "wx_openid" not in mallory.cookies
    # Alice's whole callback URL in Mallory's browser: the state is not hers.
    mallory2, _ = await start_sign_in(base_url, checkout["pay_url"])
    page = await mallory2.get(callback)
    assert page.code == 403 and error_code(page) == "oauth_state_mismatch"
    # No state cookie at all.
    page = await Browser(base_url, WECHAT_UA).get(callback)
    assert page.code == 403 and error_code(page) == "oauth_state_missing"
    assert exchanges(running) == 1  # none of the replays reached WeChat
    assert state


async def test_the_same_browser_gets_the_result_only_briefly(running, base_url, merchant):
    clock = Clock()
    running.services.oauth.now = clock
    checkout = await create_checkout(merchant)
    shopper, callback = await start_sign_in(base_url, checkout["pay_url"])
    state_cookie = shopper.cookies["wx_oauth"]

    # A double tap: two callbacks at once, one exchange, the same openid.
    twin = Browser(base_url, WECHAT_UA)
    twin.cookies = dict(shopper.cookies)
    first, second = await asyncio.gather(shopper.get(callback), twin.get(callback))
    assert (first.code, second.code) == (302, 302), (first.body, second.body)
    assert openid_of(running, shopper) == openid_of(running, twin) is not None
    assert exchanges(running) == 1

    # The first answer was lost: the browser still holds its state cookie.
    shopper.cookies["wx_oauth"] = state_cookie
    clock.t += REPEAT_WINDOW - timedelta(seconds=1)
    assert (await shopper.get(callback)).code == 302

    shopper.cookies["wx_oauth"] = state_cookie
    clock.t += timedelta(seconds=2)  # past the window: the result is not handed out again
    page = await shopper.get(callback)
    assert page.code == 403 and error_code(page) == "oauth_code_used"
    assert exchanges(running) == 1


async def test_expired_claims_are_refused_and_gone_from_the_store(running, base_url, merchant):
    clock = Clock()
    oauth = running.services.oauth
    oauth.now = clock
    store = running.services.store
    checkout = await create_checkout(merchant)
    first, first_callback = await start_sign_in(base_url, checkout["pay_url"])
    state_cookie = first.cookies["wx_oauth"]
    assert (await first.get(first_callback)).code == 302
    assert await store.count(OAUTH_CODES) == 2  # the code's claim and its state's

    clock.t += RECORD_TTL
    # The same browser once the record has expired: refused, without asking WeChat.
    first.cookies["wx_oauth"] = state_cookie
    page = await first.get(first_callback)
    assert page.code == 403 and error_code(page) == "oauth_code_used"
    assert exchanges(running) == 1

    # The next sign-in prunes what expired before it claims its own code.
    second, second_callback = await start_sign_in(base_url, checkout["pay_url"])
    assert (await second.get(second_callback)).code == 302
    remaining = await store.find(OAUTH_CODES, limit=0)
    assert len(remaining) == 2 and all(doc["expires_at"] > clock.t for doc in remaining)
    assert all("openid" not in doc or doc["expires_at"] > clock.t for doc in remaining)
    assert exchanges(running) == 2


async def test_pruning_is_bounded_per_sign_in_and_keeps_up(running, base_url, merchant):
    clock = Clock()
    oauth = running.services.oauth
    oauth.now = clock
    store = running.services.store
    for i in range(45):  # claims left over from earlier sign-ins
        await store.insert(OAUTH_CODES, {"_id": f"old{i}", "status": "done", "state": "x", "openid": "o",
                                         "at": clock.t, "expires_at": clock.t + RECORD_TTL})
    clock.t += RECORD_TTL
    assert await oauth.prune() == 20 and await oauth.prune() == 20 and await oauth.prune() == 5
    assert await oauth.prune() == 0 and await store.count(OAUTH_CODES) == 0


async def test_a_state_is_good_for_one_code(running, base_url, merchant):
    """One signed state cookie replayed with made-up codes: before, each one
    cost a call to WeChat and a stored claim."""
    checkout = await create_checkout(merchant)
    shopper, callback = await start_sign_in(base_url, checkout["pay_url"])
    state_cookie, state = shopper.cookies["wx_oauth"], query_of(callback)["state"]
    assert (await shopper.get(callback)).code == 302
    stored = await running.services.store.count(OAUTH_CODES)
    for i in range(5):
        shopper.cookies["wx_oauth"] = state_cookie
        page = await shopper.get("/oauth/callback?" + urlencode({"code": f"made-up-{i}", "state": state}))
        assert page.code == 403 and error_code(page) == "oauth_state_used"
    assert exchanges(running) == 1
    assert await running.services.store.count(OAUTH_CODES) == stored


async def test_sign_ins_per_source_are_bounded(tmp_path):
    from .conftest import start_server

    running = await start_server(tmp_path, **{"oauth.sign_ins_per_ip": 2})
    try:
        base_url = f"http://127.0.0.1:{running.port}"
        merchant = Browser(base_url)
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]
        checkout = await create_checkout(merchant)
        for _ in range(2):
            shopper, callback = await start_sign_in(base_url, checkout["pay_url"])
            state_cookie = shopper.cookies["wx_oauth"]
            assert (await shopper.get(callback)).code == 302
        for i in range(3):  # a used state replayed with other codes costs no sign-in of the quota
            shopper.cookies["wx_oauth"] = state_cookie
            page = await shopper.get("/oauth/callback?" + urlencode({"code": f"x{i}", "state": query_of(callback)["state"]}))
            assert error_code(page) == "oauth_state_used"
        shopper, callback = await start_sign_in(base_url, checkout["pay_url"])
        page = await shopper.get(callback)
        assert page.code == 429 and error_code(page) == "too_many_sign_ins"
        assert int(page.headers["Retry-After"]) >= 1
        assert exchanges(running) == 2
    finally:
        await running.stop(grace=1)
