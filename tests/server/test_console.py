"""The operator's console under /status over real HTTP: a real server, the
simulator, a real SQLite file.

Admin credentials and the XSRF token on every action; actions through the
merchant API's own use cases, each recorded (who, from where, when) before
it is done, and done once however often its form is sent; clear refusals
that change nothing; the day's CSV safe to open in a spreadsheet."""
from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from service.audit import CONSOLE
from service.console import cancel_key, refund_key
from service.daybook import china_day_of
from service.models import AUDIT, REFUNDS

from .browser import Browser, as_json
from .conftest import BOTH_VERSIONS, start_server
from .journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status
from .payments import Receiver, get_checkout, paid_checkout, wait_for, wait_refund, webhook_overrides
from .test_admin_status import ADMIN, basic


class Operator(Browser):
    """An admin's browser: Basic credentials on every request, forms posted with the page's XSRF token."""

    def __init__(self, base: str, headers: dict[str, str] = ADMIN) -> None:
        super().__init__(base)
        self.auth = headers

    async def page(self, path: str, code: int = 200) -> str:
        r = await self.get(path, headers=self.auth)
        assert r.code == code, (path, r.code, r.body[:500])
        return r.body.decode()

    async def submit(self, path: str, fields: dict[str, str], *, xsrf: bool = True):
        if xsrf and "_xsrf" not in self.cookies:
            await self.page("/status/webhooks")  # any console page with a form sets the token
        body = {**({"_xsrf": self.cookies["_xsrf"]} if xsrf else {}), **fields}
        return await self.post(path, body=urlencode(body), headers={
            **self.auth, "Content-Type": "application/x-www-form-urlencoded"})


def text(page: str) -> str:
    """The page's visible words, one space apart."""
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden {name} in the page"
    return html.unescape(found.group(1))


async def console_records(running) -> list[dict]:
    return await running.services.store.find(AUDIT, {"kind": "console"}, sort=[("at", 1)], limit=0)


async def jsapi_paid(base_url: str, merchant: Browser, amount: int, **extra) -> tuple[dict, dict]:
    checkout = await create_checkout(merchant, amount, **extra)
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    result = await prepay(shopper, checkout["id"])
    await pay_in_simulator(shopper, result["bridge"])
    await wait_status(shopper, checkout["id"], "paid")
    return checkout, result


async def test_every_console_page_and_action_needs_the_admin(running, base_url, merchant):
    checkout = await create_checkout(merchant, 100)
    cid = checkout["id"]
    gets = ["/status/search?q=x", f"/status/checkouts/{cid}", "/status/webhooks", "/status/export.csv"]
    posts = [f"/status/checkouts/{cid}/refund", f"/status/checkouts/{cid}/refund/confirm",
             f"/status/checkouts/{cid}/cancel", f"/status/checkouts/{cid}/cancel/confirm",
             f"/status/webhooks/ev_{cid[3:]}_paid/resend"]
    lockout = running.app.settings["admin_lockout"]
    for headers in ({}, basic("admin", "wrong"), {"Authorization": "Bearer sandbox-merchant-token"}):
        stranger = Operator(base_url, headers)
        await stranger.get(checkout["pay_url"])  # the pay page hands out a valid XSRF token
        assert "_xsrf" in stranger.cookies
        for path in gets:
            r = await stranger.get(path, headers=headers)
            assert r.code == 401 and cid.encode() not in r.body, path
            lockout.succeeded("127.0.0.1")  # this test is about refusals, not the lockout
        for path in posts:
            r = await stranger.submit(path, {"key": "s" * 32, "amount": "1", "amount_fen": "100"})
            assert r.code == 401 and cid.encode() not in r.body, path
            lockout.succeeded("127.0.0.1")
    assert await console_records(running) == []


async def test_actions_need_the_xsrf_token_even_with_the_setting_off(tmp_path):
    running = await start_server(tmp_path, **{"server.xsrf_cookies": False})
    try:
        base = f"http://127.0.0.1:{running.port}"
        checkout, _ = await running.services.checkouts.create({"amount_fen": 300, "description": "Tea"})
        admin = Operator(base)
        page = await admin.page(f"/status/checkouts/{checkout.id}")
        assert "_xsrf" in page and "_xsrf" in admin.cookies
        for fields in ({}, {"_xsrf": "2|00000000|" + "0" * 32 + "|1"}):
            r = await admin.submit(f"/status/checkouts/{checkout.id}/cancel/confirm",
                                   {"key": "k" * 32, **fields}, xsrf=False)
            assert r.code == 403 and b"xsrf_invalid" in r.body
        assert (await running.services.checkouts.get(checkout.id)).status == "open"
        assert await console_records(running) == []
        # With the token it goes through.
        r = await admin.submit(f"/status/checkouts/{checkout.id}/cancel/confirm", {"key": cancel_key(checkout)})
        assert r.code == 303
        assert (await running.services.checkouts.get(checkout.id)).status == "closed"
    finally:
        await running.stop(grace=2)


