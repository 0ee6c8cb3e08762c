"""What every WeChat → us notify has in common, whatever it carries.

Size cap, safe parse, an audit record of the raw body with its verdict and
latency, and one rule for the reply: SUCCESS only when the work is done and
stored; anything unfinished is FAIL so WeChat retries on its schedule.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from wxpay import notify as wxnotify
from wxpay.errors import MessageTooLargeError, ProtocolError

from .audit import Audit
from .errors import ServiceError

log = logging.getLogger("wxpay_server.notify")


@dataclass(frozen=True)
class NotifyOutcome:
    ok: bool          # what WeChat is told: SUCCESS or FAIL
    status: int       # HTTP status of our reply
    verdict: str      # stable code recorded in the audit trail
    reply: bytes

    @classmethod
    def make(cls, ok: bool, status: int, verdict: str, message: str) -> "NotifyOutcome":
        return cls(ok, status, verdict, wxnotify.notify_reply(ok, message))


class NotifyEndpoint:
    """Subclasses set ``kind`` and ``id_field`` and implement ``_handle``."""

    kind = "notify"
    id_field = "out_trade_no"

    def __init__(self, audit: Audit, *, max_bytes: int) -> None:
        self.audit = audit
        self.max_bytes = max_bytes

    async def handle(self, body: bytes) -> NotifyOutcome:
        started = time.perf_counter()
        key = None
        try:
            key, outcome = await self._handle(body)
        except ServiceError as exc:  # store unavailable and the like
            outcome = NotifyOutcome.make(False, 503, exc.code, "temporarily unable to process")
        except Exception:
            log.exception("%s processing failed", self.kind)
            outcome = NotifyOutcome.make(False, 500, "internal_error", "internal error")
        await self.audit.record(
            self.kind,
            verdict=outcome.verdict,
            raw=body[: self.max_bytes],
            ok=outcome.ok,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            **{self.id_field: key},
        )
        if not outcome.ok:
            log.warning("%s refused: %s (%s)", self.kind, outcome.verdict, key or "unidentified")
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

    async def _handle(self, body: bytes) -> tuple[str | None, NotifyOutcome]:
        raise NotImplementedError
