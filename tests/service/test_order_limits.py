"""A checkout's orders seen whole, its order count, and the per-source window,
on every store backend (SQLite on a real file; MongoDB on the emulator, since
no MongoDB server can run here) and across two connections to one SQLite file."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from service.audit import Audit
from service.checkouts import CheckoutService, new_checkout_id
from service.errors import RateLimited
from edge.sources import source_of
from service.lifecycle import Lifecycle
from service.models import CHECKOUTS, CLOSE_MARK, ORDERS, PAID, PREPAID, QUOTAS, Checkout, Order
from service.orders import OrderBook, new_out_trade_no
from service.outbox import Outbox
from service.payments import Payments
from service.source_quota import SourceQuota
from store.open import INDEXES
from store.sqlite import SQLiteStore
from tests.store.conftest import BACKENDS, drop_store, make_store
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.merchant import Merchant
from wxpay.v2_gateway import V2Gateway

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
UNUSED_GATEWAY = V2Gateway(WxPayClient(Merchant("1900000109", "k" * 32, "wxapp"),
                                       endpoints=Endpoints.single("http://127.0.0.1:9")))  # settling asks WeChat nothing


class Book:
    """The services these tests drive, as the server wires them (webhooks off)."""

    def __init__(self, store, audit=None, double_payments=None) -> None:
        now = lambda: T0  # noqa: E731
        self.audit = audit or Audit(store, now=now)
        self.lifecycle = Lifecycle(store, now=now)
        self.orders = OrderBook(store)
        self.checkouts = CheckoutService(store, self.lifecycle, self.orders, now=now)
        self.payments = Payments(UNUSED_GATEWAY, self.orders, self.lifecycle,
                                 Outbox(store, self.lifecycle, enabled=False, now=now), self.audit,
                                 double_payments=double_payments or Heard(), now=now)

    async def paid(self, order: Order, transaction_id: str):
        """A payment WeChat confirmed: the order's move, then what it implies."""
        moved = await self.lifecycle.move_order(order, PAID, transaction_id=transaction_id, paid_at=T0, settle_due_at=T0)
        assert moved is not None
        return await self.payments.settle(moved)


class Heard:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def double_paid(self, order, checkout):
        self.calls.append((order.out_trade_no, checkout.status))


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path):
    opened, handle = await make_store(request.param, tmp_path)
    try:
        yield opened
    finally:
        await drop_store(request.param, opened, handle)


async def a_checkout(store, **fields) -> Checkout:
    checkout = Checkout(id=new_checkout_id(), amount_fen=500, description="tea", expires_at=T0 + timedelta(hours=1),
                        created_at=T0, **fields)
    await store.insert(CHECKOUTS, checkout.to_doc())
    return checkout


def an_order(checkout: Checkout, i: int, state: str = PREPAID) -> Order:
    return Order(out_trade_no=new_out_trade_no(T0), checkout_id=checkout.id, trade_type="MWEB", appid="wxapp",
                 mch_id="1900000109", sign_type="MD5", total_fee=checkout.amount_fen,
                 created_at=T0 + timedelta(milliseconds=i % 7), state=state)


async def test_a_checkout_with_more_orders_than_a_page_is_seen_whole_and_every_sibling_is_closed(store):
    book = Book(store)
    checkout = await a_checkout(store)
    orders = [an_order(checkout, i) for i in range(450)]  # more than two pages (200 each)
    for order in orders:
        await book.orders.insert(order)
    listed = await book.orders.for_checkout(checkout.id)
    assert sorted(o.out_trade_no for o in listed) == sorted(o.out_trade_no for o in orders)
    settled, double = await book.paid(orders[0], "4200000001")
    assert settled.status == "paid" and not double
    # Settling the same payment again (a repeat after a cut-short settlement) finds nothing to do.
    assert await book.payments.settle(await book.orders.require(orders[0].out_trade_no)) == (None, False)
    siblings = await store.find(ORDERS, {"checkout_id": checkout.id, "close_requested": True}, limit=0)
    assert len(siblings) == 449