async def test_search_finds_a_checkout_by_each_number(running, base_url, merchant):
    checkout, result = await jsapi_paid(base_url, merchant, 1234, merchant_reference="SO-2026-0042")
    order = await running.services.orders.require(result["out_trade_no"])
    admin = Operator(base_url)
    for query, matched in [
        (checkout["id"], "checkout_id"), ("SO-2026-0042", "merchant_reference"), (order.out_trade_no, "out_trade_no"),
        (order.transaction_id, "transaction_id"), (order.openid, "openid"),
    ]:
        page = await admin.page("/status/search?" + urlencode({"q": query}))
        assert f'href="/status/checkouts/{checkout["id"]}"' in page, query
        assert f"1 checkout matches {query}" in text(page) and matched in text(page)
    page = await admin.page("/status/search?" + urlencode({"q": "SO-2026-004"}))
    assert "Nothing matches SO-2026-004 exactly" in text(page)
    page = await admin.page("/status/search?" + urlencode({"q": "x" * 200}), 400)
    assert "search_too_long" in page and "at most 128 characters" in text(page)
    page = await admin.page("/status/search?q=a%01b", 400)
    assert "invalid_search" in page
    page = await admin.page("/status/checkouts/co_000000000000000000000000", 404)
    assert "checkout_not_found" in page


@BOTH_VERSIONS
async def test_a_checkouts_timeline_tells_its_story_without_secrets(running, base_url, merchant, api_version):
    checkout, result = await jsapi_paid(base_url, merchant, 2500, merchant_reference="<b>SO-1</b>")
    page = await Operator(base_url).page(f"/status/checkouts/{checkout['id']}")
    words = text(page)
    for expected in ("Checkout created", f"WeChat order {result['out_trade_no']} started", "Payment notify: paid",
                     "proof of origin verified", "confirmed by WeChat's orderquery, before the verdict", "Order " + result["out_trade_no"] + " paid (confirmed with WeChat)",
                     "Checkout paid", "¥25.00 (2500 fen)", "Refund (yuan)"):
        assert expected in words, expected
    assert "<b>SO-1</b>" not in page and "&lt;b&gt;SO-1&lt;/b&gt;" in page  # the merchant's text is escaped
    if api_version == "v2":
        assert "raw body, as received" in words and "&lt;return_code&gt;" in page  # the verified notify, as received
    else:  # APIv3's body is ciphertext: what it said, decrypted, is what was kept
        assert "decrypted resource, as recorded" in words and "&quot;trade_state&quot;: &quot;SUCCESS&quot;" in page
    wechat = running.settings.wechat
    secrets_ = [s for s in (wechat.api_key, wechat.apiv3_key, wechat.app_secret) if s]
    assert secrets_ and not [s for s in secrets_ if s in page]
    assert "<script" not in page and running.app.settings["cookie_secret"] not in page


