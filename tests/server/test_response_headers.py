"""The headers each kind of answer carries, through a real server.

handlers/base.py resets a handler's headers in one step (no ``Server``,
a ``Date`` formatted once a second, constants not re-validated) and the
JSON answers set theirs directly: these pin that every kind of answer still
carries what it did (edge/headers.py's own rule is pinned by
test_security_headers.py)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from handlers.base import PAGE_CSP

from .browser import Browser
from .journey import create_checkout

ADMIN = {"Authorization": "Basic YWRtaW46c2FuZGJveC1hZG1pbg=="}  # admin:sandbox-admin
EVERY = {"Referrer-Policy": "strict-origin-when-cross-origin", "X-Frame-Options": "DENY",
         "X-Content-Type-Options": "nosniff"}
JSON = {**EVERY, "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}


def problems(response, expected: dict[str, str], absent: tuple[str, ...] = ()) -> list[str]:
    found = [f"{name}: {response.headers.get(name)!r} (wanted {value!r})"
             for name, value in expected.items() if response.headers.get(name) != value]
    found += [f"{name} present" for name in ("Server", *absent) if name in response.headers]
    stamp = parsedate_to_datetime(response.headers["Date"])
    if abs((datetime.now(timezone.utc) - stamp).total_seconds()) > 5:
        found.append(f"Date {response.headers['Date']} is not now")
    return found


async def test_poll_page_api_error_and_admin_answers_carry_their_headers(running, base_url, merchant):
    checkout = await create_checkout(merchant)
    poll = await merchant.get(f"/pay/{checkout['id']}/status")
    assert poll.code == 200
    assert problems(poll, JSON, absent=("Etag", "Content-Security-Policy")) == []
    assert int(poll.headers["Content-Length"]) == len(poll.body)

    missing = await merchant.get("/pay/co_000000000000000000000000/status")
    assert missing.code == 404 and problems(missing, JSON, absent=("Content-Security-Policy",)) == []

    page = await Browser(base_url).get(f"/pay/{checkout['id']}")
    assert page.code == 200
    assert problems(page, {**EVERY, "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store",
                           "Content-Type": "text/html; charset=UTF-8"}) == []

    admin = await merchant.get("/status", headers=ADMIN)
    assert admin.code == 200
    assert problems(admin, {**EVERY, "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store",
                            "X-Robots-Tag": "noindex"}) == []

    # A page whose handler failed still answers as a page.
    error_page = await Browser(base_url).get("/pay/co_000000000000000000000000")
    assert error_page.code == 404
    assert problems(error_page, {**EVERY, "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"}) == []


async def test_the_date_header_moves_on_with_the_clock(running, merchant):
    checkout = await create_checkout(merchant)
    first = parsedate_to_datetime((await merchant.get(f"/pay/{checkout['id']}/status")).headers["Date"])
    await asyncio.sleep(1.1)
    later = parsedate_to_datetime((await merchant.get(f"/pay/{checkout['id']}/status")).headers["Date"])
    assert (later - first).total_seconds() >= 1


async def test_if_none_match_still_answers_304_where_there_is_an_etag(running, merchant):
    checkout = await create_checkout(merchant)
    # No-store JSON has no validator: any If-None-Match gets the full answer.
    poll = await merchant.get(f"/pay/{checkout['id']}/status", headers={"If-None-Match": "*"})
    assert poll.code == 200 and poll.body
    # A revalidated answer of our own handlers (the sandbox bridge, no-cache) keeps its ETag and 304.
    first = await merchant.get("/_sandbox/bridge.js")
    assert first.code == 200 and first.headers.get("Etag"), dict(first.headers)
    again = await merchant.get("/_sandbox/bridge.js", headers={"If-None-Match": first.headers["Etag"]})
    assert again.code == 304 and not again.body
    star = await merchant.get("/_sandbox/bridge.js", headers={"If-None-Match": "*"})
    assert star.code == 304
    other = await merchant.get("/_sandbox/bridge.js", headers={"If-None-Match": '"not-it"'})
    assert other.code == 200 and other.body