async def test_reserving_orders_stops_at_the_cap_and_at_a_close(store):
    book = Book(store).checkouts
    checkout = await a_checkout(store)
    made = [await book.reserve_order(checkout.id, cap=3, payable_after=T0) for _ in range(5)]
    assert [c.orders_made if c else None for c in made] == [1, 2, 3, None, None]
    other = await a_checkout(store)
    assert await book.begin_close(other.id)
    assert await book.reserve_order(other.id, cap=3, payable_after=T0) is None
    assert (await store.get(CHECKOUTS, other.id))["orders_made"] == 0
    # About to expire counts as not payable either.
    assert await book.reserve_order((await a_checkout(store)).id, cap=3, payable_after=T0 + timedelta(hours=1)) is None


async def test_a_checkout_stored_before_the_count_starts_from_its_orders(store):
    services = Book(store)
    book = services.checkouts
    checkout = await a_checkout(store)
    legacy = await store.get(CHECKOUTS, checkout.id)
    legacy.pop("orders_made")
    await store.delete_if(CHECKOUTS, checkout.id)
    await store.insert(CHECKOUTS, legacy)
    for i in range(2):
        await services.orders.insert(an_order(checkout, i))
    assert (await book.reserve_order(checkout.id, cap=4, payable_after=T0)).orders_made == 3
    assert (await book.reserve_order(checkout.id, cap=4, payable_after=T0)).orders_made == 4
    assert await book.reserve_order(checkout.id, cap=4, payable_after=T0) is None


async def test_reserving_the_first_order_needs_the_count_still_at_zero(store):
    """The prepay's shortcut for a checkout read with no order: the compare-and-set
    holds only while no order began since, and never on a checkout stored before the count."""
    services = Book(store)
    book = services.checkouts
    checkout = await a_checkout(store)
    assert (await book.reserve_order(checkout.id, cap=3, payable_after=T0, made=0)).orders_made == 1
    assert await book.reserve_order(checkout.id, cap=3, payable_after=T0, made=0) is None  # one began meanwhile
    assert (await store.get(CHECKOUTS, checkout.id))["orders_made"] == 1
    capped = await a_checkout(store)
    assert await book.reserve_order(capped.id, cap=0, payable_after=T0, made=0) is None
    closing = await a_checkout(store)
    assert await book.begin_close(closing.id)
    assert await book.reserve_order(closing.id, cap=3, payable_after=T0, made=0) is None
    legacy_checkout = await a_checkout(store)
    legacy = await store.get(CHECKOUTS, legacy_checkout.id)
    legacy.pop("orders_made")
    await store.delete_if(CHECKOUTS, legacy_checkout.id)
    await store.insert(CHECKOUTS, legacy)
    await services.orders.insert(an_order(legacy_checkout, 0))
    assert await book.reserve_order(legacy_checkout.id, cap=3, payable_after=T0, made=0) is None
    assert "orders_made" not in await store.get(CHECKOUTS, legacy_checkout.id)


async def test_concurrent_reservations_never_pass_the_cap(store):
    book = Book(store).checkouts
    checkout = await a_checkout(store)
    got = await asyncio.gather(*(book.reserve_order(checkout.id, cap=7, payable_after=T0) for _ in range(40)))
    assert sum(1 for g in got if g is not None) == 7
    assert (await store.get(CHECKOUTS, checkout.id))["orders_made"] == 7


async def test_close_marks_then_closes_once_and_a_payment_wins_over_it(store):
    services = Book(store)
    book = services.checkouts
    checkout = await a_checkout(store)
    assert await book.begin_close(checkout.id)
    assert await book.begin_close(checkout.id)  # an interrupted close is picked up again
    assert (await store.get(CHECKOUTS, checkout.id))[CLOSE_MARK] == T0
    closed = await book.finish_close(checkout.id)
    assert closed is not None and closed.status == "closed" and closed.closed_at == T0
    assert await book.finish_close(checkout.id) is None
    assert not await book.begin_close(checkout.id)
    paid_first = await a_checkout(store)
    order = an_order(paid_first, 0)
    await services.orders.insert(order)
    assert await book.begin_close(paid_first.id)
    await services.paid(order, "4200000002")
    assert await book.finish_close(paid_first.id) is None
    assert (await store.get(CHECKOUTS, paid_first.id))["status"] == "paid"


