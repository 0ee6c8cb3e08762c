"""Every HTML error a person can meet, over real HTTP: the template's page, under
the pages' CSP whichever handler failed, with human words in the page's
language and the code small for support; never the API's message, never a
script or an inline style. (How they look: tests/browser/test_shopper_pages.py.)"""
from __future__ import annotations

import re

import pytest

from handlers.base import PAGE_CSP
from handlers.i18n import strings

from .browser import DESKTOP_UA, WECHAT_UA, Browser
from .live import start_live

ZH, EN = strings("zh"), strings("en")


def check_page(r, status: int, code: str, title: str) -> str:
    text = r.body.decode()
    assert r.code == status, text
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Content-Security-Policy"] == PAGE_CSP
    assert r.headers["Cache-Control"] == "no-store"
    assert "<script" not in text and "style=" not in text and "<style" not in text
    assert re.search(r'<link rel="stylesheet" href="/static/style\.css\?v=[0-9a-f]+">', text)
    assert f'<code id="error-code">{code}</code>' in text
    assert f'<h1 id="error-title">{title}</h1>' in text
    return text


@pytest.mark.parametrize("method, path, status, code, kind", [
    ("GET", "/no/such/page", 404, "not_found", "err_not_found_title"),
    ("GET", "/pay/co_000000000000000000000000", 404, "checkout_not_found", "err_not_found_title"),
    ("GET", "/shop/buy", 405, "method_not_allowed", "err_bad_request_title"),
    ("POST", "/shop/buy", 403, "xsrf_invalid", "err_stale_title"),
    ("GET", "/oauth/callback?code=c0de&state=5tate", 403, "oauth_state_missing", "err_signin_title"),
    ("GET", "/status", 401, "admin_auth_required", "err_admin_title"),
])
async def test_each_error_page_in_both_languages(running, base_url, method, path, status, code, kind):
    for headers, t in (({}, ZH), ({"Accept-Language": "en-US,en;q=0.9"}, EN)):
        r = await Browser(base_url, WECHAT_UA).request(method, path, headers=headers,
                                                       body=b"sku=mug" if method == "POST" else None)
        text = check_page(r, status, code, t[kind])
        assert f'<html lang="{t["html_lang"]}">' in text
        assert "Nothing here" not in text and "No checkout" not in text  # the API's words stay in the API
    if code == "admin_auth_required":
        assert r.headers["WWW-Authenticate"].startswith("Basic")  # the browser still asks for the password


async def test_the_store_away_is_a_503_page_with_a_reload(running, base_url):
    await running.services.store.close()
    r = await Browser(base_url, DESKTOP_UA).get("/pay/co_000000000000000000000000?lang=en")
    text = check_page(r, 503, "store_unavailable", EN["err_unavailable_title"])
    assert 'href="/pay/co_000000000000000000000000?lang=en">' + EN["reload"] in text


async def test_a_handler_that_is_no_page_still_answers_with_the_page_and_its_csp(tmp_path):
    live = await start_live(tmp_path, **{"shop.name": "Lu's Tea House"})
    try:
        r = await Browser(f"http://127.0.0.1:{live.port}").get("/_sandbox/bridge.js")  # 404 outside sandbox
        text = check_page(r, 404, "not_found", ZH["err_not_found_title"])
        assert "Lu&#x27;s Tea House" in text
    finally:
        await live.stop(grace=1)
