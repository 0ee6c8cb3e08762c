"""WeChat orders as stored: reading them, and storing a new one.

Their state moves are the lifecycle's (service/lifecycle.py); confirming a
payment is service/payments.py's. This is where the rest of the service
layer finds orders.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from store.base import Store, find_every

from .errors import NotFound
from .guard import store_guard
from .models import CREATED, ORDERS, PAID, PREPAID, Order

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_out_trade_no(now: datetime) -> str:
    """``W`` + UTC date + 16 random characters: unique, sortable by day, 25 chars."""
    return "W" + now.strftime("%Y%m%d") + "".join(_ALPHABET[b & 31] for b in secrets.token_bytes(16))


def backoff(checks: int) -> timedelta:
    """Query schedule for an unconfirmed order: 1 min, 2, 4 … capped at 30 min."""
    return timedelta(minutes=min(30, 2 ** min(checks, 5)))


class OrderBook:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, out_trade_no: str) -> Order | None:
        with store_guard():
            doc = await self.store.get(ORDERS, out_trade_no)
        return Order.from_doc(doc) if doc else None

    async def require(self, out_trade_no: str) -> Order:
        order = await self.get(out_trade_no)
        if order is None:
            raise NotFound("order_not_found", f"No order {out_trade_no}")
        return order

    async def for_checkout(self, checkout_id: str) -> list[Order]:
        """Every order of the checkout, oldest first: read a page at a time,
        never cut at a limit (closing siblings must see all of them)."""
        with store_guard():
            docs = await find_every(self.store, ORDERS, {"checkout_id": checkout_id}, sort=[("created_at", 1)])
        return [Order.from_doc(d) for d in docs]

    async def count_unpaid(self, checkout_id: str) -> int:
        """Orders of the checkout that could still be paid (created or prepaid)."""
        with store_guard():
            return await self.store.count(ORDERS, {"checkout_id": checkout_id, "state": {"$in": [CREATED, PREPAID]}})

    async def count_for(self, checkout_id: str) -> int:
        with store_guard():
            return await self.store.count(ORDERS, {"checkout_id": checkout_id})

    async def insert(self, order: Order) -> None:
        with store_guard():
            await self.store.insert(ORDERS, order.to_doc())

    async def due_for_check(self, now: datetime, limit: int = 100) -> list[Order]:
        with store_guard():
            docs = await self.store.find(
                ORDERS,
                {"state": {"$in": [CREATED, PREPAID]}, "next_check_at": {"$lte": now}},
                sort=[("next_check_at", 1)],
                limit=limit,
            )
        return [Order.from_doc(d) for d in docs]

    async def unsettled(self, before: datetime, limit: int = 100) -> list[Order]:
        """Paid orders whose settlement was interrupted (marker older than ``before``)."""
        with store_guard():
            docs = await self.store.find(
                ORDERS, {"state": PAID, "settle_due_at": {"$lte": before}}, sort=[("settle_due_at", 1)], limit=limit
            )
        return [Order.from_doc(d) for d in docs]