async def test_refund_partial_then_full_each_confirmed_once_and_recorded(running, base_url, merchant):
    checkout = await paid_checkout(merchant, base_url, 1000)
    cid = checkout["id"]
    admin = Operator(base_url)
    await admin.page(f"/status/checkouts/{cid}")

    # The first step only shows what would happen.
    r = await admin.submit(f"/status/checkouts/{cid}/refund", {"amount": "3.5", "reason": "Scratched cup"})
    assert r.code == 200
    review = r.body.decode()
    assert "Refund ¥3.50 (350 fen)" in text(review) and "A partial refund: ¥6.50 stays refundable" in text(review)
    assert await running.services.refunds.for_checkout(cid) == [] and await console_records(running) == []

    key = hidden(review, "key")
    fields = {"key": key, "amount_fen": hidden(review, "amount_fen"), "reason": hidden(review, "reason")}
    r = await admin.submit(f"/status/checkouts/{cid}/refund/confirm", fields)
    assert r.code == 303 and r.headers["Location"] == f"/status/checkouts/{cid}?done={key}"
    refunds = await running.services.refunds.for_checkout(cid)
    assert [(x.amount_fen, x.reason) for x in refunds] == [(350, "Scratched cup")]
    await wait_refund(merchant, cid, refunds[0].out_refund_no, "succeeded")
    # The same form again (a double click, a reload): nothing more.
    r = await admin.submit(f"/status/checkouts/{cid}/refund/confirm", fields)
    assert r.code == 303 and r.headers["Location"].endswith("&again=1")
    page = await admin.page(r.headers["Location"])
    assert "This form was submitted before: nothing was done twice" in text(page)
    assert len(await running.services.refunds.for_checkout(cid)) == 1

    [record] = await console_records(running)
    assert (record["action"], record["user"], record["source"], record["verdict"], record["amount_fen"]) == (
        "refund", "admin", "127.0.0.1", "done", 350)
    assert record["out_refund_no"] == refunds[0].out_refund_no and record["ended_at"] >= record["at"]
    assert "Console: refund by admin: done" in text(page) and "Refund succeeded" in text(page)

    # The rest, in full: the form offers exactly what is left.
    assert 'id="refund-amount" name="amount" inputmode="decimal" maxlength="16" required value="6.50"' in page
    r = await admin.submit(f"/status/checkouts/{cid}/refund", {"amount": "6.50", "reason": ""})
    review = r.body.decode()
    assert "This refunds everything still refundable" in text(review)
    r = await admin.submit(f"/status/checkouts/{cid}/refund/confirm", {
        "key": hidden(review, "key"), "amount_fen": "650", "reason": ""})
    assert r.code == 303
    rest = [x for x in await running.services.refunds.for_checkout(cid) if x.amount_fen == 650]
    await wait_refund(merchant, cid, rest[0].out_refund_no, "succeeded")
    assert (await get_checkout(merchant, cid))["status"] == "refunded"
    page = await admin.page(f"/status/checkouts/{cid}")
    assert 'id="refund-form"' not in page and "nothing left to refund" in text(page)


async def test_refund_refusals_are_clear_and_change_nothing(running, base_url, merchant):
    checkout = await paid_checkout(merchant, base_url, 1234)
    cid = checkout["id"]
    admin = Operator(base_url)
    cases = [
        ({"amount": "12.35"}, 400, "refund_exceeds_remaining", "¥12.35 is more than the ¥12.34 still refundable"),
        ({"amount": "abc"}, 400, "invalid_amount", "Type the amount in yuan"),
        ({"amount": "1.234"}, 400, "invalid_amount", "at most two decimals"),
        ({"amount": "0"}, 400, "invalid_amount", "more than zero"),
        ({"amount": "-1"}, 400, "invalid_amount", "Type the amount in yuan"),
        ({"amount": "1", "reason": "x" * 81}, 400, "invalid_reason", "at most 80 characters"),
        ({"amount": "1", "reason": "a\u202eb"}, 400, "invalid_reason", "control characters"),
    ]
    for fields, code, error, message in cases:
        r = await admin.submit(f"/status/checkouts/{cid}/refund", {"reason": "", **fields})
        assert r.code == code, fields
        page = r.body.decode()
        assert f"<code>{error}</code>" in page and message in text(page), (fields, text(page)[:400])
        assert 'id="refund-form"' in page  # the form is there to correct it
    # The confirmation step checks again (the page may be stale; the form may be forged).
    current = await running.services.checkouts.get(cid)
    too_much = refund_key(current, 99999, None)  # a form whose hidden amount was edited upwards
    r = await admin.submit(f"/status/checkouts/{cid}/refund/confirm", {"key": "k" * 32, "amount_fen": "99999"})
    assert r.code == 409 and "confirmation_stale" in r.body.decode()  # not the state any review showed
    r = await admin.submit(f"/status/checkouts/{cid}/refund/confirm", {"key": too_much, "amount_fen": "99999"})
    assert r.code == 400 and "refund_exceeds_remaining" in r.body.decode()
    for fields, error in [({"key": "short", "amount_fen": "100"}, "invalid_action_key"),
                          ({"key": "m" * 32, "amount_fen": "1e3"}, "invalid_amount"),
                          ({"key": "n" * 32}, "invalid_amount")]:
        r = await admin.submit(f"/status/checkouts/{cid}/refund/confirm", fields)
        assert r.code == 400 and error in r.body.decode(), fields
    assert await running.services.refunds.for_checkout(cid) == []
    assert await running.services.store.count(REFUNDS, {}) == 0
    # What reached the claim is recorded with its refusal; what was malformed never was.
    assert [(x["verdict"], x["amount_fen"]) for x in await console_records(running)] == [
        ("refund_exceeds_remaining", 99999)]
    # A refused confirmation frees its key; a corrected form goes through (once).
    r = await admin.submit(f"/status/checkouts/{cid}/refund/confirm", {"key": refund_key(current, 100, None),
                                                                       "amount_fen": "100"})
    assert r.code == 303 and not r.headers["Location"].endswith("again=1")
    assert [x.amount_fen for x in await running.services.refunds.for_checkout(cid)] == [100]
    assert sorted((x["verdict"], x["amount_fen"]) for x in await console_records(running)) == [
        ("done", 100), ("refund_exceeds_remaining", 99999)]
    # An unpaid checkout cannot be refunded; an unknown one is not found.
    unpaid = await create_checkout(merchant, 500)
    r = await admin.submit(f"/status/checkouts/{unpaid['id']}/refund", {"amount": "1"})
    assert r.code == 409 and "checkout_not_paid" in r.body.decode()
    r = await admin.submit("/status/checkouts/co_000000000000000000000000/refund", {"amount": "1"})
    assert r.code == 404 and "checkout_not_found" in r.body.decode()


