"""How each WeChat endpoint has been doing lately, for /status and /metrics.

The wxpay clients report every attempt (``wxpay.transport.CallRecord``)
through their observer callback; this keeps, per endpoint, the last few
hundred attempts (the "recent" success rate and latency), running totals
since start (Prometheus counters), failures counted by cause
(``wxpay.causes``: refused, dns, tls_certificate, http_502 …) and the last
failure with its host and the operator's words; across endpoints, the
latest failures. Memory is bounded: a fixed window per endpoint, a fixed
number of endpoints, of causes per endpoint, and of latest failures.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from wxpay.causes import hint
from wxpay.transport import CallRecord

WINDOW = 200
MAX_ENDPOINTS = 64
MAX_CAUSES = 32  # per endpoint; causes are a short fixed list (plus http_N), so this is never reached in practice
LATEST_FAILURES = 20
OTHER = "other"  # where calls to endpoints beyond MAX_ENDPOINTS (or causes beyond MAX_CAUSES) are counted


@dataclass
class _Endpoint:
    recent: deque = field(default_factory=lambda: deque(maxlen=WINDOW))  # (ok, latency_s, at)
    calls: int = 0
    failures: int = 0
    latency_sum: float = 0.0
    last_error: str | None = None
    last_error_at: float | None = None
    last_at: float | None = None
    by_cause: dict[str, int] = field(default_factory=dict)
    last_failure: dict[str, Any] | None = None


class CallStats:
    """Per-endpoint rolling window plus totals; ``observe`` never raises."""

    def __init__(
        self,
        *,
        window: int = WINDOW,
        max_endpoints: int = MAX_ENDPOINTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.max_endpoints = max_endpoints
        self.clock = clock
        self._by_endpoint: OrderedDict[str, _Endpoint] = OrderedDict()
        self._latest: deque[dict[str, Any]] = deque(maxlen=LATEST_FAILURES)

    def observe(self, record: CallRecord) -> None:
        """Take one ``CallRecord`` (endpoint, ok, latency_s, error_code)."""
        name = str(getattr(record, "endpoint", "") or "unknown")[:64]
        stats = self._by_endpoint.get(name)
        if stats is None:
            if len(self._by_endpoint) >= self.max_endpoints - 1 and name != OTHER:
                name = OTHER
                stats = self._by_endpoint.get(OTHER)
            if stats is None:
                stats = _Endpoint(recent=deque(maxlen=self.window))
                self._by_endpoint[name] = stats
        ok = bool(getattr(record, "ok", False))
        latency = max(0.0, float(getattr(record, "latency_s", 0.0) or 0.0))
        now = self.clock()
        stats.recent.append((ok, latency, now))
        stats.calls += 1
        stats.latency_sum += latency
        stats.last_at = now
        if not ok:
            stats.failures += 1
            stats.last_error = _text(getattr(record, "error_code", None)) or "error"
            stats.last_error_at = now
            cause = _text(getattr(record, "cause", None), 32) or "unknown"
            if cause not in stats.by_cause and len(stats.by_cause) >= MAX_CAUSES:
                cause = OTHER
            stats.by_cause[cause] = stats.by_cause.get(cause, 0) + 1
            failure = {
                "endpoint": name,
                "cause": cause,
                "code": stats.last_error,
                "host": _text(getattr(record, "host", None), 128),
                "detail": _text(getattr(record, "detail", None), 300),
                "latency_s": round(latency, 3),
                "at": now,
            }
            stats.last_failure = failure
            self._latest.append(failure)

    def snapshot(self) -> list[dict[str, Any]]:
        """One row per endpoint, sorted by name: recent rate/latency and totals."""
        rows = []
        for name in sorted(self._by_endpoint):
            s = self._by_endpoint[name]
            recent = list(s.recent)
            latencies = sorted(lat for _ok, lat, _at in recent)
            ok_recent = sum(1 for ok, _lat, _at in recent if ok)
            rows.append(
                {
                    "endpoint": name,
                    "recent_calls": len(recent),
                    "recent_ok": ok_recent,
                    "success_rate": round(ok_recent / len(recent), 4) if recent else None,
                    "latency_ms_p50": _ms(_quantile(latencies, 0.5)),
                    "latency_ms_p95": _ms(_quantile(latencies, 0.95)),
                    "latency_ms_max": _ms(latencies[-1] if latencies else None),
                    "calls_total": s.calls,
                    "failures_total": s.failures,
                    "latency_seconds_sum": round(s.latency_sum, 6),
                    "last_error": s.last_error,
                    "last_error_at": _when(s.last_error_at),
                    "last_at": _when(s.last_at),
                    "last_failure": _failure_view(s.last_failure),
                    "failures_by_cause": dict(sorted(s.by_cause.items())),
                }
            )
        return rows

    def failures(self) -> dict[str, Any]:
        """Across endpoints: failures since start by cause (most first), and the latest ones (newest first)."""
        totals: dict[str, int] = {}
        for stats in self._by_endpoint.values():
            for cause, n in stats.by_cause.items():
                totals[cause] = totals.get(cause, 0) + n
        return {
            "by_cause": dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))),
            "latest": [_failure_view(f) for f in reversed(self._latest)],
        }


def _text(value: Any, limit: int = 64) -> str | None:
    return None if value is None else str(value)[:limit]


def _failure_view(failure: dict[str, Any] | None) -> dict[str, Any] | None:
    """A failure as /status shows it: its time as a datetime, and what to do about its cause."""
    if failure is None:
        return None
    return {**failure, "at": _when(failure["at"]), "hint": hint(failure["cause"])}


def _quantile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank quantile: an observed value, never an interpolation."""
    if not sorted_values:
        return None
    rank = max(1, -(-int(q * 1000) * len(sorted_values) // 1000))  # ceil(q * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _when(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
