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


def failed(endpoint: str, cause: str, code: str = "wechat_unreachable", host: str = "api.mch.weixin.qq.com") -> CallRecord:
    return CallRecord(endpoint=endpoint, ok=False, latency_s=0.25, error_code=code, cause=cause, host=host,
                      detail=f"{cause} talking to https://{host}/pay/orderquery")


def test_failures_are_counted_by_cause_with_the_last_one_in_full():
    stats = CallStats(clock=lambda: 1_700_000_000.0)
    for cause in ("refused", "refused", "read_timeout", "http_502"):
        stats.observe(failed("orderquery", cause))
    stats.observe(record("orderquery"))
    stats.observe(failed("refund", "tls_client_certificate", host="api.mch.weixin.qq.com:443"))
    rows = {row["endpoint"]: row for row in stats.snapshot()}
    assert rows["orderquery"]["failures_by_cause"] == {"http_502": 1, "read_timeout": 1, "refused": 2}
    last = rows["orderquery"]["last_failure"]
    assert (last["cause"], last["code"], last["host"], last["latency_s"]) == ("http_502", "wechat_unreachable",
                                                                              "api.mch.weixin.qq.com", 0.25)
    assert last["at"].timestamp() == 1_700_000_000.0 and "502" in last["hint"] and "http_502" in last["detail"]
    failures = stats.failures()
    assert failures["by_cause"] == {"refused": 2, "http_502": 1, "read_timeout": 1, "tls_client_certificate": 1}
    assert list(failures["by_cause"]) == ["refused", "http_502", "read_timeout", "tls_client_certificate"]  # most first
    assert [(f["endpoint"], f["cause"]) for f in failures["latest"]][:2] == [
        ("refund", "tls_client_certificate"), ("orderquery", "http_502")]  # newest first
    assert "wechat.cert_path" in failures["latest"][0]["hint"]


def test_failure_memory_is_bounded():
    from service.call_stats import LATEST_FAILURES, MAX_CAUSES

    stats = CallStats()
    for i in range(MAX_CAUSES + 10):
        stats.observe(failed("orderquery", f"http_{400 + i}"))
    [row] = stats.snapshot()
    assert len(row["failures_by_cause"]) == MAX_CAUSES + 1  # the rest counted under "other"
    assert row["failures_by_cause"][OTHER] == 10
    assert len(stats.failures()["latest"]) == LATEST_FAILURES
    stats.observe(CallRecord(endpoint="x", ok=False, latency_s=0.1, cause="c" * 500, detail="d" * 5000))
    latest = stats.failures()["latest"][0]
    assert len(latest["cause"]) == 32 and len(latest["detail"]) == 300


def test_no_failures_means_empty_panels():
    stats = CallStats()
    stats.observe(record("orderquery"))
    assert stats.failures() == {"by_cause": {}, "latest": []}
    assert stats.snapshot()[0]["last_failure"] is None and stats.snapshot()[0]["failures_by_cause"] == {}
