"""What a person sees when a page cannot be served: words and a next step, not a code.

Every HTML error (a pay link that does not exist, a sign-in WeChat did not
complete, too many attempts, our store or WeChat away, a bug) is rendered
from ``web/templates/error.html`` in the page's language (``?lang=``, then
Accept-Language, as the pay page chooses) under the pages' own CSP: the
stylesheet, no inline style, no script. The code is shown small, for
support. One table says which kind of trouble each code is; the status
decides for codes it does not name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.oauth import safe_next

from .i18n import page_strings, pick_language


@dataclass(frozen=True)
class Kind:
    """One kind of trouble: its strings (keys of web/strings.json), icon and next step."""

    title: str
    text: str
    icon: str  # "bad" | "neutral" | "wait"
    # "reload": this page again (GET only); "retry": the page a failed sign-in was for. On the
    # sign-in callback any action is "retry": reloading it would replay WeChat's single-use code.
    action: str | None = None


KINDS: dict[str, Kind] = {
    "not_found": Kind("err_not_found_title", "err_not_found_text", "neutral"),
    "signin": Kind("err_signin_title", "err_signin_text", "wait", "retry"),
    "busy": Kind("err_busy_title", "err_busy_text", "wait", "reload"),
    "unavailable": Kind("err_unavailable_title", "err_unavailable_text", "bad", "reload"),
    "internal": Kind("err_internal_title", "err_internal_text", "bad", "reload"),
    "stale_form": Kind("err_stale_title", "err_stale_text", "neutral", "reload"),
    "admin": Kind("err_admin_title", "err_admin_text", "neutral"),
    "expired": Kind("expired_title", "expired_text", "neutral"),
    "closed": Kind("closed_title", "closed_text", "neutral"),
    "bad_request": Kind("err_bad_request_title", "err_bad_request_text", "bad"),
}

BY_CODE = {
    "not_found": "not_found",
    "checkout_not_found": "not_found",
    "product_not_found": "not_found",
    "openid_required": "signin",
    "openid_rejected": "signin",
    "xsrf_invalid": "stale_form",
    "admin_auth_required": "admin",
    "checkout_expired": "expired",
    "checkout_closed": "closed",
    "order_not_found": "internal",
}


def kind_of(code: str, status: int) -> Kind:
    if code in BY_CODE:
        return KINDS[BY_CODE[code]]
    if code.startswith("oauth_"):  # every way a WeChat sign-in can fail: sign in afresh
        return KINDS["signin"]
    if status == 404:
        return KINDS["not_found"]
    if status == 429:
        return KINDS["busy"]
    if status == 500:
        return KINDS["internal"]
    if status >= 500:
        return KINDS["unavailable"]
    return KINDS["bad_request"]


def wait_text(t: dict[str, str], seconds: int | None) -> str:
    """"30 秒" / "2 minutes": how long to wait, rounded up to whole minutes from 90 s on."""
    if seconds is None or seconds < 1:
        return t["wait_moment"]
    if seconds == 1:
        return t["wait_one_second"]
    if seconds < 90:
        return t["wait_seconds"].replace("{n}", str(seconds))
    return t["wait_minutes"].replace("{n}", str(-(-seconds // 60)))


def page_values(
    *, status: int, code: str, lang_query: str | None, accept_language: str | None, method: str, uri: str,
    retry_path: str | None, retry_after_s: int | None, shop_name: str,
) -> dict[str, Any]:
    """Everything error.html shows, in the chosen language."""
    t = page_strings(pick_language(lang_query, accept_language))
    kind = kind_of(code, status)
    href = None
    if kind.action and retry_path:  # a sign-in that failed: reloading would replay its code; start afresh
        href, label = safe_next(retry_path), t["err_signin_action"]
    elif kind.action == "reload" and method in ("GET", "HEAD"):
        href, label = safe_next(uri), t["reload"]
    else:
        label = ""
    return {
        "t": t,
        "status": status,
        "code": code,
        "title": t[kind.title],
        "text": t[kind.text].replace("{wait}", wait_text(t, retry_after_s)),
        "icon": kind.icon,
        "action_href": href,
        "action_label": label,
        "shop_name": shop_name,
    }
