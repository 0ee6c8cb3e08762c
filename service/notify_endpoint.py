"""What every WeChat → us notify has in common, whatever it carries.

Size cap, safe parse, the proof of origin before any store lookup, an audit
record with its verdict and latency, and one rule for the reply: SUCCESS
only when the work is done and stored; anything unfinished is FAIL so
WeChat retries on its schedule.

What a notify costs depends on whether it proved where it came from. A
verified notify (``Seen.verified``) is recorded with its raw body (a repeat
of one already applied, by digest: the first is kept) and any refusal of
it is logged at WARNING: WeChat sent it, someone must look. A
notify refused before its proof costs no store lookup (subclasses verify
first), and what it would cost besides (a digest-only audit record and a
DEBUG line) is granted by the :class:`NotifyLimiter` per source; beyond the
limit it is answered 429 and only counted. The limiter is never asked about
a verified notify, so it can never refuse one.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from wxpay import notify as wxnotify
from wxpay.errors import MessageTooLargeError, ProtocolError

from .audit import Audit
from .errors import ServiceError
from .notify_limiter import NotifyLimiter

log = logging.getLogger("wxpay_server.notify")


@dataclass(frozen=True)
class NotifyOutcome:
    ok: bool          # what WeChat is told: SUCCESS or FAIL
    status: int       # HTTP status of our reply
    verdict: str      # stable code recorded in the audit trail
    reply: bytes
    verified: bool = False  # its proof of origin succeeded (set by NotifyEndpoint.handle)

    @classmethod
    def make(cls, ok: bool, status: int, verdict: str, message: str) -> "NotifyOutcome":
        return cls(ok, status, verdict, wxnotify.notify_reply(ok, message))


DUPLICATE = "duplicate"  # a verified repeat: WeChat's retries, or a replay of a body it signed
RATE_LIMITED = NotifyOutcome.make(False, 429, "rate_limited", "too many unverified notifies")


@dataclass
class Seen:
    """What one notify has shown so far: its key once known, and whether
    its proof of origin succeeded (set by the subclass at that moment, so an
    error after it still counts as verified)."""

    key: str | None = None
    verified: bool = False


class NotifyEndpoint:
    """Subclasses set ``kind`` and ``id_field`` and implement ``_handle``."""

    kind = "notify"
    id_field = "out_trade_no"

    def __init__(self, audit: Audit, *, max_bytes: int, limiter: NotifyLimiter | None = None) -> None:
        self.audit = audit
        self.max_bytes = max_bytes
        self.limiter = limiter or NotifyLimiter(per_source_per_minute=30, total_per_minute=300)

    async def handle(self, body: bytes, source: str = "") -> NotifyOutcome:
        """Process one notify from ``source`` (the client IP)."""
        started = time.perf_counter()
        seen = Seen()
        try:
            outcome = await self._handle(body, seen)
        except ServiceError as exc:  # store unavailable and the like
            outcome = NotifyOutcome.make(False, 503, exc.code, "temporarily unable to process")
        except Exception:
            log.exception("%s processing failed", self.kind)
            outcome = NotifyOutcome.make(False, 500, "internal_error", "internal error")
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        if seen.verified:
            if outcome.verdict == DUPLICATE:  # its first delivery's raw body is kept already
                await self.audit.record_digest(
                    self.kind, verdict=outcome.verdict, body=body, verified=True, ok=outcome.ok,
                    latency_ms=latency_ms, **{self.id_field: seen.key},
                )
            else:
                await self.audit.record(
                    self.kind, verdict=outcome.verdict, raw=body[: self.max_bytes], ok=outcome.ok,
                    latency_ms=latency_ms, **{self.id_field: seen.key},
                )
            if not outcome.ok:
                log.warning("%s refused: %s (%s)", self.kind, outcome.verdict, seen.key or "unidentified")
            return replace(outcome, verified=True)
        # Not verified: the only place the limiter is asked (see its guarantee).
        if not self.limiter.admit(self.kind, source, outcome.verdict):
            return RATE_LIMITED
        await self.audit.record_digest(
            self.kind, verdict=outcome.verdict, body=body, verified=False, ok=outcome.ok, latency_ms=latency_ms,
            **{self.id_field: seen.key},
        )
        return outcome

    def read(self, body: bytes) -> dict[str, str] | NotifyOutcome:
        """The parsed fields, or the refusal to send back (nothing trusted yet)."""
        if len(body) > self.max_bytes:
            return NotifyOutcome.make(False, 413, "too_large", "body too large")
        try:
            return wxnotify.read_notify(body, max_bytes=self.max_bytes)
        except MessageTooLargeError:
            return NotifyOutcome.make(False, 413, "too_large", "body too large")
        except ProtocolError as exc:
            return NotifyOutcome.make(False, 400, exc.code, "malformed notify")

    async def _handle(self, body: bytes, seen: Seen) -> NotifyOutcome:
        raise NotImplementedError
