"""What a notify that fails its proof of origin may cost, per source and in all.

The guarantee: **a notify with a valid signature is never refused by this
limiter.** It is consulted in exactly one place
(``NotifyEndpoint.handle``), on the branch where the notify's proof of
origin has already failed (payment: the signature, checked before any store
lookup; refund: decrypting ``req_info``). Verification itself always runs,
costs only CPU (a capped parse and one MD5/HMAC or AES pass) and needs no
budget. So however far WeChat's own address is over its limit because of a
flood (through a shared proxy, say), a notify WeChat signed goes through
the whole flow.

What the limiter does gate is what a refusal would otherwise cost: its
audit record (verdict, size, digest) and a log line. Within the limits, a
refusal is recorded; beyond them it is answered 429 and only counted.
Individual refusals are logged at DEBUG; one WARNING line per window sums
them up (counts by endpoint and verdict, how many were not recorded, the
busiest sources), so a flood writes one line a minute, not one per request.

Memory is bounded: one token bucket per source, at most ``max_sources``
(least recently seen forgotten first, which only ever gives a forgotten
source a fresh budget: the total bucket still holds), and the window's
counters are capped the same way. A source is an IPv4 address or an IPv6
/64 (``edge.sources.source_of``, shared by every per-source limit).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable

from edge.log_budget import Buckets
from edge.sources import source_of

log = logging.getLogger("wxpay_server.notify")

MAX_SOURCES = 10_000
WINDOW_S = 60.0
TOP_SOURCES = 3


class NotifyLimiter:
    """Token buckets (per source and in all) for recording unverified
    notifies, and the once-a-window summary of them."""

    def __init__(
        self,
        *,
        per_source_per_minute: int,
        total_per_minute: int,
        max_sources: int = MAX_SOURCES,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_source = float(per_source_per_minute)
        self.total = float(total_per_minute)
        self.max_sources = max_sources
        self.window_s = window_s
        self.clock = clock
        self._buckets = Buckets(
            per_source_per_minute=per_source_per_minute, total_per_minute=total_per_minute,
            max_sources=max_sources, clock=clock,
        )
        # Since start (for /status and /metrics): (endpoint, recorded) -> count.
        self.totals: Counter[tuple[str, bool]] = Counter()
        self._verdicts: Counter[tuple[str, str]] = Counter()
        self._by_source: Counter[str] = Counter()
        self._not_recorded = 0
        self._summary: asyncio.TimerHandle | None = None
        # APIv3's WECHATPAY/SIGNTEST/ probes, counted apart: refused as WeChat
        # expects, never recorded, never in the summary line (not an alarm).
        self.probes: Counter[str] = Counter()
        self.last_probe_at: float | None = None

    def admit(self, endpoint: str, source: str, verdict: str) -> bool:
        """Count one unverified notify; ``True`` if it may be recorded.

        Only ever called after verification failed (see the module's
        guarantee). Never raises, never waits."""
        key = source_of(source)
        admitted = self._buckets.take(key)
        self._count(endpoint, key, verdict, admitted)
        return admitted

    def count_probe(self, endpoint: str) -> None:
        """One signature probe refused (anyone can send one: it costs this counter only)."""
        self.probes[endpoint] += 1
        self.last_probe_at = time.time()
        log.debug("%s: a WECHATPAY/SIGNTEST/ signature probe, refused", endpoint)

    def _count(self, endpoint: str, key: str, verdict: str, admitted: bool) -> None:
        self.totals[(endpoint, admitted)] += 1
        if (endpoint, verdict) in self._verdicts or len(self._verdicts) < 64:
            self._verdicts[(endpoint, verdict)] += 1
        else:
            self._verdicts[(endpoint, "other")] += 1
        if key in self._by_source or len(self._by_source) < self.max_sources:
            self._by_source[key] += 1
        if not admitted:
            self._not_recorded += 1
        log.debug("%s refused before verification: %s from %s (%s)", endpoint, verdict, key,
                  "recorded" if admitted else "over the limit, not recorded")
        if self._summary is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._summary = loop.call_later(self.window_s, self.flush)

    def flush(self) -> None:
        """Log the window's one summary line (at the end of each window with
        refusals; also callable at shutdown) and start a new window."""
        if self._summary is not None:
            self._summary.cancel()
            self._summary = None
        if not self._verdicts:
            return
        total = sum(self._verdicts.values())
        by_verdict = ", ".join(f"{ep} {verdict} {n}" for (ep, verdict), n in self._verdicts.most_common())
        busiest = ", ".join(f"{src} {n}" for src, n in self._by_source.most_common(TOP_SOURCES))
        log.warning(
            "%d notify(s) refused before verification in the last %.0f s (%s); %d over the rate limit answered 429 "
            "and not recorded; %d source(s), busiest: %s",
            total, self.window_s, by_verdict, self._not_recorded, len(self._by_source), busiest,
        )
        self._verdicts.clear()
        self._by_source.clear()
        self._not_recorded = 0

    def snapshot(self) -> dict[str, Any]:
        """Counts since start, for /status and /metrics."""
        endpoints = sorted({ep for ep, _ in self.totals})
        return {
            "per_source_per_minute": int(self.per_source),
            "total_per_minute": int(self.total),
            "sources_tracked": len(self._buckets),
            "refused_unverified": {
                ep: {"recorded": self.totals[(ep, True)], "not_recorded": self.totals[(ep, False)]} for ep in endpoints
            },
            "signtest_probes": dict(sorted(self.probes.items())),
            "last_signtest_probe_at": (
                datetime.fromtimestamp(self.last_probe_at, timezone.utc) if self.last_probe_at is not None else None
            ),
        }
