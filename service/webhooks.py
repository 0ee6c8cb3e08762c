"""Merchant webhooks from a persisted outbox, delivered at least once.

Events: ``checkout.paid``, ``checkout.closed``, ``checkout.partially_refunded``
and ``checkout.refunded``; the body is ``{id, type, created_at, data}`` with
``data`` the checkout's public view (plus ``refund`` for refund events) as
it is when the event is written.

Why no event is lost, with a store that has no multi-document transactions
(the write order):

1. The status move of a checkout and the *intent* to tell the merchant are
   one atomic write: every compare-and-set that moves a checkout to paid,
   closed, partially_refunded or refunded also sets ``outbox_due_at``
   (``models.OUTBOX_DUE``) on the checkout document.
2. Then the events are written to the ``outbox`` collection. Their ids are
   derived from the checkout (``ev_<checkout>_paid``, ``…_closed``,
   ``…_r<refund>``), so writing them twice is a duplicate key, not a second
   event; what to write is derived from the checkout document alone (its
   status, ``refunds_applied``), which step 1 wrote together with the marker.
3. Only then is the marker cleared, and only if it is still the value read
   in step 2 (compare-and-set), so a move made in between keeps its marker.

A crash after 1 leaves the marker; the delivery task sweeps checkouts whose
marker is set and repeats 2 and 3. A crash after 2 repeats 2 harmlessly.
Steps 2-3 run before the request that moved the state is answered (they
are awaited inside the same use case), and the sweep covers the rest.

Delivery: one background task per process, but a store lease lets only one
process deliver at a time; the lease is short and renewed by a heartbeat
during the pass, so a process killed mid-pass holds up delivery for
seconds, not for the longest a pass could take. Each attempt is a POST signed with
``Wxpay-Signature: t=<unix>,v1=<hmac>`` (service/webhook_signature.py) and
carries ``Wxpay-Event-Id`` for de-duplication; a 2xx is success. Failures
are retried after ``retry_base_s`` × 2^(n-1) (capped at 6 h) up to
``max_attempts``, then the event is ``failed`` until an admin resends it.
An event is marked delivered only after the receiver's 2xx, so a crash in
between means one more delivery (at least once; hence the event id).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from store.base import DuplicateKey, Store, find_every
from store.leases import HEARTBEAT_TTL, Leases

from .clock import utcnow
from .errors import InvalidInput, NotFound
from .guard import store_guard
from .models import (
    CHECKOUTS,
    CLOSED,
    OUTBOX,
    OUTBOX_DUE,
    PAID_STATUSES,
    R_SUCCEEDED,
    REFUNDS,
    Checkout,
    Refund,
)
from .orders import OrderBook
from .pauses import pause

log = logging.getLogger("wxpay_server.webhooks")

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
EVENT_STATES = (PENDING, DELIVERED, FAILED)
MAX_DELAY = timedelta(hours=6)
LIST_LIMIT_MAX = 200
EVENT_ID_MAX = 100
LEASE = "webhooks"
USER_AGENT = "wxpay-server-webhooks/1"


@dataclass(frozen=True)
class PassReport:
    ran: bool
    enqueued: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0


def event_id(checkout_id: str, what: str) -> str:
    return f"ev_{checkout_id.removeprefix('co_')}_{what}"


def refund_event_part(out_refund_no: str) -> str:
    return "r" + hashlib.sha256(out_refund_no.encode()).hexdigest()[:16]


def public_event(doc: dict[str, Any]) -> dict[str, Any]:
    """What the admin API shows of one outbox entry."""
    return {
        "id": doc["_id"],
        "type": doc.get("type"),
        "checkout_id": doc.get("checkout_id"),
        "state": doc.get("state"),
        "attempts": doc.get("attempts", 0),
        "created_at": _iso(doc.get("created_at")),
        "next_attempt_at": _iso(doc.get("next_attempt_at")) if doc.get("state") == PENDING else None,
        "delivered_at": _iso(doc.get("delivered_at")),
        "last_status": doc.get("last_status"),
        "last_error": doc.get("last_error"),
        "history": [{**h, "at": _iso(h.get("at")) or h.get("at")} for h in doc.get("history", [])],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


class Webhooks:
    def __init__(
        self,
        store: Store,
        orders: OrderBook,
        leases: Leases,
        *,
        url: str | None,
        secret: str | None,
        holder: str,
        poll_interval: float = 1.0,
        retry_base: float = 10.0,
        max_attempts: int = 15,
        timeout: float = 10.0,
        sweep_every: int = 30,
        batch: int = 50,
        lease_ttl: timedelta = HEARTBEAT_TTL,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.leases = leases
        self.lease_ttl = lease_ttl
        self.url = url
        self._secret = secret
        self.holder = holder
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.sweep_every = max(1, sweep_every)
        self.batch = batch
        self.now = now
        self._wake = asyncio.Event()
        self._passes = 0
        if self.enabled:  # otherwise no outbox intent is written at all
            orders.outbox_wanted = True
            orders.checkout_listeners.append(self.checkout_changed)
        if url and not secret:
            log.warning("webhooks.url is set but webhooks.secret is not: webhooks are off (they must be signed)")

    @property
    def enabled(self) -> bool:
        return bool(self.url and self._secret)

    # -- enqueueing -------------------------------------------------------------------

    async def checkout_changed(self, checkout_id: str, doc: dict[str, Any] | None = None) -> None:
        await self.enqueue_for(checkout_id, doc)

    async def enqueue_for(self, checkout_id: str, doc: dict[str, Any] | None = None) -> int:
        """Write the events a checkout's status implies, then clear its marker (steps 2, 3).
        ``doc``: the checkout as its mover just wrote it, saving a read."""
        if doc is None:
            with store_guard():
                doc = await self.store.get(CHECKOUTS, checkout_id)
        if doc is None or doc.get(OUTBOX_DUE) is None:
            return 0
        due = doc[OUTBOX_DUE]
        written = 0
        if self.enabled:
            for event in await self._derive(Checkout.from_doc(doc)):
                try:
                    with store_guard():
                        await self.store.insert(OUTBOX, event)
                    written += 1
                except DuplicateKey:
                    pass
        with store_guard():
            await self.store.update_if(CHECKOUTS, checkout_id, {OUTBOX_DUE: due}, {OUTBOX_DUE: None})
        if written:
            self._wake.set()
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

    async def sweep(self) -> int:
        """Finish what a crash left between a status move and its events (step 1 without 2-3)."""
        with store_guard():
            docs = await self.store.find(
                CHECKOUTS, {OUTBOX_DUE: {"$lte": self.now()}}, sort=[(OUTBOX_DUE, 1)], limit=self.batch
            )
        written = 0
        for doc in docs:
            written += await self.enqueue_for(doc["_id"])
        return written

    # -- delivering -------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.run_once(stop)
                except Exception:  # the loop must survive a bad pass
                    log.exception("webhook delivery pass failed")
                waking = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({stopping, waking}, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
                waking.cancel()
        finally:
            stopping.cancel()
            try:
                with store_guard():
                    await self.leases.release(LEASE, self.holder)
            except Exception:
                pass

    async def run_once(self, stop: asyncio.Event | None = None) -> PassReport:
        """One delivery pass under the lease, kept by a heartbeat however slow
        the merchant answers. If the lease is lost mid-pass (this process
        stalled past its ttl and another took over), the POST under way is
        still recorded (compare-and-set; at worst one more delivery) and the
        pass stops before the next event."""
        if not self.enabled:
            return PassReport(ran=False)
        enqueued = delivered = retried = failed = 0
        with store_guard():
            async with self.leases.hold(LEASE, self.holder, self.lease_ttl) as lease:
                if lease is None:
                    return PassReport(ran=False)
                if self._passes % self.sweep_every == 0:
                    enqueued = await self.sweep()
                self._passes += 1
                due = await self.store.find(
                    OUTBOX, {"state": PENDING, "next_attempt_at": {"$lte": self.now()}},
                    sort=[("next_attempt_at", 1)], limit=self.batch,
                )
                for doc in due:
                    if (stop is not None and stop.is_set()) or lease.lost:
                        break
                    outcome = await self.deliver(doc)
                    delivered += outcome == DELIVERED
                    failed += outcome == FAILED
                    retried += outcome == PENDING
        return PassReport(True, enqueued, delivered, retried, failed)

    def delay(self, attempt: int) -> timedelta:
        """Wait before attempt ``attempt + 1``: base, 2×base, 4×base … capped at 6 h."""
        return min(timedelta(seconds=self.retry_base * 2 ** (attempt - 1)), MAX_DELAY)

    async def deliver(self, doc: dict[str, Any]) -> str:
        """One attempt; returns the event's state afterwards."""
        attempt = doc.get("attempts", 0) + 1
        body = doc["body"].encode("utf-8")
        timestamp = int(self.now().timestamp())
        from .webhook_signature import sign_webhook

        request = HTTPRequest(
            self.url, method="POST", body=body, follow_redirects=False,
            connect_timeout=self.timeout, request_timeout=self.timeout,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                "Wxpay-Event-Id": doc["_id"],
                "Wxpay-Event-Type": doc.get("type", ""),
                "Wxpay-Signature": sign_webhook(self._secret or "", body, timestamp),
            },
        )
        started = time.perf_counter()
        status, error = None, None
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
            status = response.code
            if response.code == 599:
                status, error = None, f"unreachable: {response.error}"[:200]
            elif not 200 <= response.code < 300:
                error = f"HTTP {response.code}"
        except Exception as exc:  # DNS, refused connection, TLS …
            error = f"unreachable: {exc.__class__.__name__}"
        await pause("webhooks.after_delivery")
        now = self.now()
        entry = {"at": now, "attempt": attempt, "status": status, "error": error,
                 "ms": round((time.perf_counter() - started) * 1000, 1)}
        history = [*doc.get("history", []), entry][-10:]
        changes: dict[str, Any] = {"attempts": attempt, "last_status": status, "last_error": error, "history": history}
        if error is None:
            state = DELIVERED
            changes.update(state=DELIVERED, delivered_at=now)
        elif attempt >= self.max_attempts:
            state = FAILED
            changes.update(state=FAILED, failed_at=now)
            log.error("webhook %s failed after %d attempts (%s)", doc["_id"], attempt, error)
        else:
            state = PENDING
            changes["next_attempt_at"] = now + self.delay(attempt)
        with store_guard():
            await self.store.update_if(OUTBOX, doc["_id"], {"state": PENDING, "attempts": doc.get("attempts", 0)}, changes)
        return state

    # -- the admin's view --------------------------------------------------------------------

    async def list(self, *, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if state is not None and state not in EVENT_STATES:
            raise InvalidInput("invalid_state", f"state must be one of {', '.join(EVENT_STATES)}")
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise InvalidInput("invalid_limit", f"limit must be an integer between 1 and {LIST_LIMIT_MAX}")
        where = {"state": state} if state else {}
        with store_guard():
            docs = await self.store.find(OUTBOX, where, sort=[("created_at", -1)], limit=limit)
        return [public_event(d) for d in docs]

    async def resend(self, event_id_: str) -> dict[str, Any]:
        """Queue one event again now, with a fresh attempt budget."""
        if not isinstance(event_id_, str) or not event_id_.startswith("ev_") or len(event_id_) > EVENT_ID_MAX:
            raise NotFound("event_not_found", "No such webhook event")
        with store_guard():
            doc = await self.store.get(OUTBOX, event_id_)
            if doc is None:
                raise NotFound("event_not_found", "No such webhook event")
            doc = await self.store.update_if(
                OUTBOX, event_id_, {"state": doc["state"], "attempts": doc.get("attempts", 0)},
                {"state": PENDING, "attempts": 0, "next_attempt_at": self.now(),
                 "resent": doc.get("resent", 0) + 1},
            )
        if doc is None:
            from .errors import Conflict

            raise Conflict("event_busy", "The event is being delivered right now; retry")
        self._wake.set()
        return public_event(doc)

    async def backlog(self) -> dict[str, Any]:
        """Figures for /status: what waits, what failed."""
        with store_guard():
            pending = await self.store.count(OUTBOX, {"state": PENDING})
            failed = await self.store.count(OUTBOX, {"state": FAILED})
            oldest = await self.store.find(
                OUTBOX, {"state": PENDING}, sort=[("created_at", 1)], limit=1, fields=["created_at"]
            )
        return {
            "enabled": self.enabled,
            "pending": pending,
            "failed": failed,
            "oldest_pending_at": _iso(oldest[0]["created_at"]) if oldest else None,
        }

