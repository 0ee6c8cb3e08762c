"""Creating and reading checkouts (the merchant API's use cases), and their openness.

Input is validated field by field with a code per problem, so a merchant's
integration learns exactly what to fix. An ``Idempotency-Key`` makes a
retried create return the first checkout instead of making a second.

Openness: a new WeChat order is counted against its checkout in the same
compare-and-set that finds it open (:meth:`CheckoutService.reserve_order`),
and a close marks the checkout first (:meth:`~CheckoutService.begin_close`)
so no order can start once it has listed them.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, Callable

from store.base import DuplicateKey, Store

from .clock import utcnow
from .errors import Conflict, InvalidInput, NotFound
from .guard import store_guard
from .lifecycle import CHECKOUT, Lifecycle
from .models import (
    CHECKOUT_STATUSES, CHECKOUTS, CLOSE_MARK, CLOSED, OPEN, PAID_STATUSES, Checkout, shown_status,
)
from .orders import OrderBook
from .validation import http_url, json_object, matches, safe_text, utf8_len

MAX_AMOUNT_FEN = 100_000_000  # 1,000,000 yuan: far above any H5 payment limit
REFERENCE = re.compile(r"[\x20-\x7e]{1,64}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
CHECKOUT_ID = re.compile(r"co_[0-9a-f]{24}")
TEXT_MAX_BYTES = 127  # WeChat's limit for body and attach
RETURN_URL_MAX = 512
LIST_LIMIT_MAX = 100
LIST_OFFSET_MAX = 100_000
FIELDS = frozenset({"amount_fen", "description", "merchant_reference", "attach", "expires_in_minutes", "return_url"})


def new_checkout_id() -> str:
    return "co_" + secrets.token_hex(12)


def validate_return_url(value: Any, *, require_https: bool = False) -> str:
    """An absolute http(s) URL with no control characters (no header injection)."""
    allowed = ("https",) if require_https else ("http", "https")
    if http_url(value, schemes=allowed, max_length=RETURN_URL_MAX) is None:
        raise InvalidInput(
            "invalid_return_url",
            f"return_url must be an absolute {' or '.join(allowed)} URL of at most {RETURN_URL_MAX} ASCII characters, "
            "with a host, a valid port, and no spaces, backslashes or control characters",
        )
    return value


class CheckoutService:
    def __init__(
        self,
        store: Store,
        lifecycle: Lifecycle,
        orders: OrderBook,
        *,
        default_expiry_minutes: int = 30,
        min_expiry_minutes: int = 5,
        max_expiry_minutes: int = 7 * 24 * 60,
        require_https_return: bool = False,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.orders = orders
        self.default_expiry = default_expiry_minutes
        self.min_expiry = min_expiry_minutes
        self.max_expiry = max_expiry_minutes
        self.require_https_return = require_https_return
        self.now = now

    def validate(self, data: Any) -> dict[str, Any]:
        """Check a create request; returns the normalised fields."""
        data = json_object(data, FIELDS)
        amount = data.get("amount_fen")
        if type(amount) is not int:
            raise InvalidInput("invalid_amount", "amount_fen must be an integer number of fen (1 yuan = 100 fen)")
        if not 0 < amount <= MAX_AMOUNT_FEN:
            raise InvalidInput("invalid_amount", f"amount_fen must be between 1 and {MAX_AMOUNT_FEN}")
        desc = data.get("description")
        if not isinstance(desc, str) or not desc.strip():
            raise InvalidInput("invalid_description", "description is required (what the shopper buys)")
        if not safe_text(desc) or utf8_len(desc) > TEXT_MAX_BYTES:
            raise InvalidInput(
                "invalid_description",
                f"description must be at most {TEXT_MAX_BYTES} UTF-8 bytes of one line of text, without control "
                "characters, bidi overrides, line separators or unpaired surrogates",
            )
        out: dict[str, Any] = {"amount_fen": amount, "description": desc.strip()}
        ref = data.get("merchant_reference")
        if ref is not None:
            if not matches(REFERENCE, ref):
                raise InvalidInput("invalid_reference", "merchant_reference must be 1-64 printable ASCII characters")
            out["merchant_reference"] = ref
        attach = data.get("attach")
        if attach is not None:
            if not safe_text(attach) or utf8_len(attach) > TEXT_MAX_BYTES:
                raise InvalidInput(
                    "invalid_attach",
                    f"attach must be at most {TEXT_MAX_BYTES} UTF-8 bytes of one line of text, without control "
                    "characters, bidi overrides, line separators or unpaired surrogates",
                )
            out["attach"] = attach
        minutes = data.get("expires_in_minutes", self.default_expiry)
        if type(minutes) is not int or not self.min_expiry <= minutes <= self.max_expiry:
            raise InvalidInput(
                "invalid_expiry",
                f"expires_in_minutes must be an integer between {self.min_expiry} and {self.max_expiry}",
            )
        out["expires_in_minutes"] = minutes
        if data.get("return_url") is not None:
            out["return_url"] = validate_return_url(data["return_url"], require_https=self.require_https_return)
        return out

    async def create(self, data: Any, *, idempotency_key: str | None = None) -> tuple[Checkout, bool]:
        """Create a checkout; ``(checkout, created)``. A repeat with the same
        key and body returns the first one; the same key with another body
        is a conflict."""
        fields = self.validate(data)
        if idempotency_key is not None and not matches(IDEMPOTENCY_KEY, idempotency_key):
            raise InvalidInput("invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters")
        fingerprint = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        now = self.now()
        checkout = Checkout(
            id=new_checkout_id(),
            amount_fen=fields["amount_fen"],
            description=fields["description"],
            merchant_reference=fields.get("merchant_reference"),
            attach=fields.get("attach"),
            return_url=fields.get("return_url"),
            expires_at=now + timedelta(minutes=fields["expires_in_minutes"]),
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
        )
        with store_guard():
            try:
                await self.store.insert(CHECKOUTS, checkout.to_doc())
                return checkout, True
            except DuplicateKey:
                if idempotency_key is None:
                    raise
            found = await self.store.find(CHECKOUTS, {"idempotency_key": idempotency_key}, limit=1)
        if not found:
            raise Conflict("idempotency_race", "A request with this Idempotency-Key is in progress; retry")
        existing = Checkout.from_doc(found[0])
        if existing.request_fingerprint != fingerprint:
            raise Conflict(
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request; use a new key for a new checkout",
            )
        return existing, False

    async def get(self, checkout_id: str) -> Checkout:
        return Checkout.from_doc(await self._doc(checkout_id))

    async def poll(self, checkout_id: str) -> dict[str, Any]:
        """What the shopper's page polls for, in one primary-key read: the
        status ("expired" once an open checkout's time is up), whether the
        shopper paid (refunded later or not), the refunds, where to go back.
        Read from the stored document: the most frequent request of all
        does not build a whole Checkout for four of its fields."""
        doc = await self._doc(checkout_id)
        status = doc.get("status", OPEN)
        return {
            "status": shown_status(status, doc["expires_at"], self.now()),
            "paid": status in PAID_STATUSES,
            "refunded_fen": doc.get("refunded_fen", 0),
            "return_url": doc.get("return_url"),
        }

    async def _doc(self, checkout_id: str) -> dict[str, Any]:
        if not matches(CHECKOUT_ID, checkout_id):
            raise NotFound("checkout_not_found", "No such checkout")
        with store_guard():
            doc = await self.store.get(CHECKOUTS, checkout_id)
        if doc is None:
            raise NotFound("checkout_not_found", "No such checkout")
        return doc

    async def list(
        self,
        *,
        status: str | None = None,
        merchant_reference: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[Checkout]:
        where: dict[str, Any] = {}
        if status is not None:
            if status not in CHECKOUT_STATUSES:
                raise InvalidInput("invalid_status", f"status must be one of {', '.join(CHECKOUT_STATUSES)}")
            where["status"] = status
        if merchant_reference is not None:
            if not matches(REFERENCE, merchant_reference):
                raise InvalidInput("invalid_reference", "merchant_reference must be 1-64 printable ASCII characters")
            where["merchant_reference"] = merchant_reference
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise InvalidInput("invalid_limit", f"limit must be an integer between 1 and {LIST_LIMIT_MAX}")
        if not 0 <= offset <= LIST_OFFSET_MAX:
            raise InvalidInput("invalid_offset", f"offset must be an integer between 0 and {LIST_OFFSET_MAX}")
        with store_guard():
            docs = await self.store.find(CHECKOUTS, where, sort=[("created_at", -1)], limit=limit, skip=offset)
        return [Checkout.from_doc(d) for d in docs]

    # -- openness: new orders and closing ------------------------------------------------

    async def reserve_order(
        self, checkout_id: str, *, cap: int, payable_after: datetime, made: int | None = None
    ) -> Checkout | None:
        """Count one more WeChat order against the checkout, in the same
        compare-and-set that finds it open, not being closed, not about to
        expire (``expires_at`` after ``payable_after``) and under ``cap``.
        ``None`` when any of that fails (the caller reads the checkout to
        say which). A close marks the checkout first, so an order reserved
        after that point cannot exist; one reserved before is listed by it.

        ``made``: only if exactly that many were reserved so far (one
        statement, no fallback for a checkout stored before the count):
        success proves no order of the checkout began since the caller read
        that count, so there is none it could have missed."""
        payable = {"status": OPEN, CLOSE_MARK: {"$exists": False}, "expires_at": {"$gt": payable_after}}
        if made is not None:
            doc = await self.lifecycle.update(
                CHECKOUT, checkout_id, where={**payable, "orders_made": {"$gte": made, "$lt": min(cap, made + 1)}},
                inc={"orders_made": 1},
            )
            return Checkout.from_doc(doc) if doc is not None else None
        for _ in range(5):
            doc = await self.lifecycle.update(
                CHECKOUT, checkout_id, where={**payable, "orders_made": {"$lt": cap}}, inc={"orders_made": 1}
            )
            if doc is not None:
                return Checkout.from_doc(doc)
            # Checkouts stored before the count existed: start it from their orders.
            with store_guard():
                current = await self.store.get(CHECKOUTS, checkout_id)
            if current is None or "orders_made" in current:
                return None
            made = await self.orders.count_for(checkout_id)
            if made >= cap:
                return None
            doc = await self.lifecycle.update(
                CHECKOUT, checkout_id, where={**payable, "orders_made": {"$exists": False}}, orders_made=made + 1
            )
            if doc is not None:
                return Checkout.from_doc(doc)
        return None

    async def begin_close(self, checkout_id: str) -> bool:
        """Mark an open checkout as being closed: no new order can be
        reserved from now on. ``False`` if it is no longer open (paid or
        closed); a mark left by an earlier, interrupted close is kept."""
        now = self.now()
        marked = await self.lifecycle.update(
            CHECKOUT, checkout_id, where={"status": OPEN, CLOSE_MARK: {"$exists": False}},
            **{CLOSE_MARK: now, "updated_at": now},
        )
        if marked is not None:
            return True
        with store_guard():
            doc = await self.store.get(CHECKOUTS, checkout_id)
        return doc is not None and doc.get("status") == OPEN

    async def finish_close(self, checkout_id: str) -> Checkout | None:
        """open → closed, once :meth:`begin_close` marked it and its orders
        were dealt with; from here the close is final (a payment that still
        lands is refunded: service/payments.py). ``None`` if a payment won
        meanwhile (or another closer did it first)."""
        return await self.lifecycle.move_checkout(
            checkout_id, CLOSED, where={CLOSE_MARK: {"$exists": True}}, closed_at=self.now()
        )
