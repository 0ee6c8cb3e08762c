"""CallStats: a bounded recent window per endpoint plus totals since start."""
from __future__ import annotations

from wxpay.transport import CallRecord

from service.call_stats import OTHER, CallStats


def record(endpoint: str, ok: bool = True, latency: float = 0.01, code: str | None = None) -> CallRecord:
    return CallRecord(endpoint=endpoint, ok=ok, latency_s=latency, error_code=code)


def test_success_rate_and_latency_over_the_recent_window_only():
    stats = CallStats(window=10, clock=lambda: 1_700_000_000.0)
    for _ in range(20):
        stats.observe(record("unifiedorder", ok=False, latency=1.0, code="SYSTEMERROR"))
    for i in range(10):
        stats.observe(record("unifiedorder", ok=i != 0, latency=(i + 1) / 100))
    [row] = stats.snapshot()
    assert row["endpoint"] == "unifiedorder"
    assert (row["recent_calls"], row["recent_ok"], row["success_rate"]) == (10, 9, 0.9)
    assert (row["latency_ms_p50"], row["latency_ms_p95"], row["latency_ms_max"]) == (50.0, 100.0, 100.0)
    # Totals keep counting past the window (Prometheus counters need that).
    assert (row["calls_total"], row["failures_total"]) == (30, 21)
    assert row["last_error"] == "error" and row["last_error_at"].timestamp() == 1_700_000_000.0


def test_last_error_keeps_wechats_code():
    stats = CallStats()
    stats.observe(record("refund", ok=False, code="NOTENOUGH"))
    stats.observe(record("refund"))
    [row] = stats.snapshot()
    assert row["last_error"] == "NOTENOUGH" and row["success_rate"] == 0.5


def test_endpoints_are_bounded_and_sorted():
    stats = CallStats(max_endpoints=4)
    for name in ("e", "d", "c", "b", "a"):
        stats.observe(record(name))
    names = [row["endpoint"] for row in stats.snapshot()]
    assert names == sorted(["e", "d", "c", OTHER])
    assert next(r for r in stats.snapshot() if r["endpoint"] == OTHER)["calls_total"] == 2


def test_no_calls_means_no_rows_and_no_rates():
    assert CallStats().snapshot() == []


def test_observe_tolerates_odd_records():
    stats = CallStats()
    stats.observe(object())  # an observer must never break a payment
    [row] = stats.snapshot()
    assert row["endpoint"] == "unknown" and row["recent_ok"] == 0
