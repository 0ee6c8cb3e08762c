"""Hostile forms on the operator's console (/status): every refusal is a page
with a code, never a 500, and the business state (checkouts, orders,
refunds, outbox) does not change; what a spreadsheet would run as a formula
leaves the day's CSV defused.

The families: a cross-site POST (no token, a forged token, a token without
the admin's credentials), digits ``int()`` or ``Decimal`` take but a form
must not (full-width, exponents, NaN, signs), amounts beyond what is left,
keys that are not keys. One real sandbox server on loopback.
"""
from __future__ import annotations

import asyncio
import base64
import csv
import io
from urllib.parse import urlencode

import pytest
import pytest_asyncio

from service.console import refund_key
from tests.server.browser import Browser
from tests.server.journey import create_checkout, wait_status
from tests.server.payments import native_prepay, scan_and_pay

from .harness import Client, snapshot, start_server
from .results import record

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN: dict[str, str] = {}  # the battery server's own admin credentials (set by the fixture)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    running = await start_server(tmp_path_factory.mktemp("console"))
    admin_settings = running.settings.admin
    ADMIN["Authorization"] = "Basic " + base64.b64encode(
        f"{admin_settings.username}:{admin_settings.password}".encode()).decode()
    try:
        c = Client(running)
        merchant = Browser(c.base)
        merchant.token_headers = {"Authorization": f"Bearer {c.token}"}  # type: ignore[attr-defined]
        paid = await create_checkout(merchant, 3000, merchant_reference='=HYPERLINK("http://evil","x")')
        desktop, result = await native_prepay(c.base, paid["id"])
        await scan_and_pay(desktop, result["code_url"])
        await wait_status(desktop, paid["id"], "paid")
        admin = Browser(c.base)
        page = await admin.get(f"/status/checkouts/{paid['id']}", headers=ADMIN)
        assert page.code == 200 and "_xsrf" in admin.cookies
        yield running, c, paid, admin
    finally:
        await running.stop(grace=1)


def refund_cases(xsrf: str, key_3001: str) -> list[tuple[str, str, dict, dict, int, str]]:
    """(case, path suffix, fields, headers, status, code); ``key_3001`` is the key a review of ¥30.01 would carry."""
    ok = {"_xsrf": xsrf}
    cases = [
        ("console-post-without-xsrf", "/refund/confirm", {"key": "a" * 32, "amount_fen": "100"}, ADMIN, 403, "xsrf_invalid"),
        ("console-post-forged-xsrf", "/refund/confirm",
         {"_xsrf": "2|deadbeef|" + "0" * 32 + "|1", "key": "a" * 32, "amount_fen": "100"}, ADMIN, 403, "xsrf_invalid"),
        ("console-post-xsrf-without-credentials", "/refund/confirm", {**ok, "key": "a" * 32, "amount_fen": "100"}, {},
         401, "admin_auth_required"),
        ("console-refund-above-refundable", "/refund", {**ok, "amount": "30.01"}, ADMIN, 400, "refund_exceeds_remaining"),
        ("console-refund-confirm-above-refundable", "/refund/confirm", {**ok, "key": key_3001, "amount_fen": "3001"},
         ADMIN, 400, "refund_exceeds_remaining"),
    ]
    for label, amount in [("fullwidth-digits", "１２"), ("exponent", "1e2"), ("nan", "NaN"), ("infinity", "Infinity"),
                          ("negative", "-5"), ("plus", "+5"), ("three-decimals", "1.001"), ("zero", "0.00"),
                          ("huge", "9" * 40), ("arabic-indic", "١٢")]:
        cases.append((f"console-refund-amount-{label}", "/refund", {**ok, "amount": amount}, ADMIN, 400,
                      "invalid_amount"))
    for label, fen in [("fullwidth-digits", "１００"), ("exponent", "1e2"), ("negative", "-100"), ("empty", "")]:
        cases.append((f"console-refund-confirm-amount-{label}", "/refund/confirm",
                      {**ok, "key": "c" * 32, "amount_fen": fen}, ADMIN, 400, "invalid_amount"))
    for label, key in [("short", "abc"), ("spaces", " " * 32), ("newline", "d" * 31 + "\n"), ("missing", None)]:
        fields = {**ok, "amount_fen": "100", **({"key": key} if key is not None else {})}
        cases.append((f"console-refund-confirm-key-{label}", "/refund/confirm", fields, ADMIN, 400,
                      "invalid_action_key"))
    cases.append(("console-refund-reason-bidi", "/refund", {**ok, "amount": "1", "reason": "ok\u202egnp.exe"}, ADMIN,
                  400, "invalid_reason"))
    return cases


