"""The console's reads on every backend (SQLite, and the MongoDB store on its
emulator): search by each number, a China day's figures and export rows, a
checkout's audit records, and a console action claimed once."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from service import daybook
from service.audit import Audit
from service.errors import InvalidInput
from service.models import AUDIT, CHECKOUTS, ORDERS, REFUNDS, Checkout, Order, Refund
from service.search import CheckoutSearch
from wxpay.timeutil import CHINA_TZ

DAY = date(2026, 3, 10)


def china(h: int, m: int = 0, s: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 3, day, h, m, s, tzinfo=CHINA_TZ).astimezone(timezone.utc)


def checkout_id(n: int) -> str:
    return f"co_{n:024x}"


async def add_checkout(store, n: int, *, at: datetime, reference: str | None = None, amount: int = 1000,
                       status: str = "paid") -> Checkout:
    c = Checkout(checkout_id(n), amount, f"item {n}", at + timedelta(hours=2), at, status=status,
                 merchant_reference=reference)
    await store.insert(CHECKOUTS, c.to_doc())
    return c


async def add_order(store, n: int, co: Checkout, *, paid: datetime | None, openid: str | None = None,
                    fee: int | None = None, created: datetime | None = None) -> Order:
    o = Order(f"W{n:020d}", co.id, "JSAPI", "wx1", "190", "MD5", fee or co.amount_fen,
              created_at=created or co.created_at, state="paid" if paid else "prepaid", openid=openid)
    if paid:
        o.transaction_id, o.time_end, o.paid_at = f"42000{n:023d}", paid, paid + timedelta(seconds=1)
    await store.insert(ORDERS, o.to_doc())
    return o


async def add_refund(store, no: str, o: Order, amount: int, *, at: datetime, state: str) -> Refund:
    r = Refund(no, o.checkout_id, o.out_trade_no, "wx1", "190", amount, o.total_fee, created_at=at, state=state)
    await store.insert(REFUNDS, r.to_doc())
    return r


async def test_search_finds_a_checkout_by_each_number_exactly(store):
    at = china(10)
    co = await add_checkout(store, 1, at=at, reference="ORDER-2026-0042")
    other = await add_checkout(store, 2, at=at + timedelta(minutes=1), reference="ORDER-2026-0043")
    o = await add_order(store, 1, co, paid=at + timedelta(minutes=3), openid="oUser_abcdefghijklmnop")
    await add_order(store, 2, other, paid=None, openid="oUser_abcdefghijklmnop", created=at + timedelta(minutes=2))
    await add_refund(store, "R-first", o, 100, at=at + timedelta(minutes=5), state="succeeded")
    search = CheckoutSearch(store)

    async def found(q: str) -> list[tuple[str, list[str]]]:
        return [(h.checkout.id, h.matched) for h in (await search.search(q)).hits]

    assert await found(co.id) == [(co.id, ["checkout_id"])]
    assert await found("ORDER-2026-0042") == [(co.id, ["merchant_reference"])]
    assert await found("  ORDER-2026-0042\t") == [(co.id, ["merchant_reference"])]  # pasted with blanks
    assert await found(o.out_trade_no) == [(co.id, ["out_trade_no"])]
    assert await found(o.transaction_id) == [(co.id, ["transaction_id"])]
    assert await found("R-first") == [(co.id, ["out_refund_no"])]
    # One shopper, two checkouts: newest first.
    assert await found("oUser_abcdefghijklmnop") == [(other.id, ["openid"]), (co.id, ["openid"])]
    # Exact only: a prefix, another case or a neighbour finds nothing.
    for q in ("ORDER-2026-004", "order-2026-0042", o.out_trade_no[:-1], co.id[:-1], "oUser_abc", ""):
        assert await found(q) == [], q


async def test_search_is_bounded_and_says_so(store):
    at = china(9)
    for n in range(5):
        await add_checkout(store, 10 + n, at=at + timedelta(minutes=n), reference="SAME-REF")
    result = await CheckoutSearch(store, max_hits=3).search("SAME-REF")
    assert [h.checkout.id for h in result.hits] == [checkout_id(14), checkout_id(13), checkout_id(12)]
    assert result.truncated


@pytest.mark.parametrize("query,code", [
    ("x" * 129, "search_too_long"),
    ("abc\x00def", "invalid_search"),
    ("abc\u202edef", "invalid_search"),
    (["a"], "invalid_search"),
])
async def test_search_refuses_what_is_no_search(store, query, code):
    with pytest.raises(InvalidInput) as caught:
        await CheckoutSearch(store).search(query)
    assert caught.value.code == code


async def seed_day(store) -> dict[str, Order]:
    """Payments around China day 2026-03-10 (16:00 UTC on the 9th to 16:00 UTC on the 10th) and refunds."""
    orders = {}
    for n, (name, paid, fee) in enumerate([
        ("before", china(23, 59, 59, day=9), 100),
        ("first", china(0, 0, 0), 2000),
        ("last", china(23, 59, 59), 3000),
        ("after", china(0, 0, 0, day=11), 400),
    ]):
        co = await add_checkout(store, 100 + n, at=paid - timedelta(minutes=30),
                                reference="=HYPERLINK(\"http://x\")" if name == "first" else f"ref-{name}",
                                amount=fee)
        orders[name] = await add_order(store, 100 + n, co, paid=paid)
    unpaid = await add_checkout(store, 120, at=china(12), status="open")
    await add_order(store, 120, unpaid, paid=None)
    await add_refund(store, "r-done", orders["first"], 500, at=china(12), state="succeeded")
    await add_refund(store, "r-pending", orders["last"], 700, at=china(23, 59), state="pending")
    await add_refund(store, "r-refused", orders["last"], 900, at=china(13), state="failed")
    await add_refund(store, "r-next-day", orders["first"], 50, at=china(0, 0, 1, day=11), state="succeeded")
    return orders


async def test_a_china_days_figures_gross_refunded_net(store):
    await seed_day(store)
    f = await daybook.figures(store, DAY)
    assert (f.payments, f.gross_fen) == (2, 5000)
    assert (f.refunds, f.refunded_fen, f.refunds_pending_fen) == (2, 500, 700)
    assert f.net_fen == 4500 and not f.truncated
    assert f.to_dict()["timezone"] == "Asia/Shanghai (UTC+8)"
    # The scan is bounded: past it, the figures say they are a lower bound.
    assert (await daybook.figures(store, DAY, scan=1)).truncated


async def test_a_china_days_export_rows_every_payment_and_refund_once_across_pages(store):
    orders = await seed_day(store)
    pages = [page async for page in daybook.lines(store, DAY, page=1)]
    rows = [r for page in pages for r in page]
    assert [(r.kind, r.out_refund_no or r.out_trade_no, r.amount_fen) for r in rows] == [
        ("payment", orders["first"].out_trade_no, 2000),
        ("payment", orders["last"].out_trade_no, 3000),
        ("refund", "r-done", 500),
        ("refund", "r-pending", 700),
    ]
    assert rows[0].merchant_reference == "=HYPERLINK(\"http://x\")"  # kept as is here; the CSV writer defuses it
    assert rows[2].transaction_id == orders["first"].transaction_id


async def test_a_checkouts_audit_records_by_its_id_and_its_orders_and_refunds(store):
    audit = Audit(store)
    await audit.record("notify", verdict="paid", out_trade_no="W1")
    await audit.record("refund_notify", verdict="succeeded", out_refund_no="R1")
    await audit.record("cancel", verdict="closed", checkout_id="co_a")
    await audit.record("notify", verdict="paid", out_trade_no="W-other")
    records, more = await audit.about(checkout_id="co_a", out_trade_nos=["W1"], out_refund_nos=["R1"])
    assert sorted(r["verdict"] for r in records) == ["closed", "paid", "succeeded"] and not more
    records, more = await audit.about(checkout_id="co_a", out_trade_nos=["W1"], out_refund_nos=["R1"], limit=2)
    assert len(records) == 2 and more


async def test_a_console_action_is_claimed_once_and_concluded(store):
    audit = Audit(store)
    key = "k" * 32
    assert await audit.claim(key, action="refund", user="admin", checkout_id="co_a")
    assert not await audit.claim(key, action="refund", user="someone else", checkout_id="co_a")
    await audit.conclude(key, "done", out_refund_no="R9")
    record = await audit.claimed(key)
    assert (record["user"], record["verdict"], record["out_refund_no"]) == ("admin", "done", "R9")
    assert isinstance(record["ended_at"], datetime)
    assert await audit.claimed("z" * 32) is None
    assert await store.count(AUDIT, {"kind": "console"}) == 1


async def test_a_claim_left_started_by_a_stopped_process_is_taken_over_once_after_a_while(store):
    clock = [datetime(2026, 3, 10, 8, tzinfo=timezone.utc)]
    audit = Audit(store, now=lambda: clock[0])
    key = "s" * 32
    assert await audit.claim(key, action="refund", user="first")  # ... and its process stopped there
    clock[0] += timedelta(seconds=119)
    assert not await audit.claim(key, action="refund", user="second")  # may still be running
    clock[0] += timedelta(seconds=2)
    assert await audit.claim(key, action="refund", user="second")
    assert not await audit.claim(key, action="refund", user="third")  # taken now, and fresh again
    record = await audit.claimed(key)
    assert (record["user"], record["taken_over_from"], record["verdict"]) == ("second", "first", "started")
    await audit.conclude(key, "done")
    clock[0] += timedelta(minutes=10)
    assert not await audit.claim(key, action="refund", user="fourth")  # done is done
