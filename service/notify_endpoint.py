"""What every WeChat → us notify has in common, whatever it carries.

The proof of origin before any store lookup (the gateway's), an audit
record with its verdict and latency, and one rule for the verdict:
accepted only when the work is done and stored; anything unfinished is
refused so WeChat retries on its schedule. A verdict is not a reply: the
handler asks the gateway how to say it on the wire (APIv2 XML, APIv3 a
status), so nothing here knows HTTP or a wire format.

What a notify costs depends on whether it proved where it came from. A
verified notify (``Seen.verified``) is recorded with its raw body (a repeat
of one already applied, by digest: the first is kept) and any refusal of
it is logged at WARNING: WeChat sent it, someone must look. A
notify refused before its proof costs no store lookup (subclasses verify
first), and what it would cost besides (a digest-only audit record and a
DEBUG line) is granted by the :class:`NotifyLimiter` per source; beyond the
limit it is refused as rate limited and only counted. The limiter is never asked about
a verified notify, so it can never refuse one.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Mapping

from wxpay.gateway import NotifyVerdict, Outcome

from .audit import Audit
from .errors import ServiceError
from .notify_limiter import NotifyLimiter
from .notify_stats import NotifyStats

log = logging.getLogger("wxpay_server.notify")


def accepted(code: str) -> NotifyVerdict:
    return NotifyVerdict(code, Outcome.ACCEPTED, "OK")


def refused(code: str, outcome: Outcome, message: str) -> NotifyVerdict:
    return NotifyVerdict(code, outcome, message)


@dataclass(frozen=True)
class Handled:
    """How one notify ended, whether its proof of origin succeeded, and which
    API version's notify it was (the reply is written in that version's form)."""

    verdict: NotifyVerdict
    verified: bool = False
    api_version: str = "v2"


DUPLICATE = "duplicate"  # a verified repeat: WeChat's retries, or a replay of a body it signed
SIGNTEST_PROBE = "signtest_probe"  # APIv3: WeChat checking that we refuse a WECHATPAY/SIGNTEST/ signature
RATE_LIMITED = refused("rate_limited", Outcome.RATE_LIMITED, "too many unverified notifies")
INTERNAL = refused("internal_error", Outcome.FAILED, "internal error")


@dataclass
class Seen:
    """What one notify has shown so far: its key once known, and whether
    its proof of origin succeeded (set by the subclass at that moment, so an
    error after it still counts as verified)."""

    key: str | None = None
    verified: bool = False
    api_version: str = "v2"
    record: str | None = None  # what to keep instead of the raw body (APIv3: the decrypted resource)


def version_not_configured(version: str) -> NotifyVerdict:
    """A notify of an API version this server holds no key for: nothing can prove it."""
    return refused("api_version_not_configured", Outcome.INVALID, f"API{version} is not configured here")


class NotifyEndpoint:
    """Subclasses set ``kind`` and ``id_field`` and implement ``_handle``."""

    kind = "notify"
    id_field = "out_trade_no"

    def __init__(
        self, audit: Audit, *, max_bytes: int, limiter: NotifyLimiter | None = None, stats: NotifyStats | None = None,
    ) -> None:
        self.audit = audit
        self.max_bytes = max_bytes
        self.limiter = limiter or NotifyLimiter(per_source_per_minute=30, total_per_minute=300)
        self.stats = stats or NotifyStats()

    async def handle(self, headers: Mapping[str, str], body: bytes, source: str = "") -> Handled:
        """Process one notify from ``source`` (the client IP)."""
        started = time.perf_counter()
        seen = Seen()
        try:
            verdict = await self._handle(headers, body, seen)
        except ServiceError as exc:  # store unavailable and the like: never accepted
            verdict = refused(exc.code, Outcome.UNAVAILABLE, "temporarily unable to process")
        except Exception:
            log.exception("%s processing failed", self.kind)
            verdict = INTERNAL
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        version = seen.api_version
        if verdict.code != SIGNTEST_PROBE:  # probes are counted apart (the limiter's), never as a refusal
            self.stats.observe(self.kind, verdict.code, accepted=verdict.ok, verified=seen.verified)
        if seen.verified:
            if verdict.code == DUPLICATE:  # its first delivery's record is kept already
                await self.audit.record_digest(
                    self.kind, verdict=verdict.code, body=body, verified=True, ok=verdict.ok,
                    latency_ms=latency_ms, api_version=version, **{self.id_field: seen.key},
                )
            else:
                # APIv3's raw body is ciphertext: the gateway's record (envelope and
                # decrypted resource, no key) is kept instead, with the body's digest.
                kept = seen.record if seen.record is not None else body[: self.max_bytes]
                extra = {"wire_sha256": hashlib.sha256(body).hexdigest()} if seen.record is not None else {}
                await self.audit.record(
                    self.kind, verdict=verdict.code, raw=kept, ok=verdict.ok,
                    latency_ms=latency_ms, api_version=version, **extra, **{self.id_field: seen.key},
                )
            if not verdict.ok:
                log.warning("%s refused: %s (%s)", self.kind, verdict.code, seen.key or "unidentified")
            return Handled(verdict, verified=True, api_version=version)
        if verdict.code == SIGNTEST_PROBE:
            # WeChat's probe (or anyone's copy of one): refused, counted apart, no
            # alarm and no record; it costs one counter whoever sends it.
            self.limiter.count_probe(self.kind)
            return Handled(verdict, api_version=version)
        # Not verified: the only place the limiter is asked (see its guarantee).
        if not self.limiter.admit(self.kind, source, verdict.code):
            return Handled(RATE_LIMITED, api_version=version)
        await self.audit.record_digest(
            self.kind, verdict=verdict.code, body=body, verified=False, ok=verdict.ok, latency_ms=latency_ms,
            api_version=version, **{self.id_field: seen.key},
        )
        return Handled(verdict, api_version=version)

    async def _handle(self, headers: Mapping[str, str], body: bytes, seen: Seen) -> NotifyVerdict:
        raise NotImplementedError
