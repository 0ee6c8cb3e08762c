"""Every notify's verdict, counted since this process started, for /status and /metrics.

``NotifyEndpoint.handle`` reports each notify it answers once, by endpoint
(``notify``, ``refund_notify``), verdict (``paid``, ``duplicate``,
``bad_signature``, ``amount_mismatch`` …), whether it was accepted and
whether its proof of origin succeeded: a refusal of a *verified* notify
means WeChat sent it and someone must look; an unverified one is noise, an
attack, or a key that does not match WeChat's. APIv3's SIGNTEST probes are
not counted here (``NotifyLimiter.probes`` counts them apart: not an alarm).

Per process, like every "since start" figure: Prometheus sums the processes
and ``rate()`` absorbs restarts. Memory is bounded: verdicts are codes from
this code base, and beyond ``MAX_KEYS`` distinct ones the rest count as
``other``.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

MAX_KEYS = 128
OTHER = "other"


class NotifyStats:
    def __init__(self, *, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._counts: Counter[tuple[str, str, bool, bool]] = Counter()

    def observe(self, endpoint: str, verdict: str, *, accepted: bool, verified: bool) -> None:
        """Count one answered notify; never raises."""
        key = (str(endpoint)[:32], str(verdict)[:64], bool(accepted), bool(verified))
        if key not in self._counts and len(self._counts) >= self.max_keys:
            key = (key[0], OTHER, key[2], key[3])
        self._counts[key] += 1

    def snapshot(self) -> list[dict[str, Any]]:
        """One row per (endpoint, verdict, accepted, verified), sorted."""
        return [
            {"endpoint": endpoint, "verdict": verdict, "accepted": accepted, "verified": verified, "count": n}
            for (endpoint, verdict, accepted, verified), n in sorted(self._counts.items())
        ]