async def test_hostile_console_forms_are_refused_and_change_nothing(world):
    running, c, paid, admin = world
    failures = []
    key_3001 = refund_key(await running.services.checkouts.get(paid["id"]), 3001, None)
    for case, suffix, fields, headers, status, code in refund_cases(admin.cookies["_xsrf"], key_3001):
        before = await snapshot(running.services.store)
        reply = await admin.post(f"/status/checkouts/{paid['id']}{suffix}", body=urlencode(fields),
                                 headers={**headers, **FORM})
        after = await snapshot(running.services.store)
        body = reply.body.decode("utf-8", "replace")
        problem = None
        if reply.code != status:
            problem = f"status {reply.code}, wanted {status}"
        elif code not in body:
            problem = f"no {code} in the answer"
        elif before != after:
            problem = "the business state changed"
        record("hostile", case, f"FAIL: {problem}" if problem else "pass", status=reply.code)
        running.app.settings["admin_lockout"].succeeded("127.0.0.1")
        if problem:
            failures.append((case, problem))
    assert failures == []


async def test_the_days_csv_defuses_what_a_spreadsheet_would_run(world):
    running, c, paid, admin = world
    reply = await admin.get("/status/export.csv", headers=ADMIN)
    rows = list(csv.reader(io.StringIO(reply.body.decode())))
    cells = [cell for row in rows[1:] for cell in row]
    risky = [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    defused = [cell for cell in cells if cell.startswith("'=HYPERLINK")]
    outcome = "pass" if reply.code == 200 and not risky and defused else f"FAIL: risky cells {risky[:3]}"
    record("hostile", "console-csv-formula-in-merchant-reference", outcome, rows=len(rows) - 1)
    assert outcome == "pass"


def review_key(page: str) -> str:
    import html
    import re

    found = re.search(r'name="key" value="([^"]*)"', page)
    assert found, "no key in the review page"
    return html.unescape(found.group(1))


async def console_count(store) -> int:
    return await store.count("audit", {"kind": "console"})


async def test_a_confirmation_acts_on_the_state_it_showed_or_not_at_all(world):
    """A stale or edited confirmation form is refused (409 ``confirmation_stale``)
    and changes nothing; one about an unknown checkout costs no record; two
    confirmations racing for more than is left refund once."""
    running, c, _paid, admin = world
    merchant = Browser(c.base)
    merchant.token_headers = {"Authorization": f"Bearer {c.token}"}  # type: ignore[attr-defined]
    post_headers = {**ADMIN, **FORM}
    xsrf = {"_xsrf": admin.cookies["_xsrf"]}
    store = running.services.store

    async def paid(amount: int) -> str:
        checkout = await create_checkout(merchant, amount)
        desktop, result = await native_prepay(c.base, checkout["id"])
        await scan_and_pay(desktop, result["code_url"])
        await wait_status(desktop, checkout["id"], "paid")
        return checkout["id"]

    async def money(cid: str) -> tuple[int, int]:
        """What a refund changes: the checkout's refunds and its reserved amount (the
        rest of the store moves on its own meanwhile: refunds settle, webhooks go out)."""
        checkout = await running.services.checkouts.get(cid)
        return len(await running.services.refunds.for_checkout(cid)), checkout.refund_reserved_fen

    async def post(path: str, fields: dict):
        return await admin.post(path, body=urlencode({**xsrf, **fields}), headers=post_headers)

    async def review(cid: str, amount: str, reason: str = "") -> str:
        reply = await post(f"/status/checkouts/{cid}/refund", {"amount": amount, "reason": reason})
        assert reply.code == 200, reply.body[:300]
        return review_key(reply.body.decode())

    def outcome(reply, status: int, code: str, changed: bool) -> str:
        if reply.code != status:
            return f"FAIL: status {reply.code}, wanted {status}"
        if code not in reply.body.decode("utf-8", "replace"):
            return f"FAIL: no {code} in the answer"
        return "FAIL: the business state changed" if changed else "pass"

    results = {}
    # 1. Reviewed "refund ¥1.00, ¥11.34 stays refundable"; the merchant API refunds ¥5 meanwhile.
    cid = await paid(1234)
    key = await review(cid, "1")
    r = await merchant.post(f"/api/checkouts/{cid}/refunds", json_body={"amount_fen": 500},
                            headers=merchant.token_headers)
    assert r.code == 201, r.body
    before = await money(cid)
    reply = await post(f"/status/checkouts/{cid}/refund/confirm", {"key": key, "amount_fen": "100", "reason": ""})
    results["console-refund-confirm-stale-after-another-refund"] = (
        outcome(reply, 409, "confirmation_stale", before != await money(cid)), reply.code)
    # 2. The same review's key with its hidden amount edited (¥1.00 reviewed, ¥7.00 sent).
    key = await review(cid, "1")
    before = await money(cid)
    reply = await post(f"/status/checkouts/{cid}/refund/confirm", {"key": key, "amount_fen": "700", "reason": ""})
    results["console-refund-confirm-hidden-amount-edited"] = (
        outcome(reply, 409, "confirmation_stale", before != await money(cid)), reply.code)
    # 3. Confirmations about a checkout that does not exist (a 6000-character id): 404, no record kept.
    records = await console_count(store)
    long_id = "co_" + "x" * 6000
    replies = [await post(f"/status/checkouts/{long_id}/refund/confirm", {"key": "e" * 32, "amount_fen": "100"}),
               await post(f"/status/checkouts/{long_id}/cancel/confirm", {"key": "f" * 32})]
    kept = await console_count(store) - records
    results["console-confirm-unknown-checkout-keeps-no-record"] = (
        "pass" if [x.code for x in replies] == [404, 404] and kept == 0 else
        f"FAIL: {[x.code for x in replies]}, {kept} records kept", kept)
    # 4. Cancel reviewed with no WeChat order ("closed at once"); the shopper starts paying meanwhile.
    open_one = await create_checkout(merchant, 800)
    reply = await post(f"/status/checkouts/{open_one['id']}/cancel", {})
    key = review_key(reply.body.decode())
    await native_prepay(c.base, open_one["id"])
    reply = await post(f"/status/checkouts/{open_one['id']}/cancel/confirm", {"key": key})
    still = (await running.services.checkouts.get(open_one["id"])).status
    results["console-cancel-confirm-stale-after-an-order-started"] = (
        outcome(reply, 409, "confirmation_stale", still != "open"), reply.code)
    # 5. Two reviews of ¥20 each on ¥30 paid, confirmed at once: one refund, one clear refusal.
    cid = await paid(3000)
    keys = [await review(cid, "20", "first"), await review(cid, "20", "second")]
    replies = await asyncio.gather(*(
        post(f"/status/checkouts/{cid}/refund/confirm", {"key": k, "amount_fen": "2000", "reason": why})
        for k, why in zip(keys, ["first", "second"])))
    refunds = await running.services.refunds.for_checkout(cid)
    codes = sorted(x.code for x in replies)
    refused = [x.body.decode() for x in replies if x.code != 303]
    results["console-refund-race-two-confirmations"] = (
        "pass" if len(refunds) == 1 and codes[0] == 303 and codes[1] in (400, 409) and refused
        and ("refund_exceeds_remaining" in refused[0] or "confirmation_stale" in refused[0])
        else f"FAIL: {codes}, {len(refunds)} refunds", codes)
    # 6. "1,50" is not ¥150.
    before = await money(cid)
    reply = await post(f"/status/checkouts/{cid}/refund", {"amount": "1,50"})
    results["console-refund-amount-decimal-comma"] = (
        outcome(reply, 400, "invalid_amount", before != await money(cid)), reply.code)
    # 7. A resend of an event that does not exist keeps no record.
    records = await console_count(store)
    replies = [await post(f"/status/webhooks/{event}/resend", {"key": "g" * 32})
               for event in ("ev_" + "x" * 90, "ev_nope", "nope")]
    kept = await console_count(store) - records
    results["console-resend-unknown-event-keeps-no-record"] = (
        "pass" if [x.code for x in replies] == [404] * 3 and kept == 0 else
        f"FAIL: {[x.code for x in replies]}, {kept} records kept", kept)
    for case, (result, status) in results.items():
        record("hostile", case, result, status=status)
    assert {case: result for case, (result, _) in results.items() if result != "pass"} == {}


async def test_the_days_csv_defuses_a_formula_behind_spaces(world):
    running, c, _paid, admin = world
    merchant = Browser(c.base)
    merchant.token_headers = {"Authorization": f"Bearer {c.token}"}  # type: ignore[attr-defined]
    checkout = await create_checkout(merchant, 100, merchant_reference='  =HYPERLINK("http://evil","y")')
    desktop, result = await native_prepay(c.base, checkout["id"])
    await scan_and_pay(desktop, result["code_url"])
    await wait_status(desktop, checkout["id"], "paid")
    reply = await admin.get("/status/export.csv", headers=ADMIN)
    cells = [cell for row in csv.reader(io.StringIO(reply.body.decode())) for cell in row]
    risky = [cell for cell in cells if cell.lstrip(" ")[:1] in ("=", "+", "-", "@", "\t", "\r")]
    outcome = ("pass" if reply.code == 200 and not risky and "'  =HYPERLINK(\"http://evil\",\"y\")" in cells
               else f"FAIL: risky cells {risky[:3]}")
    record("hostile", "console-csv-formula-behind-spaces", outcome)
    assert outcome == "pass"


async def test_a_failed_event_can_be_resent_more_than_once(tmp_path):
    """Resend, fail again, resend again...: each resend from the console queues the
    event (its history keeps 10 attempts, so the key must not rest on its length)."""
    from tests.server.payments import Receiver, paid_checkout, wait_for, webhook_overrides

    receiver = Receiver()
    receiver.fail_all = True
    running = await start_server(tmp_path, **webhook_overrides(
        receiver, **{"webhooks.max_attempts": 6, "webhooks.retry_base_s": 0.01}))
    try:
        c = Client(running)
        merchant = Browser(c.base)
        merchant.token_headers = {"Authorization": f"Bearer {c.token}"}  # type: ignore[attr-defined]
        checkout = await paid_checkout(merchant, c.base, 250)
        event_id = f"ev_{checkout['id'][3:]}_paid"
        admin = Browser(c.base)
        admin_settings = running.settings.admin
        auth = {"Authorization": "Basic " + base64.b64encode(
            f"{admin_settings.username}:{admin_settings.password}".encode()).decode()}

        async def failed() -> bool:
            doc = await running.services.store.get("outbox", event_id)
            return doc is not None and doc["state"] == "failed"

        resent = []
        for _ in range(3):  # histories of 6, then 10, then 10 attempts
            await wait_for(failed)
            page = await admin.get("/status/webhooks", headers=auth)
            fields = {"_xsrf": admin.cookies["_xsrf"], "key": review_key(page.body.decode())}
            await admin.post(f"/status/webhooks/{event_id}/resend", body=urlencode(fields), headers={**auth, **FORM})
            resent.append((await running.services.store.get("outbox", event_id)).get("resent", 0))
        outcome = "pass" if resent == [1, 2, 3] else f"FAIL: resent counts {resent}"
        record("hostile", "console-resend-twice-after-history-full", outcome, resent=resent)
        assert outcome == "pass"
    finally:
        await running.stop(grace=2)
        receiver.stop()
