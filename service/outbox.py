"""The webhook outbox's write side: the events a checkout's moves imply.

Events: ``checkout.paid``, ``checkout.closed``, ``checkout.partially_refunded``
and ``checkout.refunded``; the body is ``{id, type, created_at, data}`` with
``data`` the checkout's public view (plus ``refund`` for refund events) as
it is when the event is written. Delivery is service/webhooks.py's.

Why no event is lost, with a store that has no multi-document transactions
(the write order):

1. The status move of a checkout and the *intent* to tell the merchant are
   one atomic write: every checkout move (service/lifecycle.py) also sets
   ``outbox_due_at`` (``models.OUTBOX_DUE``) on the checkout document while
   webhooks are on.
2. Then the events are written to the ``outbox`` collection. Their ids are
   derived from the checkout (``ev_<checkout>_paid``, ``…_closed``,
   ``…_r<refund>``), so writing them twice is a duplicate key, not a second
   event; what to write is derived from the checkout document alone (its
   status, ``refunds_applied``), which step 1 wrote together with the marker.
3. Only then is the marker cleared, and only if it is still the value read
   in step 2 (compare-and-set), so a move made in between keeps its marker.

A crash after 1 leaves the marker; :meth:`Outbox.sweep` (run by the delivery
loop) finds checkouts whose marker is set and repeats 2 and 3. A crash after
2 repeats 2 harmlessly. Steps 2-3 run before the request that moved the
state is answered (the mover awaits :meth:`Outbox.announce`), and the sweep
covers the rest.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import datetime
from typing import Any, Callable

from store.base import DuplicateKey, Store, find_every

from .clock import utcnow
from .guard import store_guard
from .lifecycle import CHECKOUT, Lifecycle
from .models import CHECKOUTS, CLOSED, OUTBOX, OUTBOX_DUE, PAID_STATUSES, R_SUCCEEDED, REFUNDS, Checkout, Refund

log = logging.getLogger("wxpay_server.webhooks")

PENDING = "pending"


def event_id(checkout_id: str, what: str) -> str:
    return f"ev_{checkout_id.removeprefix('co_')}_{what}"


def refund_event_part(out_refund_no: str) -> str:
    return "r" + hashlib.sha256(out_refund_no.encode()).hexdigest()[:16]


class Outbox:
    """Writes the events a checkout's status implies (steps 2 and 3 above).

    ``written`` is set whenever new events are stored, so the delivery loop
    wakes at once instead of at its next poll."""

    def __init__(
        self, store: Store, lifecycle: Lifecycle, *, enabled: bool, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.enabled = enabled
        self.now = now
        self.written = asyncio.Event()

    async def announce(self, checkout_id: str, checkout: Checkout | None = None) -> None:
        """A checkout's status moved (``checkout``: as its mover just wrote it,
        saving a read). Never raises: the sweep catches up (the marker stays)."""
        try:
            await self.enqueue_for(checkout_id, checkout)
        except Exception:
            log.exception("outbox: events of %s not written yet", checkout_id)

    async def enqueue_for(self, checkout_id: str, checkout: Checkout | None = None) -> int:
        """Write the events a checkout's status implies, then clear its marker."""
        if checkout is None:
            with store_guard():
                doc = await self.store.get(CHECKOUTS, checkout_id)
            checkout = Checkout.from_doc(doc) if doc else None
        if checkout is None or checkout.outbox_due_at is None:
            return 0
        due = checkout.outbox_due_at
        written = 0
        if self.enabled:
            for event in await self._derive(checkout):
                try:
                    with store_guard():
                        await self.store.insert(OUTBOX, event)
                    written += 1
                except DuplicateKey:
                    pass
        await self.lifecycle.update(CHECKOUT, checkout_id, where={OUTBOX_DUE: due}, **{OUTBOX_DUE: None})
        if written:
            self.written.set()
        return written

    async def _derive(self, checkout: Checkout) -> list[dict[str, Any]]:
        view = checkout.public()
        events: list[tuple[str, str, dict[str, Any]]] = []
        if checkout.status in PAID_STATUSES:
            events.append((event_id(checkout.id, "paid"), "checkout.paid", view))
        elif checkout.status == CLOSED:
            events.append((event_id(checkout.id, "closed"), "checkout.closed", view))
        if checkout.refunds_applied:
            with store_guard():
                docs = await find_every(self.store, REFUNDS, {"checkout_id": checkout.id})
            refunds = {d["_id"]: Refund.from_doc(d) for d in docs}
            cumulative = 0
            for no in checkout.refunds_applied:
                refund = refunds.get(no)
                if refund is None or refund.state != R_SUCCEEDED or refund.kind != "merchant":
                    continue
                cumulative += refund.amount_fen
                kind = "checkout.refunded" if cumulative >= checkout.amount_fen else "checkout.partially_refunded"
                events.append((event_id(checkout.id, refund_event_part(no)), kind, {**view, "refund": refund.public()}))
        now = self.now()
        out = []
        for _id, kind, data in events:
            body = json.dumps(
                {"id": _id, "type": kind, "created_at": now.isoformat(), "data": data},
                ensure_ascii=False, separators=(",", ":"), sort_keys=True,
            )
            out.append({
                "_id": _id, "type": kind, "checkout_id": checkout.id, "created_at": now, "body": body,
                "state": PENDING, "attempts": 0, "next_attempt_at": now, "history": [],
            })
        return out

    async def sweep(self, batch: int = 50) -> int:
        """Finish what a crash left between a status move and its events (step 1 without 2-3)."""
        with store_guard():
            docs = await self.store.find(
                CHECKOUTS, {OUTBOX_DUE: {"$lte": self.now()}}, sort=[(OUTBOX_DUE, 1)], limit=batch
            )
        written = 0
        for doc in docs:
            written += await self.enqueue_for(doc["_id"], Checkout.from_doc(doc))
        return written