async def test_cancel_is_confirmed_then_closes_through_the_merchants_cancel(running, base_url, merchant):
    checkout = await create_checkout(merchant, 800)
    cid = checkout["id"]
    shopper, _ = await sign_in_with_wechat(base_url, checkout["pay_url"])
    await prepay(shopper, cid)  # a WeChat order to close
    admin = Operator(base_url)
    page = await admin.page(f"/status/checkouts/{cid}")
    assert 'id="cancel-form"' in page and 'id="refund-form"' not in page
    r = await admin.submit(f"/status/checkouts/{cid}/cancel", {})
    review = r.body.decode()
    assert r.code == 200 and "Its 1 WeChat order will be checked with WeChat and closed" in text(review)
    assert (await running.services.checkouts.get(cid)).status == "open" and await console_records(running) == []
    r = await admin.submit(f"/status/checkouts/{cid}/cancel/confirm", {"key": hidden(review, "key")})
    assert r.code == 303
    assert (await get_checkout(merchant, cid))["status"] == "closed"
    page = await admin.page(r.headers["Location"])
    assert "Cancel done by admin" in text(page) and "Cancelled: every WeChat order closed" in text(page)
    assert "WeChat order query: ok (NOTPAY)" in text(page)  # the cancel asked WeChat first, and that is recorded
    [record] = await console_records(running)
    assert (record["action"], record["user"], record["verdict"], record["status"]) == ("cancel", "admin", "done", "closed")
    # A paid checkout is not cancelled: refund it instead.
    paid = await paid_checkout(merchant, base_url, 300)
    r = await admin.submit(f"/status/checkouts/{paid['id']}/cancel", {})
    assert r.code == 409 and "checkout_not_open" in r.body.decode() and "refund it instead" in text(r.body.decode())
    r = await admin.submit(f"/status/checkouts/{paid['id']}/cancel/confirm",
                           {"key": cancel_key(await running.services.checkouts.get(paid["id"]))})
    assert r.code == 409 and "checkout_paid" in r.body.decode()
    assert (await get_checkout(merchant, paid["id"]))["status"] == "paid"


