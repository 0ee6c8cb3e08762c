"""Hostile input on the merchant API and the page's JSON calls: every refusal
is JSON ``{code, message}`` with the expected code, never a 500 or an HTML
page, and the business state (checkouts, orders, refunds, outbox) does not
change.

The family each case belongs to: digits that ``int()`` takes but we must not
(Unicode digits, whitespace), patterns that let a trailing newline through
(``re.match`` with ``$``), URLs that make ``urlsplit`` raise, strings that
cannot be encoded (lone surrogates) or that reorder or break a line on the
shopper's screen, bodies over the size limit, unknown paths and methods,
missing XSRF tokens. One real sandbox server on loopback.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import pytest
import pytest_asyncio

from tests.server.browser import WECHAT_UA, Browser, as_json

from . import logwatch
from .harness import Client, snapshot, start_server
from .results import record

pytestmark = pytest.mark.asyncio(loop_scope="module")

GOOD = {"amount_fen": 100, "description": "Tea"}


@dataclass
class World:
    c: Client
    paid: dict    # paid and confirmed
    open: dict    # never paid, no order
    native: dict  # prepaid from a desktop (NATIVE)
    limit: int    # server.max_body_bytes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    running = await start_server(tmp_path_factory.mktemp("api"))
    try:
        c = Client(running)
        paid, res = await c.paid_at_wechat_only(3000)
        r = await c.notify(c.signed_notify(res["sim"]))
        assert r.code == 200 and b"SUCCESS" in r.body, r.body
        opened = await c.checkout(700)
        native = await c.checkout(800)
        await c.native_prepay(native["id"])
        yield World(c, paid, opened, native, running.settings.server.max_body_bytes)
    finally:
        await running.stop(grace=1)


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[World], Awaitable[Any]]
    status: int
    code: str


CASES: list[Case] = []


def case(id: str, status: int, code: str):
    def deco(fn):
        CASES.append(Case(id, fn, status, code))
        return fn
    return deco


def slug(path: str) -> str:
    return path.replace("/", "-").strip("-") + ("-slash" if path.endswith("/") else "")


def api(w: World, method: str, path: str, *, body: Any = None, raw: bytes | None = None, headers: dict | None = None,
        token: bool = True):
    hdrs = {**(w.c.auth if token else {}), **(headers or {})}
    if raw is not None:
        return w.c.merchant.client.fetch(w.c.base + path, method=method, body=raw, headers=hdrs, raise_error=False,
                                         request_timeout=30)
    return w.c.merchant.request(method, path, json_body=body, headers=hdrs)


def create(w: World, **changes: Any):
    return api(w, "POST", "/api/checkouts", body={**GOOD, **changes})


def create_raw(w: World, text: str):
    """A JSON body written by hand: ``json.dumps`` cannot write a lone surrogate escape."""
    return api(w, "POST", "/api/checkouts", raw=text.encode())


# -- integers: only ASCII digits, nothing int() tolerates around them ----------------------

for _name, _value in {"arabic-indic-digits": "١٢", "superscript-two": "²", "fullwidth-digits": "１２",
                      "leading-space": " 12", "trailing-newline": "12\n", "plus-sign": "+12", "underscore": "1_0"}.items():
    @case(f"api-list-limit-{_name}", 400, "invalid_limit")
    async def _(w, value=_value):
        return await api(w, "GET", "/api/checkouts?limit=" + quote(value))

    @case(f"api-list-offset-{_name}", 400, "invalid_offset")
    async def _(w, value=_value):
        return await api(w, "GET", "/api/checkouts?offset=" + quote(value))

    @case(f"api-webhooks-limit-{_name}", 400, "invalid_limit")
    async def _(w, value=_value):
        return await api(w, "GET", "/api/webhooks?limit=" + quote(value))


# -- patterns match the whole string: a trailing newline does not pass ----------------------


@case("api-reference-trailing-newline", 400, "invalid_reference")
async def _(w):
    return await create(w, merchant_reference="order-1\n")


@case("api-list-reference-trailing-newline", 400, "invalid_reference")
async def _(w):
    return await api(w, "GET", "/api/checkouts?merchant_reference=" + quote("order-1\n"))


@case("api-list-reference-control-character", 400, "invalid_reference")
async def _(w):
    # Tornado's own argument getters turn controls into spaces; the filter must see the byte as sent.
    return await api(w, "GET", "/api/checkouts?merchant_reference=%0F")


@case("api-refund-no-trailing-newline", 400, "invalid_out_refund_no")
async def _(w):
    return await api(w, "POST", f"/api/checkouts/{w.paid['id']}/refunds", body={"amount_fen": 1, "out_refund_no": "R1\n"})


@case("api-wx-config-api-name-trailing-newline", 400, "invalid_js_api_list")
async def _(w):
    return await api(w, "GET", "/api/wx-config?url=" + quote("https://shop.example/p") + "&jsApiList=" + quote("chooseWXPay\n"))


@case("api-list-status-trailing-newline", 400, "invalid_status")
async def _(w):
    return await api(w, "GET", "/api/checkouts?status=" + quote("paid\n"))


# -- text shown to the shopper or sent to WeChat: encodable, one line, no reordering ---------

for _field, _code in (("description", "invalid_description"), ("attach", "invalid_attach")):
    for _name, _escape in {"lone-surrogate": "\\ud800", "low-surrogate": "\\udfff", "rtl-override": "\\u202e",
                           "ltr-embedding": "\\u202a", "rtl-isolate": "\\u2067", "line-separator": "\\u2028",
                           "paragraph-separator": "\\u2029", "next-line-c1": "\\u0085"}.items():
        @case(f"api-{_field}-{_name}", 400, _code)
        async def _(w, field=_field, escape=_escape):
            return await create_raw(w, f'{{"amount_fen": 100, "description": "Tea", "{field}": "a{escape}b"}}')


for _name, _escape in {"lone-surrogate": "\\ud800", "rtl-override": "\\u202e", "line-separator": "\\u2028"}.items():
    @case(f"api-refund-reason-{_name}", 400, "invalid_reason")
    async def _(w, escape=_escape):
        return await api(w, "POST", f"/api/checkouts/{w.paid['id']}/refunds",
                         raw=f'{{"amount_fen": 1, "reason": "a{escape}b"}}'.encode())


@case("api-unknown-field-named-by-a-lone-surrogate", 400, "unknown_field")
async def _(w):
    return await create_raw(w, '{"amount_fen": 100, "description": "Tea", "\\ud800": 1}')


@case("api-unknown-field-named-by-a-bidi-override", 400, "unknown_field")
async def _(w):
    return await create_raw(w, '{"amount_fen": 100, "description": "Tea", "\\u202eevil": 1}')


@case("api-description-surrogate-pair-escaped-is-text", 400, "invalid_description")
async def _(w):
    # A valid pair (an emoji) is text; the same pair with the halves swapped is not.
    return await create_raw(w, '{"amount_fen": 100, "description": "\\ude00\\ud83d"}')


# -- the Mini Program login: a code is visible ASCII, checked before WeChat is asked ------------

for _name, _code in {"space": "abc def", "trailing-newline": "abc\n", "control": "abc\x0f", "fullwidth": "ａｂｃ",
                     "too-long": "c" * 129, "empty": ""}.items():
    @case(f"api-mini-program-login-code-{_name}", 400, "invalid_login_code")
    async def _(w, code=_code):
        return await api(w, "POST", "/api/mini-program/sessions", body={"code": code})


@case("api-mini-program-login-code-lone-surrogate", 400, "invalid_login_code")
async def _(w):
    return await api(w, "POST", "/api/mini-program/sessions", raw=b'{"code": "a\\ud800b"}')


@case("api-mini-program-login-code-wechat-never-issued", 400, "login_code_rejected")
async def _(w):
    return await api(w, "POST", "/api/mini-program/sessions", body={"code": "0" * 32})


@case("api-mini-program-login-flag-not-a-boolean", 400, "invalid_include_session_key")
async def _(w):
    return await api(w, "POST", "/api/mini-program/sessions", body={"code": "abc", "include_session_key": 1})


# -- URLs that make urlsplit raise, or name a port that cannot be ----------------------------

for _name, _url in {"unclosed-ipv6": "http://[::1", "ipv6-garbage": "http://[zz::1]/", "port-too-big": "https://shop.example:99999/",
                    "port-not-a-number": "https://shop.example:http/", "port-negative": "https://shop.example:-1/",
                    "no-host": "https:///path"}.items():
    @case(f"api-return-url-{_name}", 400, "invalid_return_url")
    async def _(w, url=_url):
        return await create(w, return_url=url)

    @case(f"api-wx-config-url-{_name}", 400, "invalid_page_url")
    async def _(w, url=_url):
        return await api(w, "GET", "/api/wx-config?url=" + quote(url, safe=""))


@case("prepay-page-url-unclosed-ipv6", 200, "")
async def _(w):
    desktop = Browser(w.c.base)
    await desktop.get(f"/pay/{w.native['id']}")
    return await desktop.post(f"/pay/{w.native['id']}/prepay", json_body={"page_url": "http://[::1"}, xsrf=True)


# -- the App / Mini Program payload request ---------------------------------------------------

for _name, _ip in {"integer": 3232235777, "boolean": True, "list": ["127.0.0.1"], "scoped-ipv6": "fe80::1%eth0",
                   "trailing-newline": "127.0.0.1\n"}.items():
    @case(f"api-payment-client-ip-{_name}", 400, "invalid_client_ip")
    async def _(w, ip=_ip):
        return await api(w, "POST", f"/api/checkouts/{w.open['id']}/payment", body={"client": "app", "client_ip": ip})


@case("api-payment-unknown-field", 400, "unknown_field")
async def _(w):
    return await api(w, "POST", f"/api/checkouts/{w.open['id']}/payment", body={"client": "app", "amount_fen": 1})


for _name, _openid in {"nul": "o\x00x", "newline": "oUser\n", "space": "o User", "non-ascii": "o用户"}.items():
    @case(f"api-payment-openid-{_name}", 400, "openid_required")
    async def _(w, openid=_openid):
        return await api(w, "POST", f"/api/checkouts/{w.open['id']}/payment",
                         body={"client": "mini_program", "openid": openid, "client_ip": "127.0.0.1"})


# -- bodies over the documented limit ----------------------------------------------------------


def padded(size: int) -> bytes:
    """A valid create request of exactly ``size`` bytes (JSON allows trailing spaces)."""
    body = json.dumps(GOOD).encode()
    return body + b" " * (size - len(body))


@case("api-body-limit-plus-one", 413, "body_too_large")
async def _(w):
    return await api(w, "POST", "/api/checkouts", raw=padded(w.limit + 1))


@case("api-body-one-mib", 413, "body_too_large")
async def _(w):
    return await api(w, "POST", "/api/checkouts", raw=padded(1 << 20))


@case("api-body-limit-plus-one-refunds", 413, "body_too_large")
async def _(w):
    return await api(w, "POST", f"/api/checkouts/{w.paid['id']}/refunds", raw=b'{"amount_fen": 1}' + b" " * w.limit)


@case("prepay-body-limit-plus-one", 413, "body_too_large")
async def _(w):
    desktop = Browser(w.c.base)
    await desktop.get(f"/pay/{w.native['id']}")
    return await desktop.post(f"/pay/{w.native['id']}/prepay", body=b"{}" + b" " * w.limit, xsrf=True,
                              headers={"Content-Type": "application/json"})


# -- unknown paths and methods ------------------------------------------------------------------

for _path in ("/api/nope", "/api/checkouts/", "/api/checkouts/co_000000000000000000000000/nope", "/api/webhooks/x",
              "/api/", "/api"):
    @case(f"api-unknown-path-{slug(_path)}", 404, "not_found")
    async def _(w, path=_path):
        return await api(w, "GET", path)


@case("api-unknown-path-without-token", 404, "not_found")
async def _(w):
    return await api(w, "POST", "/api/refunds", body={"amount_fen": 1}, token=False)


for _method, _path in (("DELETE", "/api/checkouts"), ("PUT", "/api/checkouts"), ("PATCH", "/api/checkouts/{open}"),
                       ("GET", "/api/checkouts/{open}/cancel"), ("POST", "/api/checkouts/{open}"),
                       ("GET", "/api/checkouts/{open}/payment"), ("DELETE", "/api/webhooks")):
    @case(f"api-method-{_method}-{_path.strip('/').replace('/', '-').replace('{open}', 'id')}", 405, "method_not_allowed")
    async def _(w, method=_method, path=_path):
        return await api(w, method, path.replace("{open}", w.open["id"]), raw=b"" if method in ("POST", "PUT", "PATCH") else None)


# -- query parameters the operation does not take ---------------------------------------------------


@case("api-list-typo-in-filter-is-refused", 400, "unknown_parameter")
async def _(w):
    return await api(w, "GET", "/api/checkouts?stauts=paid")  # it used to list every checkout


@case("api-list-filter-given-twice", 400, "repeated_parameter")
async def _(w):
    return await api(w, "GET", "/api/checkouts?status=paid&status=open")


@case("api-create-with-query-parameters", 400, "unknown_parameter")
async def _(w):
    return await api(w, "POST", "/api/checkouts?amount_fen=1", body=GOOD)


# -- the page's JSON calls without their XSRF token ------------------------------------------------


@case("prepay-without-xsrf-token-is-json", 403, "xsrf_invalid")
async def _(w):
    desktop = Browser(w.c.base)
    await desktop.get(f"/pay/{w.native['id']}")
    return await desktop.post(f"/pay/{w.native['id']}/prepay", json_body={})


@case("prepay-with-forged-xsrf-token-is-json", 403, "xsrf_invalid")
async def _(w):
    shopper = Browser(w.c.base, WECHAT_UA)
    return await shopper.post(f"/pay/{w.native['id']}/prepay", json_body={}, headers={"X-XSRFToken": "2|00|00|00"})


# -- query strings that are not UTF-8 --------------------------------------------------------------


@case("api-list-status-invalid-utf8", 400, "invalid_encoding")
async def _(w):
    return await api(w, "GET", "/api/checkouts?status=%ff%fe")


@case("api-wx-config-url-invalid-utf8", 400, "invalid_encoding")
async def _(w):
    return await api(w, "GET", "/api/wx-config?url=https%3A%2F%2Fa.example%2F%ff")


# -- the test ---------------------------------------------------------------------------------------


def check_error_body(reply, code: str) -> None:
    """JSON ``{code, message}`` (``details`` allowed), with the expected code."""
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply.headers.get("Content-Type")
    body = json.loads(reply.body)
    assert set(body) - {"details"} == {"code", "message"}, body
    assert isinstance(body["message"], str) and body["message"], body
    assert body["code"] == code, body


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
async def test_refused_with_a_json_code_and_nothing_changes(world: World, c: Case):
    before = await snapshot(world.c.store)
    try:
        reply = await c.run(world)
        logwatch.add_text(reply.body or b"")
        assert reply.code == c.status, (reply.code, (reply.body or b"")[:300])
        if c.code:
            check_error_body(reply, c.code)
        if reply.code == 405:
            assert reply.headers.get("Allow"), "a 405 names the methods that are allowed"
        assert await snapshot(world.c.store) == before, "the store changed"
    except AssertionError as exc:
        record("hostile", c.id, f"FAIL: {str(exc)[:200]}")
        raise
    record("hostile", c.id, "pass", status=reply.code)


async def test_every_case_id_is_unique():
    assert len({c.id for c in CASES}) == len(CASES)
