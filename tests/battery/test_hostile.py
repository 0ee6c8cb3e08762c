"""Hostile input: every case asserts the reply's status AND that the
business state (checkouts, orders, refunds, outbox) did not change.

Three real sandbox servers on loopback (APIv2 MD5 and HMAC-SHA256 merchants,
and an APIv3 one), one world prepared per module: orders paid at WeChat
whose notifies were lost (so a forged notify *could* do harm), one paid
order, one unpaid order.
"""
from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import pytest
import pytest_asyncio

from tests.server.browser import WECHAT_UA, Browser, as_json
from tests.server.versions import payment_notify, refund_notify, transaction, v3_envelope, v3_signed
from wxpay import signing
from wxpay.simulator import demo
from wxpay.xmlcodec import build_xml

from . import logwatch
from .harness import Client, snapshot, start_server
from .results import record

pytestmark = pytest.mark.asyncio(loop_scope="module")

GOOD = {"amount_fen": 100, "description": "Tea"}
IDEM_KEY = "battery-idempotency-key-1"


@dataclass
class World:
    md5: Client
    hmac: Client
    a: dict        # checkout paid at WeChat, notifies lost (store: prepaid)
    a_sim: dict
    b: dict        # another, likewise
    b_sim: dict
    c: dict        # paid and confirmed
    c_sim: dict
    d: dict        # prepaid, not paid at WeChat
    d_sim: dict
    h: dict        # on the HMAC server, paid at WeChat only
    h_sim: dict
    hostile_return: dict  # created with a percent-encoded CRLF in return_url
    v3: Client     # the APIv3 server
    e: dict        # on it: paid at WeChat, notifies lost (store: prepaid)
    e_sim: dict
    f: dict        # on it: paid, a refund pending with its notifies lost
    f_refund: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    # Each case asserts its own refusal's status: the notify rate limit (its
    # own cases in test_notify_costs.py) is set out of the way here.
    unlimited = {"notify.refused_per_minute": 1_000_000, "notify.refused_per_minute_total": 1_000_000}
    md5 = await start_server(tmp_path_factory.mktemp("md5"), **unlimited)
    hmac_server = await start_server(
        tmp_path_factory.mktemp("hmac"), **{"wechat.sign_type": "HMAC-SHA256", **unlimited}
    )
    v3_server = await start_server(tmp_path_factory.mktemp("v3"), **{"wechat.api_version": "v3", **unlimited})
    try:
        m, h = Client(md5), Client(hmac_server)
        a, a_res = await m.paid_at_wechat_only(1000)
        b, b_res = await m.paid_at_wechat_only(2000)
        c, c_res = await m.paid_at_wechat_only(3000)
        r = await m.notify(m.signed_notify(c_res["sim"]))
        assert r.code == 200 and b"SUCCESS" in r.body, r.body
        d = await m.checkout(4000)
        _, d_res = await m.native_prepay(d["id"])
        d_sim = as_json(await m.sim("GET", f"orders/{d_res['out_trade_no']}"))
        hc, h_res = await h.paid_at_wechat_only(5000)
        hostile = await m.checkout(600, return_url="https://shop.example/done%0d%0aSet-Cookie:%20pwned=1")
        r = await m.merchant.post("/api/checkouts", json_body=GOOD, headers={**m.auth, "Idempotency-Key": IDEM_KEY})
        assert r.code == 201, r.body
        v3 = Client(v3_server)
        e, e_res = await v3.paid_at_wechat_only(6000)
        f, f_res = await v3.paid_at_wechat_only(7000)
        f_headers, f_body = payment_notify(v3_server, "v3", f_res["out_trade_no"])
        r = await v3.notify(f_body, headers=f_headers)
        assert r.code == 204, r.body
        await v3.fault(endpoint="refund_notify", kind="drop", count=None)
        r = await v3.merchant.post(f"/api/checkouts/{f['id']}/refunds", headers=v3.auth,
                                   json_body={"amount_fen": 700, "out_refund_no": "hostile-v3-r1"})
        assert r.code == 201, r.body
        yield World(m, h, a, a_res["sim"], b, b_res["sim"], c, c_res["sim"], d, d_sim, hc, h_res["sim"], hostile,
                    v3, e, e_res["sim"], f, "hostile-v3-r1")
    finally:
        await md5.stop(grace=1)
        await hmac_server.stop(grace=1)
        await v3_server.stop(grace=1)


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[World], Awaitable[Any]]
    status: int | tuple[int, ...]
    server: str = "md5"
    check: Callable[[World, Any], None] | None = None


CASES: list[Case] = []


def case(id: str, status: int | tuple[int, ...], server: str = "md5", check=None):
    def deco(fn):
        CASES.append(Case(id, fn, status, server, check))
        return fn
    return deco