async def test_failed_webhooks_are_listed_and_resent_once(tmp_path):
    receiver = Receiver()
    receiver.fail_all = True
    running = await start_server(tmp_path, **webhook_overrides(receiver, **{"webhooks.max_attempts": 2}))
    try:
        base = f"http://127.0.0.1:{running.port}"
        merchant = Browser(base)
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]
        checkout = await paid_checkout(merchant, base, 250)
        event_id = f"ev_{checkout['id'][3:]}_paid"

        async def failed() -> bool:
            return [d["state"] for d in await running.services.store.find("outbox", {})] == ["failed"]

        await wait_for(failed)
        admin = Operator(base)
        page = await admin.page("/status/webhooks")
        assert event_id in page and "HTTP 500" in text(page) and "0 waiting · 1 failed" in text(page)
        key = hidden(page, "key")
        # A key that is not the event's as it stands (edited, or from before a delivery attempt) does nothing.
        r = await admin.submit(f"/status/webhooks/{event_id}/resend", {"key": "z" * 32})
        assert r.code == 409 and "confirmation_stale" in r.body.decode()
        assert (await running.services.store.get("outbox", event_id)).get("resent", 0) == 0
        assert await console_records(running) == []
        receiver.fail_all = False
        r = await admin.submit(f"/status/webhooks/{event_id}/resend", {"key": key})
        assert r.code == 303 and r.headers["Location"] == f"/status/webhooks?done={key}"
        again = await admin.submit(f"/status/webhooks/{event_id}/resend", {"key": key})
        assert again.code == 303

        async def delivered() -> bool:
            return receiver.successes() == {event_id: 1}

        await wait_for(delivered)
        [doc] = await running.services.store.find("outbox", {})
        assert doc["resent"] == 1  # the second submit of the same form did nothing
        page = await admin.page(r.headers["Location"])
        assert f"Event {event_id} queued again by admin" in text(page) and "No failed webhook" in text(page)
        [record] = await console_records(running)
        assert (record["action"], record["event_id"], record["checkout_id"]) == ("resend_webhook", event_id, checkout["id"])
        page = await admin.page(f"/status/checkouts/{checkout['id']}")
        assert "Console: resend_webhook by admin: done" in text(page) and "delivered (attempt 1)" in text(page)
        r = await admin.submit("/status/webhooks/ev_nope/resend", {"key": "q" * 32})
        assert r.code == 404 and "event_not_found" in r.body.decode()
    finally:
        await running.stop(grace=2)
        receiver.stop()


async def test_the_days_export_is_a_china_day_in_fen_and_safe_in_a_spreadsheet(running, base_url, merchant):
    plain = await paid_checkout(merchant, base_url, 1234)
    hostile = await create_checkout(merchant, 500, merchant_reference='=HYPERLINK("http://x","y")')
    shopper, _ = await sign_in_with_wechat(base_url, hostile["pay_url"])
    await pay_in_simulator(shopper, (await prepay(shopper, hostile["id"]))["bridge"])
    await wait_status(shopper, hostile["id"], "paid")
    r = await merchant.post(f"/api/checkouts/{plain['id']}/refunds", json_body={
        "amount_fen": 200, "out_refund_no": "-R-1"}, headers=merchant.token_headers)
    assert r.code == 201
    await wait_refund(merchant, plain["id"], "-R-1", "succeeded")
    admin = Operator(base_url)
    today = china_day_of(running.services.now())

    r = await admin.get("/status/export.csv", headers=ADMIN)
    assert r.code == 200 and r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == f'attachment; filename="wxpay-{today.isoformat()}-china-day.csv"'
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert [x["kind"] for x in rows] == ["payment", "payment", "refund"]  # payments first, each oldest first
    assert sorted((x["amount_fen"], x["checkout_id"]) for x in rows[:2]) == [("1234", plain["id"]), ("500", hostile["id"])]
    assert (rows[2]["amount_fen"], rows[2]["checkout_id"]) == ("200", plain["id"])
    [hostile_row] = [x for x in rows if x["checkout_id"] == hostile["id"]]
    assert hostile_row["merchant_reference"] == '\'=HYPERLINK("http://x","y")'
    assert rows[2]["out_refund_no"] == "'-R-1" and rows[2]["state"] == "succeeded"
    assert all(x["time_utc"].endswith("Z") and china_day_of_text(x["time_china"]) == today for x in rows)
    for cell_text in (v for x in rows for v in x.values()):
        assert not cell_text.startswith(("=", "+", "-", "@")), cell_text
    # Another site cannot make the admin's browser export (its <img> or link): refused, nothing recorded.
    exports = len(await running.services.audit.latest(CONSOLE, limit=100))
    for site in ("cross-site", "same-site"):
        refused = await admin.get("/status/export.csv", headers={**ADMIN, "Sec-Fetch-Site": site})
        assert refused.code == 403 and b"cross_site_export" in refused.body and b"HYPERLINK" not in refused.body
    assert len(await running.services.audit.latest(CONSOLE, limit=100)) == exports
    ours = await admin.get("/status/export.csv", headers={**ADMIN, "Sec-Fetch-Site": "same-origin"})
    assert ours.code == 200 and ours.body == r.body
    # The same day named, another day (empty), and what is no day.
    assert (await admin.get(f"/status/export.csv?day={today.isoformat()}", headers=ADMIN)).body == r.body
    earlier = await admin.get(f"/status/export.csv?day={(today - timedelta(days=3)).isoformat()}", headers=ADMIN)
    assert earlier.body.decode().strip().count("\n") == 0  # the header only
    for day in ("2026-13-01", "yesterday", "1999-12-31", (today + timedelta(days=2)).isoformat(), "2026-1-1"):
        bad = await admin.get("/status/export.csv?" + urlencode({"day": day}), headers=ADMIN)
        assert bad.code == 400 and "invalid_day" in bad.body.decode(), day
    exports = [x for x in await console_records(running) if x["action"] == "export"]
    assert [(x["user"], x["day"], x["verdict"]) for x in exports] == [("admin", today.isoformat(), "done")] * 3 + [
        ("admin", (today - timedelta(days=3)).isoformat(), "done")]  # the refused cross-site ones are not