async def test_a_payment_after_the_close_is_flagged_and_the_checkout_stays_closed(store):
    audit = Audit(store, now=lambda: T0)
    heard = Heard()
    services = Book(store, audit, heard)
    checkout = await a_checkout(store)
    order = an_order(checkout, 0)
    await services.orders.insert(order)
    assert await services.checkouts.begin_close(checkout.id)
    await services.checkouts.finish_close(checkout.id)
    _, double = await services.paid(order, "4200000003")
    assert double
    doc = await store.get(CHECKOUTS, checkout.id)
    assert doc["status"] == "closed" and doc["double_paid"] is True and "paid_out_trade_no" not in doc
    assert heard.calls == [(order.out_trade_no, "closed")]
    assert [(a["reason"], a["verdict"]) for a in await audit.latest("double_payment")] == [
        ("paid_after_close", "flagged")]


# -- the per-source window -----------------------------------------------------------


def test_a_source_is_an_ipv4_address_or_an_ipv6_64():
    assert source_of("203.0.113.9") == "203.0.113.9"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:203.0.113.9") == "203.0.113.9"


async def test_the_window_counts_per_source_then_rolls_over_and_old_windows_go(store):
    clock = [T0]
    quota = SourceQuota(store, limit=2, window=timedelta(minutes=10), now=lambda: clock[0])
    await quota.take("203.0.113.1")
    await quota.take("203.0.113.1")
    with pytest.raises(RateLimited) as refused:
        await quota.take("203.0.113.1")
    assert refused.value.code == "too_many_requests" and refused.value.details == {"retry_after_s": 600}
    await quota.take("203.0.113.2")  # another source has its own count
    assert all("203.0.113" not in d["_id"] for d in await store.find(QUOTAS, {}, limit=0))  # digests, not IPs
    clock[0] = T0 + timedelta(minutes=10)
    await quota.take("203.0.113.1")  # a new window; the two old ones are removed
    assert [d["count"] for d in await store.find(QUOTAS, {}, limit=0)] == [1]
    assert await SourceQuota(store, limit=0, window=timedelta(minutes=1)).take("203.0.113.1") is None  # off


async def test_two_processes_on_one_sqlite_file_share_one_count(tmp_path):
    a, b = SQLiteStore(tmp_path / "shared.sqlite3"), SQLiteStore(tmp_path / "shared.sqlite3")
    await a.open(INDEXES)
    await b.open(INDEXES)
    try:
        quotas = [SourceQuota(s, limit=10, window=timedelta(minutes=10), now=lambda: T0) for s in (a, b)]

        async def one(i: int) -> bool:
            try:
                await quotas[i % 2].take("198.51.100.4")
            except RateLimited:
                return False
            return True

        got = await asyncio.gather(*(one(i) for i in range(40)))
        assert sum(got) == 10
    finally:
        await a.close()
        await b.close()


async def test_siblings_are_looked_up_unless_the_checkout_counts_a_single_order(store):
    """Settling skips the sibling lookup only when the checkout as just paid
    counts exactly one order ever reserved (that one is the order paid);
    with two reserved, the other is still handed to the reconciler."""
    services = Book(store)
    for reserved in (1, 2):
        checkout = await a_checkout(store)
        orders = [an_order(checkout, i) for i in range(reserved)]
        for order in orders:
            assert await services.checkouts.reserve_order(checkout.id, cap=4, payable_after=T0) is not None
            await services.orders.insert(order)
        settled, double = await services.paid(orders[0], f"42000000{reserved}")
        assert settled.status == "paid" and settled.orders_made == reserved and not double
        closing = await store.find(ORDERS, {"checkout_id": checkout.id, "close_requested": True}, limit=0)
        assert [d["_id"] for d in closing] == [o.out_trade_no for o in orders[1:]]
