"""Merchant webhooks delivered from the persisted outbox, at least once.

What events exist and why none is lost is the outbox's (service/outbox.py);
this is delivery. One background task per process, but a store lease lets
only one process deliver at a time; the lease is short and renewed by a
heartbeat during the pass, so a process killed mid-pass holds up delivery
for seconds, not for the longest a pass could take. Each attempt is a POST
signed with ``Wxpay-Signature: t=<unix>,v1=<hmac>``
(service/webhook_signature.py) and carries ``Wxpay-Event-Id`` for
de-duplication; a 2xx is success. Failures are retried after
``retry_base_s`` × 2^(n-1) (capped at 6 h) up to ``max_attempts``, then the
event is ``failed`` until an admin resends it. An event is marked delivered
only after the receiver's 2xx, so a crash in between means one more
delivery (at least once; hence the event id). The HTTP client is a
:class:`WebhookSender` handed in (edge/outbound.py in the server): no HTTP
library here.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Protocol

from store.base import Store
from store.leases import HEARTBEAT_TTL, Leases

from .clock import utcnow
from .errors import Conflict, InvalidInput, NotFound
from .guard import store_guard
from .models import OUTBOX
from .outbox import PENDING, Outbox
from .pauses import pause
from .webhook_signature import sign_webhook

log = logging.getLogger("wxpay_server.webhooks")

DELIVERED = "delivered"
FAILED = "failed"
EVENT_STATES = (PENDING, DELIVERED, FAILED)
MAX_DELAY = timedelta(hours=6)
LIST_LIMIT_MAX = 200
EVENT_ID_MAX = 100
LEASE = "webhooks"
ATTEMPT_OUTCOMES = ("delivered", "will_retry", "gave_up")  # a 2xx; a failure with attempts left; the last failure
USER_AGENT = "wxpay-server-webhooks/1"


@dataclass(frozen=True)
class PassReport:
    ran: bool
    enqueued: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0


class Answer(Protocol):
    """What one POST got: the status (``None`` when there was no answer) and why it failed (``None``: a 2xx)."""

    @property
    def status(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...


class WebhookSender(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> Answer:
        """POST ``body``; never raises (an unreachable receiver is an answer with an ``error``)."""
        ...


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
        outbox: Outbox,
        leases: Leases,
        sender: WebhookSender,
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
        self.outbox = outbox
        self.leases = leases
        self.sender = sender
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
        self._passes = 0
        # This process's delivery attempts since start, by how each ended (/status, /metrics).
        self.attempts: dict[str, int] = dict.fromkeys(ATTEMPT_OUTCOMES, 0)
        if url and not secret:
            log.warning("webhooks.url is set but webhooks.secret is not: webhooks are off (they must be signed)")

    @property
    def enabled(self) -> bool:
        return bool(self.url and self._secret)

    async def sweep(self) -> int:
        """Write the events a crash left behind (service/outbox.py)."""
        return await self.outbox.sweep(self.batch)

    # -- delivering -------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self.outbox.written.clear()
                try:
                    await self.run_once(stop)
                except Exception:  # the loop must survive a bad pass
                    log.exception("webhook delivery pass failed")
                waking = asyncio.ensure_future(self.outbox.written.wait())
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
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Wxpay-Event-Id": doc["_id"],
            "Wxpay-Event-Type": doc.get("type", ""),
            "Wxpay-Signature": sign_webhook(self._secret or "", body, timestamp),
        }
        started = time.perf_counter()
        sent = await self.sender.post(self.url or "", body, headers, timeout=self.timeout)
        status, error = sent.status, sent.error
        await pause("webhooks.after_delivery")
        now = self.now()
        entry = {"at": now, "attempt": attempt, "status": status, "error": error,
                 "ms": round((time.perf_counter() - started) * 1000, 1)}
        history = [*doc.get("history", []), entry][-10:]
        changes: dict[str, Any] = {"attempts": attempt, "last_status": status, "last_error": error, "history": history}
        if error is None:
            state, outcome = DELIVERED, "delivered"
            changes.update(state=DELIVERED, delivered_at=now)
        elif attempt >= self.max_attempts:
            state, outcome = FAILED, "gave_up"
            changes.update(state=FAILED, failed_at=now)
            log.error("webhook %s failed after %d attempts (%s)", doc["_id"], attempt, error)
        else:
            state, outcome = PENDING, "will_retry"
            changes["next_attempt_at"] = now + self.delay(attempt)
        self.attempts[outcome] += 1
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

    async def get(self, event_id_: Any) -> dict[str, Any]:
        """One event as the admin API shows it; ``NotFound`` for an id that is not one."""
        return public_event(await self._doc(event_id_))

    async def _doc(self, event_id_: Any) -> dict[str, Any]:
        if not isinstance(event_id_, str) or not event_id_.startswith("ev_") or len(event_id_) > EVENT_ID_MAX:
            raise NotFound("event_not_found", "No such webhook event")
        with store_guard():
            doc = await self.store.get(OUTBOX, event_id_)
        if doc is None:
            raise NotFound("event_not_found", "No such webhook event")
        return doc

    async def resend(self, event_id_: str) -> dict[str, Any]:
        """Queue one event again now, with a fresh attempt budget."""
        doc = await self._doc(event_id_)
        with store_guard():
            doc = await self.store.update_if(
                OUTBOX, event_id_, {"state": doc["state"], "attempts": doc.get("attempts", 0)},
                {"state": PENDING, "attempts": 0, "next_attempt_at": self.now(),
                 "resent": doc.get("resent", 0) + 1},
            )
        if doc is None:
            raise Conflict("event_busy", "The event is being delivered right now; retry")
        self.outbox.written.set()
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

