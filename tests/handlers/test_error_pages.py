"""Which words an error page shows for which code (handlers/error_pages.py)."""
from __future__ import annotations

import pytest

from handlers.error_pages import BY_CODE, KINDS, kind_of, page_values, wait_text
from handlers.i18n import languages, strings


def test_every_kind_has_its_words_in_every_language():
    for lang in languages():
        t = strings(lang)
        for kind in KINDS.values():
            assert t[kind.title] and t[kind.text]
        assert t["err_signin_action"] and t["reload"] and t["err_support"]
    assert set(BY_CODE.values()) <= set(KINDS)


@pytest.mark.parametrize("code, status, kind", [
    ("checkout_not_found", 404, "not_found"),
    ("not_found", 404, "not_found"),
    ("oauth_code_replayed", 403, "signin"),
    ("oauth_state_missing", 403, "signin"),
    ("oauth_code_expired", 403, "signin"),  # a wxpay code passed through: every oauth_ one
    ("too_many_sign_ins", 429, "busy"),
    ("too_many_login_attempts", 429, "busy"),
    ("store_unavailable", 503, "unavailable"),
    ("wechat_unreachable", 502, "unavailable"),
    ("internal_error", 500, "internal"),
    ("xsrf_invalid", 403, "stale_form"),
    ("admin_auth_required", 401, "admin"),
    ("method_not_allowed", 405, "bad_request"),
    ("invalid_encoding", 400, "bad_request"),
])
def test_codes_map_to_kinds(code, status, kind):
    assert kind_of(code, status) is KINDS[kind]


def test_wait_text_in_both_languages():
    zh, en = strings("zh"), strings("en")
    assert wait_text(zh, 30) == " 30 秒" and wait_text(en, 30) == " 30 seconds"
    assert wait_text(en, 1) == " 1 second"
    assert wait_text(en, 90) == " 2 minutes" and wait_text(en, 600) == " 10 minutes"
    assert wait_text(zh, None) == "片刻" and wait_text(en, 0) == " a moment"


def values(**kw):
    base = dict(status=503, code="store_unavailable", lang_query=None, accept_language=None, method="GET",
                uri="/pay/co_1", retry_path=None, retry_after_s=None, shop_name="茶馆")
    return page_values(**{**base, **kw})


def test_the_next_step_never_leaves_the_site_and_never_replays_a_sign_in():
    assert values()["action_href"] == "/pay/co_1"  # reload a GET
    assert values(method="POST")["action_href"] is None  # a POST is not repeated by a link
    assert values(uri="//evil.example/x")["action_href"] == "/"
    assert values(uri="/\\evil.example")["action_href"] == "/"
    callback = values(uri="/oauth/callback?code=c&state=s", retry_path="/pay/co_1?lang=en")
    assert callback["action_href"] == "/pay/co_1?lang=en" and callback["action_label"] == strings("zh")["err_signin_action"]
    assert values(code="checkout_not_found", status=404)["action_href"] is None  # nothing to retry
    assert values(lang_query="en")["title"] == strings("en")["err_unavailable_title"]
    assert values(accept_language="en-US,en;q=0.9")["t"]["html_lang"] == "en"