def china_day_of_text(text_: str):
    from datetime import date

    return date.fromisoformat(text_[:10])


async def test_status_shows_todays_gross_refunded_and_net(running, base_url, merchant):
    first = await paid_checkout(merchant, base_url, 1234)
    await paid_checkout(merchant, base_url, 766)
    await merchant.post(f"/api/checkouts/{first['id']}/refunds", json_body={"amount_fen": 300, "out_refund_no": "t1"},
                        headers=merchant.token_headers)
    await wait_refund(merchant, first["id"], "t1", "succeeded")
    page = text(await Operator(base_url).page("/status"))
    assert "Gross today ¥20.00 2 payments" in page
    assert "Refunded today ¥3.00 1 refund" in page
    assert "Net today ¥17.00" in page and f"China day {china_day_of(running.services.now()).isoformat()}" in page
    figures = as_json(await merchant.get("/status.json", headers=ADMIN))  # the JSON view is unchanged
    assert figures["orders_today"]["revenue_fen"] == 2000


def readme_console_tour() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("The same tour with `curl`"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


async def test_the_readmes_console_tour_runs_as_written(running, base_url, merchant, tmp_path):
    """The README's curl tour of the console, run by bash against this server (its port for 8000)."""

    checkout, _ = await jsapi_paid(base_url, merchant, 1234, merchant_reference="order-42")
    script = f"CO={checkout['id']}\n" + readme_console_tour().replace("localhost:8000", base_url)
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, (out.decode(), err.decode())
    lines = out.decode().splitlines()
    assert lines[0] == f"/status/checkouts/{checkout['id']}" and lines[1] == "303", lines
    assert lines[2].startswith("kind,time_utc,") and any(checkout["id"] in line for line in lines[3:]), lines
    assert [(r.amount_fen, r.reason) for r in await running.services.refunds.for_checkout(checkout["id"])] == [
        (250, "Chipped")]


async def test_an_event_can_be_resent_again_after_its_history_is_full(tmp_path):
    """An event's history keeps its last 10 attempts: a resend key built from its
    length repeated once that was full, so the second resend of an event was taken
    for a repeat of the first and did nothing (with the default 15 attempts, at once)."""
    receiver = Receiver()
    receiver.fail_all = True
    running = await start_server(tmp_path, **webhook_overrides(
        receiver, **{"webhooks.max_attempts": 6, "webhooks.retry_base_s": 0.01}))
    try:
        base = f"http://127.0.0.1:{running.port}"
        merchant = Browser(base)
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]
        checkout = await paid_checkout(merchant, base, 250)
        event_id = f"ev_{checkout['id'][3:]}_paid"
        admin = Operator(base)

        async def failed() -> bool:
            doc = await running.services.store.get("outbox", event_id)
            return doc is not None and doc["state"] == "failed"

        for round_ in (1, 2, 3):  # histories of 6, then 10, then 10 attempts
            await wait_for(failed)
            page = await admin.page("/status/webhooks")
            assert hidden(page, "key") == hidden(await admin.page(f"/status/checkouts/{checkout['id']}"), "key")
            r = await admin.submit(f"/status/webhooks/{event_id}/resend", {"key": hidden(page, "key")})
            assert r.code == 303 and "again=1" not in r.headers["Location"], round_
            doc = await running.services.store.get("outbox", event_id)
            assert doc["resent"] == round_, (round_, doc["resent"])
    finally:
        await running.stop(grace=2)
        receiver.stop()
