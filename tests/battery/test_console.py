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

import base64
import csv
import io
from urllib.parse import urlencode

import pytest
import pytest_asyncio

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


def refund_cases(xsrf: str) -> list[tuple[str, str, dict, dict, int, str]]:
    """(case, path suffix, fields, headers, status, code)."""
    ok = {"_xsrf": xsrf}
    cases = [
        ("console-post-without-xsrf", "/refund/confirm", {"key": "a" * 32, "amount_fen": "100"}, ADMIN, 403, "xsrf_invalid"),
        ("console-post-forged-xsrf", "/refund/confirm",
         {"_xsrf": "2|deadbeef|" + "0" * 32 + "|1", "key": "a" * 32, "amount_fen": "100"}, ADMIN, 403, "xsrf_invalid"),
        ("console-post-xsrf-without-credentials", "/refund/confirm", {**ok, "key": "a" * 32, "amount_fen": "100"}, {},
         401, "admin_auth_required"),
        ("console-refund-above-refundable", "/refund", {**ok, "amount": "30.01"}, ADMIN, 400, "refund_exceeds_remaining"),
        ("console-refund-confirm-above-refundable", "/refund/confirm", {**ok, "key": "b" * 32, "amount_fen": "3001"},
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
    for case, suffix, fields, headers, status, code in refund_cases(admin.cookies["_xsrf"]):
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