def slug(text: str) -> str:
    """A readable test id for a hostile path: ``/static/%2e%2e/x`` -> ``static-pct2e-pct2e-x``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text.replace("%", "pct").replace("\\", "bslash")).strip("-")


def xml(text: str) -> bytes:
    return text.encode()


# -- the payment notify: parsing ---------------------------------------------------

XXE = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><out_trade_no>&x;</out_trade_no></xml>'
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]><xml><out_trade_no>&lol9;</out_trade_no></xml>"
)


@case("notify-xxe-external-entity", 400)
async def _(w):
    return await w.md5.notify(xml(XXE))


@case("notify-xxe-parameter-entity", 400)
async def _(w):
    body = '<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:1/evil.dtd"> %p;]><xml><a>1</a></xml>'
    return await w.md5.notify(xml(body))


@case("notify-billion-laughs", 400)
async def _(w):
    return await w.md5.notify(xml(LAUGHS))


@case("notify-doctype-only", 400)
async def _(w):
    return await w.md5.notify(xml('<!DOCTYPE xml><xml><out_trade_no>x</out_trade_no></xml>'))


@case("notify-xxe-in-utf16", 400)
async def _(w):
    return await w.md5.notify(XXE.replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16"))


@case("notify-valid-but-utf16", 400)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim).decode().encode("utf-16"))


@case("notify-oversized-64k", 413)
async def _(w):
    pad = "x" * (70 * 1024)
    return await w.md5.notify(xml(f"<xml><out_trade_no>{w.a_sim['order']['out_trade_no']}</out_trade_no><pad>{pad}</pad></xml>"))


@case("notify-oversized-2mb", (400, 413, 599))
async def _(w):
    return await w.md5.notify(b"<xml>" + b"A" * (2 << 20) + b"</xml>")


@case("notify-invalid-utf8", 400)
async def _(w):
    return await w.md5.notify(b"<xml><out_trade_no>\xff\xfe\xc3</out_trade_no></xml>")


@case("notify-wrong-root", 400)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim).replace(b"<xml>", b"<root>").replace(b"</xml>", b"</root>"))


@case("notify-json-instead-of-xml", 400)
async def _(w):
    return await w.md5.notify(b'{"out_trade_no": "x", "return_code": "SUCCESS"}')


@case("notify-empty-body", 400)
async def _(w):
    return await w.md5.notify(b"")


@case("notify-nested-elements", 400)
async def _(w):
    return await w.md5.notify(xml("<xml><out_trade_no><a>1</a></out_trade_no></xml>"))


@case("notify-repeated-field", 400)
async def _(w):
    no = w.a_sim["order"]["out_trade_no"]
    return await w.md5.notify(xml(f"<xml><out_trade_no>{no}</out_trade_no><out_trade_no>{no}</out_trade_no></xml>"))


@case("notify-truncated-xml", 400)
async def _(w):
    body = w.md5.signed_notify(w.a_sim)
    return await w.md5.notify(body[: len(body) // 2])


# -- the payment notify: signatures -----------------------------------------------------


def unsigned(w: World, sim: dict, client: Client | None = None, **changes: Any) -> bytes:
    return build_xml((client or w.md5).notify_fields(sim, **changes))


def resigned(fields: dict, key: str, sign_type: str = "MD5") -> bytes:
    fields = dict(fields)
    fields.pop("sign", None)
    fields["sign"] = signing.sign(fields, key, sign_type)
    return build_xml(fields)


@case("notify-missing-sign", 400)
async def _(w):
    return await w.md5.notify(unsigned(w, w.a_sim))


@case("notify-empty-sign", 400)
async def _(w):
    return await w.md5.notify(build_xml({**w.md5.notify_fields(w.a_sim), "sign": ""}))


@case("notify-signed-with-wrong-key", 400)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, key="0" * 32))


@case("notify-hmac-sign-on-md5-order", 400)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, sign_type="HMAC-SHA256"))


@case("notify-declares-hmac-on-md5-order", 400)
async def _(w):
    fields = w.md5.notify_fields(w.a_sim, sign_type="HMAC-SHA256")
    return await w.md5.notify(resigned(fields, w.md5.api_key, "HMAC-SHA256"))


@case("notify-md5-sign-on-hmac-order", 400, server="hmac")
async def _(w):
    return await w.hmac.notify(w.hmac.signed_notify(w.h_sim, sign_type="MD5"))


@case("notify-declares-md5-on-hmac-order", 400, server="hmac")
async def _(w):
    fields = w.hmac.notify_fields(w.h_sim, sign_type="MD5")
    return await w.hmac.notify(resigned(fields, w.hmac.api_key, "MD5"))


@case("notify-hmac-key-of-other-merchant", 400, server="hmac")
async def _(w):
    return await w.hmac.notify(w.hmac.signed_notify(w.h_sim, key=w.md5.api_key, sign_type="HMAC-SHA256"))


@case("notify-field-added-after-signing", 400)
async def _(w):
    fields = w.md5.notify_fields(w.a_sim)
    fields["sign"] = signing.sign(fields, w.md5.api_key)
    fields["attach"] = "extra"
    return await w.md5.notify(build_xml(fields))


# -- the payment notify: content -----------------------------------------------------------


@case("notify-other-order-swapped-out-trade-no", 400)
async def _(w):
    genuine = w.md5.notify_fields(w.b_sim)
    genuine["sign"] = signing.sign(genuine, w.md5.api_key)
    genuine["out_trade_no"] = w.a_sim["order"]["out_trade_no"]  # B's signed notify, aimed at A
    return await w.md5.notify(build_xml(genuine))


@case("notify-replay-of-paid-order", 200, check=lambda w, r: b"SUCCESS" in r.body)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.c_sim))


@case("notify-signed-with-other-orders-transaction", 409)
async def _(w):
    tx = w.b_sim["order"]["transaction_id"]
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, transaction_id=tx))


@case("notify-replay-paid-order-other-transaction", 409)
async def _(w):
    tx = w.b_sim["order"]["transaction_id"]
    return await w.md5.notify(w.md5.signed_notify(w.c_sim, transaction_id=tx))


@case("notify-signed-for-unpaid-order", 409)
async def _(w):
    order = {**w.d_sim["order"], "transaction_id": "4200000000202601010000000001"}
    return await w.md5.notify(w.md5.signed_notify({"order": order}))


@case("notify-amount-tampered", 400)
async def _(w):
    fields = w.md5.notify_fields(w.a_sim)
    fields["sign"] = signing.sign(fields, w.md5.api_key)
    fields["total_fee"] = fields["cash_fee"] = "1"
    return await w.md5.notify(build_xml(fields))


@case("notify-amount-tampered-and-signed", 400)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, total_fee="1", cash_fee="1"))


for _amount in ("-1000", "0", "10.00", "1e3", "99999999999999999999", " 1000", "1000abc"):
    @case(f"notify-amount-{_amount.strip() or 'blank'}-signed", 400)
    async def _(w, amount=_amount):
        return await w.md5.notify(w.md5.signed_notify(w.a_sim, total_fee=amount))


@case("notify-appid-tampered-and-signed", 400)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, appid="wx0000000000000bad"))


@case("notify-mch-id-tampered-and-signed", 400)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, mch_id="1900000999"))


@case("notify-unknown-out-trade-no", 404)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, out_trade_no="W20260101NOSUCHORDER0000"))


@case("notify-out-trade-no-too-long", 400)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, out_trade_no="W" * 40))


@case("notify-out-trade-no-mongo-operator", 404)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, out_trade_no='{"$ne": null}'))


@case("notify-out-trade-no-sql-fragment", 404)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, out_trade_no="x' OR '1'='1' --"))


@case("notify-signed-result-fail", 200, check=lambda w, r: b"SUCCESS" in r.body)
async def _(w):
    return await w.md5.notify(w.md5.signed_notify(w.a_sim, result_code="FAIL", err_code="SYSTEMERROR"))


@case("notify-return-code-fail-unsigned", 400)
async def _(w):
    return await w.md5.notify(xml("<xml><return_code>FAIL</return_code><return_msg>x</return_msg></xml>"))


@case("notify-put-method", 405)
async def _(w):
    return await w.md5.merchant.request("PUT", "/notify/pay", body=w.md5.signed_notify(w.a_sim))


# -- the refund notify --------------------------------------------------------------------


@case("refund-notify-garbage", 400)
async def _(w):
    return await w.md5.notify(b"\x00\x01garbage", "/notify/refund")


@case("refund-notify-xxe", 400)
async def _(w):
    return await w.md5.notify(xml(XXE), "/notify/refund")


@case("refund-notify-req-info-not-base64", 400)
async def _(w):
    body = build_xml({"return_code": "SUCCESS", "appid": w.a_sim["order"]["appid"],
                      "mch_id": w.a_sim["order"]["mch_id"], "nonce_str": "n", "req_info": "@@@not base64@@@"})
    return await w.md5.notify(body, "/notify/refund")


@case("refund-notify-req-info-random-bytes", 400)
async def _(w):
    body = build_xml({"return_code": "SUCCESS", "appid": w.a_sim["order"]["appid"], "mch_id": w.a_sim["order"]["mch_id"],
                      "nonce_str": "n", "req_info": base64.b64encode(secrets.token_bytes(64)).decode()})
    return await w.md5.notify(body, "/notify/refund")


# -- the merchant API ---------------------------------------------------------------------


def api(w: World, method: str, path: str, *, token: str | None = "ok", body: Any = None, raw: bytes | None = None,
        headers: dict | None = None):
    hdrs = dict(headers or {})
    if token == "ok":
        hdrs.update(w.md5.auth)
    elif token is not None:
        hdrs["Authorization"] = token
    return w.md5.merchant.request(method, path, json_body=body, body=raw, headers=hdrs)




@case("api-without-token", 401)
async def _(w):
    return await api(w, "POST", "/api/checkouts", token=None, body=GOOD)


@case("api-wrong-token", 401)
async def _(w):
    return await api(w, "POST", "/api/checkouts", token="Bearer not-the-token", body=GOOD)


@case("api-token-prefix-only", 401)
async def _(w):
    return await api(w, "POST", "/api/checkouts", token="Bearer " + w.md5.token[:-1], body=GOOD)


@case("api-token-as-basic-auth", 401)
async def _(w):
    return await api(w, "POST", "/api/checkouts", token="Basic " + base64.b64encode(f"x:{w.md5.token}".encode()).decode(), body=GOOD)


@case("api-token-in-query-string", 401)
async def _(w):
    return await api(w, "GET", f"/api/checkouts?access_token={w.md5.token}", token=None)


@case("api-read-without-token", 401)
async def _(w):
    return await api(w, "GET", f"/api/checkouts/{w.a['id']}", token=None)


for _name, _value in {
    "negative": -100, "zero": 0, "float": 12.5, "huge": 10**15, "string": "100", "bool": True, "null": None,
    "mongo-operator": {"$gt": 0}, "array": [100],
}.items():
    @case(f"api-amount-{_name}", 400)
    async def _(w, value=_value):
        return await api(w, "POST", "/api/checkouts", body={**GOOD, "amount_fen": value})


@case("api-description-mongo-operator", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body={**GOOD, "description": {"$ne": ""}})


@case("api-reference-mongo-operator", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body={**GOOD, "merchant_reference": {"$regex": ".*"}})


@case("api-unknown-field-where", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body={**GOOD, "$where": "sleep(1000)"})


@case("api-unknown-field-status", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body={**GOOD, "status": "paid"})


@case("api-body-not-json", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", raw=b"amount_fen=100&description=x")


@case("api-body-json-array", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body=[GOOD])


@case("api-body-invalid-utf8", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", raw=b'{"amount_fen": 100, "description": "\xff\xfe"}')


@case("api-body-deeply-nested", 400)
async def _(w):
    # 30,000 levels: past the parser's recursion limit, inside the 64 KiB body limit.
    return await api(w, "POST", "/api/checkouts", raw=b"[" * 30_000 + b"]" * 30_000)


@case("api-body-nan", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", raw=b'{"amount_fen": NaN, "description": "x"}')


@case("api-return-url-javascript", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body={**GOOD, "return_url": "javascript:alert(1)"})


@case("api-return-url-crlf-header-injection", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body={**GOOD, "return_url": "https://shop.example/\r\nSet-Cookie: a=b"})


@case("api-return-url-scheme-relative", 400)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body={**GOOD, "return_url": "//evil.example/"})


@case("api-idempotency-key-replay-other-body", 409)
async def _(w):
    return await api(w, "POST", "/api/checkouts", body={**GOOD, "amount_fen": 1}, headers={"Idempotency-Key": IDEM_KEY})


@case("api-get-id-sql-fragment", 404)
async def _(w):
    return await api(w, "GET", "/api/checkouts/" + quote("co_' OR '1'='1", safe=""))


@case("api-get-id-mongo-operator", 404)
async def _(w):
    return await api(w, "GET", "/api/checkouts/" + quote('{"$ne":null}', safe=""))


@case("api-list-reference-sql-delete", 200, check=lambda w, r: as_json(r)["items"] == [])
async def _(w):
    return await api(w, "GET", "/api/checkouts?merchant_reference=" + quote("1); DELETE FROM checkouts; --"))


@case("api-list-reference-sql-fragment-printable", 200, check=lambda w, r: as_json(r)["items"] == [])
async def _(w):
    return await api(w, "GET", "/api/checkouts?merchant_reference=" + quote("x' OR '1'='1"))


@case("api-list-status-operator", 400)
async def _(w):
    return await api(w, "GET", "/api/checkouts?status=" + quote('{"$ne":"x"}'))


@case("api-list-huge-limit", 400)
async def _(w):
    return await api(w, "GET", "/api/checkouts?limit=1000000")


@case("api-refund-negative-amount", 400)
async def _(w):
    return await api(w, "POST", f"/api/checkouts/{w.c['id']}/refunds", body={"amount_fen": -1})


@case("api-refund-more-than-paid", (400, 409))
async def _(w):
    return await api(w, "POST", f"/api/checkouts/{w.c['id']}/refunds", body={"amount_fen": 10**9})


@case("api-refund-without-token", 401)
async def _(w):
    return await api(w, "POST", f"/api/checkouts/{w.c['id']}/refunds", token=None, body={"amount_fen": 1})


# -- the shopper's page: OAuth, redirects, XSRF ----------------------------------------


async def oauth_begin(w: World, path: str) -> tuple[Browser, dict]:
    shopper = Browser(w.md5.base, WECHAT_UA)
    r = await shopper.get(path)
    assert r.code == 302, (r.code, r.body[:200])
    from tests.server.journey import query_of

    return shopper, query_of(r.headers["Location"])


@case("oauth-callback-without-cookie", 403)
async def _(w):
    return await Browser(w.md5.base, WECHAT_UA).get("/oauth/callback?code=abc&state=" + "a" * 32)


@case("oauth-callback-forged-state", 403)
async def _(w):
    shopper, _q = await oauth_begin(w, f"/pay/{w.d['id']}")
    return await shopper.get("/oauth/callback?code=abc&state=" + "0" * 32)


@case("oauth-callback-missing-state", 403)
async def _(w):
    shopper, _q = await oauth_begin(w, f"/pay/{w.d['id']}")
    return await shopper.get("/oauth/callback?code=abc")


@case("oauth-callback-tampered-cookie", 403)
async def _(w):
    shopper, q = await oauth_begin(w, f"/pay/{w.d['id']}")
    shopper.cookies["wx_oauth"] = base64.b64encode(f"{q['state']}|//evil.example/".encode()).decode()
    return await shopper.get(f"/oauth/callback?code=abc&state={q['state']}")


@case("oauth-callback-state-of-other-browser", 403)
async def _(w):
    _other, q = await oauth_begin(w, f"/pay/{w.d['id']}")
    mine, _ = await oauth_begin(w, f"/pay/{w.d['id']}")
    return await mine.get(f"/oauth/callback?code=abc&state={q['state']}")


async def _signed_in_code(w: World) -> str:
    """A code the simulated WeChat gave a shopper, who has just used it."""
    from tests.server.journey import query_of

    alice, q = await oauth_begin(w, f"/pay/{w.d['id']}")
    authorize = f"/_wechat/connect/oauth2/authorize?appid={q['appid']}&redirect_uri={quote(q['redirect_uri'], safe='')}" \
                f"&response_type=code&scope=snsapi_base&state={q['state']}"
    callback = (await alice.get(authorize)).headers["Location"]
    code = query_of(callback)["code"]
    logwatch.secret(code, "OAuth code")
    assert (await alice.get(callback)).code == 302
    return code


@case("oauth-code-replayed-from-other-browser", 403,
      check=lambda w, r: b"oauth_code_replayed" in r.body and "wx_openid" not in str(r.headers))
async def _(w):
    code = await _signed_in_code(w)
    mallory, q = await oauth_begin(w, f"/pay/{w.d['id']}")  # her own state, in her own signed cookie
    return await mallory.get(f"/oauth/callback?code={quote(code)}&state={q['state']}")


def raw_get(w: World, path: str):
    """The path exactly as given (no URL joining that would read //host as a host)."""
    return w.md5.merchant.client.fetch(w.md5.base + path, raise_error=False, follow_redirects=False)


def local_redirect(w: World, r) -> None:
    location = r.headers.get("Location", "")
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert "evil" not in location.split("?")[0], location


for _name, _query in {
    "double-slash": "?next=//evil.example/", "backslash": "?next=/\\evil.example/",
    "absolute": "?next=https://evil.example/", "encoded": "?next=%2F%2Fevil.example%2F",
    "crlf": "?next=%0d%0aLocation:%20https://evil.example/",
}.items():
    @case(f"oauth-open-redirect-{_name}", 302, check=local_redirect)
    async def _(w, query=_query):
        shopper, q = await oauth_begin(w, f"/pay/{w.d['id']}{query}")
        authorize = f"/_wechat/connect/oauth2/authorize?appid={q['appid']}&redirect_uri={quote(q['redirect_uri'], safe='')}" \
                    f"&response_type=code&scope=snsapi_base&state={q['state']}"
        r = await shopper.get(authorize)  # the simulated WeChat sends the shopper back with a code
        callback = r.headers["Location"]
        from tests.server.journey import query_of

        logwatch.secret(query_of(callback).get("code"), "OAuth code")
        return await shopper.get(callback)


for _path in ("//evil.example/", "/\\evil.example/", "/%2F%2Fevil.example/", "/pay/%2F%2Fevil.example"):
    @case(f"path-redirect-{slug(_path)}", 404)
    async def _(w, path=_path):
        return await raw_get(w, path)


@case("prepay-without-xsrf", 403)
async def _(w):
    desktop = Browser(w.md5.base)
    await desktop.get(f"/pay/{w.d['id']}")
    return await desktop.post(f"/pay/{w.d['id']}/prepay", json_body={})


@case("prepay-with-wrong-xsrf", 403)
async def _(w):
    desktop = Browser(w.md5.base)
    await desktop.get(f"/pay/{w.d['id']}")
    return await desktop.post(f"/pay/{w.d['id']}/prepay", json_body={}, headers={"X-XSRFToken": "2|00|00|00"})


@case("prepay-amount-from-browser-ignored", 200,
      check=lambda w, r: as_json(r)["out_trade_no"] == w.d_sim["order"]["out_trade_no"])
async def _(w):
    desktop = Browser(w.md5.base)
    await desktop.get(f"/pay/{w.d['id']}")
    return await desktop.post(f"/pay/{w.d['id']}/prepay", json_body={"amount_fen": 1, "total_fee": 1}, xsrf=True)


@case("prepay-jsapi-without-signin", 400)
async def _(w):
    shopper = Browser(w.md5.base, WECHAT_UA)
    shopper.cookies["_xsrf"] = "2|11111111|" + "0" * 32 + "|1700000000"
    return await shopper.post(f"/pay/{w.d['id']}/prepay", json_body={"trade_type": "JSAPI"}, xsrf=True)


@case("prepay-forged-openid-cookie", 400)
async def _(w):
    shopper = Browser(w.md5.base, WECHAT_UA)
    shopper.cookies["_xsrf"] = "2|11111111|" + "0" * 32 + "|1700000000"
    shopper.cookies["wx_openid"] = base64.b64encode(b"oAttackerOpenid").decode()
    return await shopper.post(f"/pay/{w.d['id']}/prepay", json_body={"trade_type": "JSAPI"}, xsrf=True)


def no_injected_header(w: World, r) -> None:
    assert "pwned" not in str(r.headers), r.headers
    assert all("pwned" not in c for c in r.headers.get_list("Set-Cookie"))


@case("return-url-header-injection-page", 200, check=no_injected_header)
async def _(w):
    return await Browser(w.md5.base).get(f"/pay/{w.hostile_return['id']}/result")


@case("return-url-header-injection-status", 200, check=no_injected_header)
async def _(w):
    return await Browser(w.md5.base).get(f"/pay/{w.hostile_return['id']}/status")


# -- APIv3 notifies: proof over the raw body, then decryption, then our records --------------------


def v3_notify(w: World, **changes: Any) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of the payment notify WeChat would send for order e, with ``changes``."""
    headers, body = payment_notify(w.v3.running, "v3", w.e_sim["order"]["out_trade_no"], **changes)
    return body, headers


def v3_sim(w: World):
    return w.v3.running.simulator


@case("notify-v3-forged-signature", 400, server="v3")
async def _(w):
    headers, body = payment_notify(w.v3.running, "v3", w.e_sim["order"]["out_trade_no"], forged=True)
    return await w.v3.notify(body, headers=headers)


@case("notify-v3-signtest-probe", 400, server="v3")
async def _(w):
    body, headers = v3_notify(w)
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + base64.b64encode(secrets.token_bytes(256)).decode()
    return await w.v3.notify(body, headers=headers)


@case("notify-v3-replayed-after-five-minutes", 400, server="v3")
async def _(w):
    body = v3_envelope(v3_sim(w), "TRANSACTION.SUCCESS", "支付成功", "transaction", transaction(w.v3.running, w.e_sim["order"]["out_trade_no"]))
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body, skew=-301))


@case("notify-v3-from-the-future", 400, server="v3")
async def _(w):
    body = v3_envelope(v3_sim(w), "TRANSACTION.SUCCESS", "支付成功", "transaction", transaction(w.v3.running, w.e_sim["order"]["out_trade_no"]))
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body, skew=400))


@case("notify-v3-unknown-serial", 400, server="v3")
async def _(w):
    body = v3_envelope(v3_sim(w), "TRANSACTION.SUCCESS", "支付成功", "transaction", transaction(w.v3.running, w.e_sim["order"]["out_trade_no"]))
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body, serial="PUB_KEY_ID_0000000000000000000000000000000099"))


@case("notify-v3-platform-serial-not-trusted", 400, server="v3")
async def _(w):
    body = v3_envelope(v3_sim(w), "TRANSACTION.SUCCESS", "支付成功", "transaction", transaction(w.v3.running, w.e_sim["order"]["out_trade_no"]))
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body, serial=demo.PLATFORM_SERIAL_NO))


@case("notify-v3-without-its-headers", 400, server="v3")
async def _(w):
    body, _headers = v3_notify(w)
    return await w.v3.notify(body, headers={"Content-Type": "application/json"})


@case("notify-v3-reserialised-body", 400, server="v3")
async def _(w):
    body, headers = v3_notify(w)
    import json as _json

    return await w.v3.notify(_json.dumps(_json.loads(body), indent=1).encode(), headers=headers)


@case("notify-v3-body-changed-after-signing", 400, server="v3")
async def _(w):
    body, headers = v3_notify(w)
    return await w.v3.notify(body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESs"), headers=headers)


@case("notify-v3-tampered-ciphertext-signed-by-wechat", 400, server="v3")
async def _(w):
    body = v3_envelope(v3_sim(w), "TRANSACTION.SUCCESS", "支付成功", "transaction",
                       transaction(w.v3.running, w.e_sim["order"]["out_trade_no"]), tampered=True)
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body))


@case("notify-v3-wrong-associated-data", 400, server="v3")
async def _(w):
    body = v3_envelope(v3_sim(w), "TRANSACTION.SUCCESS", "支付成功", "refund",
                       transaction(w.v3.running, w.e_sim["order"]["out_trade_no"]))
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body))


@case("notify-v3-another-merchant", 400, server="v3")
async def _(w):
    body, headers = v3_notify(w, mchid="1900000999")
    return await w.v3.notify(body, headers=headers)


@case("notify-v3-another-appid", 400, server="v3")
async def _(w):
    body, headers = v3_notify(w, appid=demo.MINI_PROGRAM_APPID)
    return await w.v3.notify(body, headers=headers)


@case("notify-v3-amount-changed", 400, server="v3")
async def _(w):
    body, headers = v3_notify(w, amount={"total": 1, "payer_total": 1, "currency": "CNY", "payer_currency": "CNY"})
    return await w.v3.notify(body, headers=headers)


@case("notify-v3-not-paid", 400, server="v3")
async def _(w):
    body, headers = v3_notify(w, trade_state="NOTPAY")
    return await w.v3.notify(body, headers=headers)


@case("notify-v3-unknown-order", 404, server="v3")
async def _(w):
    body, headers = v3_notify(w, out_trade_no="W20260101NOSUCHORDER00001")
    return await w.v3.notify(body, headers=headers)


@case("notify-v3-unknown-event-type", 400, server="v3")
async def _(w):
    body = v3_envelope(v3_sim(w), "TRANSACTION.CLOSED", "关闭", "transaction", transaction(w.v3.running, w.e_sim["order"]["out_trade_no"]))
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body))


@case("notify-v3-resource-not-json", 400, server="v3")
async def _(w):
    body = v3_envelope(v3_sim(w), "TRANSACTION.SUCCESS", "支付成功", "transaction", b"<xml>not json</xml>")
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body))


@case("notify-v3-signed-garbage", 400, server="v3")
async def _(w):
    body = b'{"id": "EV-1", "resource": ' + b"[" * 5000
    return await w.v3.notify(body, headers=v3_signed(v3_sim(w), body))


@case("notify-v3-refund-event-on-the-payment-path", 400, server="v3")
async def _(w):
    headers, body = refund_notify(w.v3.running, "v3", w.f_refund)
    return await w.v3.notify(body, headers=headers)


@case("notify-v3-payment-event-on-the-refund-path", 400, server="v3")
async def _(w):
    body, headers = v3_notify(w)
    return await w.v3.notify(body, "/notify/refund", headers=headers)


@case("refund-notify-v3-forged-signature", 400, server="v3")
async def _(w):
    headers, body = refund_notify(w.v3.running, "v3", w.f_refund, forged=True)
    return await w.v3.notify(body, "/notify/refund", headers=headers)


@case("refund-notify-v3-amount-changed", 400, server="v3")
async def _(w):
    headers, body = refund_notify(w.v3.running, "v3", w.f_refund, amount={"total": 7000, "refund": 1, "payer_total": 7000,
                                                                        "payer_refund": 1})
    return await w.v3.notify(body, "/notify/refund", headers=headers)


@case("refund-notify-v3-another-order", 400, server="v3")
async def _(w):
    headers, body = refund_notify(w.v3.running, "v3", w.f_refund, out_trade_no=w.e_sim["order"]["out_trade_no"])
    return await w.v3.notify(body, "/notify/refund", headers=headers)


@case("refund-notify-v3-unknown-refund", 404, server="v3")
async def _(w):
    headers, body = refund_notify(w.v3.running, "v3", w.f_refund, out_refund_no="hostile-v3-nosuch")
    return await w.v3.notify(body, "/notify/refund", headers=headers)


@case("refund-notify-v3-stale", 400, server="v3")
async def _(w):
    _headers, body = refund_notify(w.v3.running, "v3", w.f_refund)
    return await w.v3.notify(body, "/notify/refund", headers=v3_signed(v3_sim(w), body, skew=-3600))


@case("notify-v3-on-an-apiv2-server-without-its-key", 400)
async def _(w):
    body, headers = v3_notify(w)
    return await w.md5.notify(body, headers=headers)


@case("notify-v2-xml-dressed-in-v3-headers", 400, server="v3")
async def _(w):
    _body, headers = v3_notify(w)
    return await w.v3.notify(w.md5.signed_notify(w.e_sim, key="F" * 32), headers=headers)


# -- admin views, static files -------------------------------------------------------------


@case("status-without-credentials", 401)
async def _(w):
    return await Browser(w.md5.base).get("/status")


@case("status-json-without-credentials", 401)
async def _(w):
    return await Browser(w.md5.base).get("/status.json")


@case("metrics-without-credentials", 401)
async def _(w):
    return await Browser(w.md5.base).get("/metrics")


@case("status-with-merchant-token", 401)
async def _(w):
    return await Browser(w.md5.base).get("/status", headers=w.md5.auth)


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def _burst(w: World, path: str, setting: str, make_lockout, header) -> Any:
    """40 wrong guesses, 20 at a time, against a fresh lockout (restored after)."""
    app = w.md5.running.app
    saved = app.settings[setting]
    lockout = app.settings[setting] = make_lockout()
    try:
        from .harness import bounded

        browser = Browser(w.md5.base)
        replies = await bounded([lambda i=i: browser.get(path, headers=header(i)) for i in range(40)], limit=20)
        return replies, lockout
    finally:
        app.settings[setting] = saved


def _refused_after(evaluated: int):
    def check(w: World, reply) -> None:
        replies, lockout = reply.burst
        got = [r.code for r in replies]
        assert got.count(401) == evaluated and got.count(429) == 40 - evaluated, got
        assert lockout.failures("127.0.0.1") == evaluated  # only the admitted guesses were compared
        assert all(r.headers.get("Retry-After") for r in replies if r.code == 429)
    return check


@case("status-brute-force-burst", 429, check=_refused_after(5))
async def _(w):
    from handlers.lockout import admin_lockout

    replies, lockout = await _burst(w, "/status.json", "admin_lockout", admin_lockout,
                                    lambda i: _basic("admin", f"guess{i}"))
    replies[-1].burst = (replies, lockout)
    return replies[-1]


@case("api-token-brute-force-burst", 429, check=_refused_after(20))
async def _(w):
    from handlers.lockout import merchant_api_lockout

    replies, lockout = await _burst(w, "/api/checkouts", "api_lockout", merchant_api_lockout,
                                    lambda i: {"Authorization": f"Bearer guess-{i}"})
    replies[-1].burst = (replies, lockout)
    return replies[-1]


for _path in ("/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/server.py", "/static/%2e%2e%2fserver.py",
              "/static/..%5cserver.py", "/static/....//server.py", "/static/%252e%252e/server.py",
              "/_sandbox/..%2f..%2fserver.py", "/static//etc/passwd"):
    @case(f"static-traversal-{slug(_path)}", (403, 404),
          check=lambda w, r: b"import" not in (r.body or b"") and b"root:" not in (r.body or b""))
    async def _(w, path=_path):
        return await raw_get(w, path)


# -- the test -------------------------------------------------------------------------------


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
async def test_hostile_input_changes_nothing(world: World, c: Case):
    client = {"hmac": world.hmac, "v3": world.v3}.get(c.server, world.md5)
    before = await snapshot(client.store)
    try:
        reply = await c.run(world)
        logwatch.add_text(reply.body or b"")
        expected = c.status if isinstance(c.status, tuple) else (c.status,)
        assert reply.code in expected, (reply.code, (reply.body or b"")[:300])
        if c.check is not None:
            c.check(world, reply)
        assert await snapshot(client.store) == before, "the store changed"
    except AssertionError as exc:
        record("hostile", c.id, f"FAIL: {str(exc)[:200]}")
        raise
    record("hostile", c.id, "pass", status=reply.code)


async def test_there_are_at_least_fifty_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 50
    record("hostile", "(case count)", "pass", cases=len(CASES))
