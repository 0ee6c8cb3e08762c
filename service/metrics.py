"""/metrics in Prometheus text format, from the same figures as /status.

Each application gets its own ``CollectorRegistry`` (never prometheus_client's
global one), so a test process can build many apps, and a scrape renders
the figures gathered for it: nothing is kept between scrapes except the
WeChat call totals, which live in :class:`service.call_stats.CallStats`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _FiguresCollector:
    def __init__(self) -> None:
        self.figures: dict[str, Any] | None = None

    def describe(self) -> list[Metric]:
        return []  # nothing fixed to describe: the families depend on the figures

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        if not f:
            return
        yield from _families(f)


class StatusMetrics:
    """One per application: ``render(figures)`` → the exposition bytes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _FiguresCollector()
        self.registry.register(self._collector)

    def render(self, figures: dict[str, Any]) -> bytes:
        # No await between setting and rendering: concurrent scrapes cannot mix.
        self._collector.figures = figures
        try:
            return generate_latest(self.registry)
        finally:
            self._collector.figures = None


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _families(f: dict[str, Any]) -> Iterator[Metric]:
    info = GaugeMetricFamily("wxpay_info", "Version and mode of this process", labels=["version", "mode", "store"])
    store = f.get("store") or {}
    info.add_metric([str(f.get("version")), str(f.get("mode")), str(store.get("backend", ""))], 1.0)
    yield info
    yield GaugeMetricFamily("wxpay_uptime_seconds", "Seconds since this process started", value=float(f.get("uptime_s") or 0))
    yield GaugeMetricFamily("wxpay_store_up", "1 when the store answered a ping", value=1.0 if store.get("ok") else 0.0)
    if store.get("rtt_ms") is not None:
        yield GaugeMetricFamily("wxpay_store_rtt_seconds", "Store ping round-trip time", value=store["rtt_ms"] / 1000)

    wechat = f.get("wechat") or []
    calls = CounterMetricFamily("wxpay_wechat_calls", "Attempts at each WeChat endpoint since start", labels=["endpoint", "outcome"])
    seconds = CounterMetricFamily("wxpay_wechat_call_seconds", "Total time spent in calls to each WeChat endpoint", labels=["endpoint"])
    rate = GaugeMetricFamily("wxpay_wechat_recent_success_ratio", "Share of the recent attempts that succeeded", labels=["endpoint"])
    p95 = GaugeMetricFamily("wxpay_wechat_recent_latency_p95_seconds", "95th percentile latency of the recent attempts", labels=["endpoint"])
    failures = CounterMetricFamily(
        "wxpay_wechat_call_failures", "Failed attempts at each WeChat endpoint since start, by cause (wxpay.causes)",
        labels=["endpoint", "cause"],
    )
    for row in wechat:
        ep = row["endpoint"]
        for cause, n in (row.get("failures_by_cause") or {}).items():
            failures.add_metric([ep, cause], n)
        calls.add_metric([ep, "ok"], row["calls_total"] - row["failures_total"])
        calls.add_metric([ep, "error"], row["failures_total"])
        seconds.add_metric([ep], row["latency_seconds_sum"])
        if row.get("success_rate") is not None:
            rate.add_metric([ep], row["success_rate"])
        if row.get("latency_ms_p95") is not None:
            p95.add_metric([ep], row["latency_ms_p95"] / 1000)
    yield from (calls, seconds, rate, p95, failures)

    tokens = f.get("tokens") or {}
    if "error" not in tokens:
        expires = GaugeMetricFamily("wxpay_token_expires_in_seconds", "Seconds until the cached credential expires", labels=["kind"])
        for kind, t in sorted(tokens.items()):
            if t.get("expires_in_s") is not None:
                expires.add_metric([kind], t["expires_in_s"])
        yield expires

    today = f.get("orders_today") or {}
    if "by_state" in today:
        orders = GaugeMetricFamily("wxpay_orders_today", "Orders created since China-time midnight, by state", labels=["state"])
        for state, n in today["by_state"].items():
            orders.add_metric([state], n)
        yield orders
        yield GaugeMetricFamily("wxpay_revenue_today_fen", "Amount of today's paid orders, in fen", value=today["revenue_fen"])

    chart = f.get("chart") or {}
    if "buckets" in chart:
        notifies = GaugeMetricFamily("wxpay_notifies_window", f"Payment notifies in the last {chart['hours']} hours", labels=["result"])
        refused = sum(b["notifies_refused"] for b in chart["buckets"])
        total = sum(b["notifies"] for b in chart["buckets"])
        notifies.add_metric(["accepted"], total - refused)
        notifies.add_metric(["refused"], refused)
        yield notifies

    limiter = f.get("notify_limiter") or {}
    if "refused_unverified" in limiter:
        refused = CounterMetricFamily(
            "wxpay_notifies_unverified_refused",
            "Notifies refused before their proof of origin, since start; recorded=no: over the rate limit (429)",
            labels=["endpoint", "recorded"],
        )
        for endpoint, counts in sorted(limiter["refused_unverified"].items()):
            refused.add_metric([endpoint, "yes"], counts["recorded"])
            refused.add_metric([endpoint, "no"], counts["not_recorded"])
        yield refused

    pay = f.get("wechat_pay") or {}
    if pay.get("gateways"):
        api = GaugeMetricFamily(
            "wxpay_wechat_pay_api", "WeChat Pay API versions in use: role=orders (the configured one) or notifies "
            "(its notifies are read: the other version's after a move)", labels=["api_version", "key_mode", "role"])
        api.add_metric([pay["api_version"], str(pay["gateways"][pay["api_version"]].get("key_mode") or ""), "orders"],
                       1.0)
        for version in pay.get("notify_versions") or ():
            api.add_metric([version, str(pay["gateways"][version].get("key_mode") or ""), "notifies"], 1.0)
        yield api
        expiry = GaugeMetricFamily(
            "wxpay_wechat_certificate_expiry_timestamp_seconds",
            "When each certificate this server relies on ends: WeChat's platform certificates and the merchant's "
            "API certificate", labels=["kind", "serial_no"])
        for view in pay["gateways"].values():
            for cert in view.get("platform_certificates") or ():
                expiry.add_metric(["platform", cert["serial_no"]], _timestamp(cert["not_after"]))
            if view.get("merchant_certificate_expires_at"):
                expiry.add_metric(["merchant", str(view.get("merchant_serial_no"))],
                                  _timestamp(view["merchant_certificate_expires_at"]))
        yield expiry
    if "signtest_probes" in limiter:
        probes = CounterMetricFamily(
            "wxpay_notify_signtest_probes", "WECHATPAY/SIGNTEST/ signature probes refused, since start (WeChat "
            "checking that forged signatures are refused; not an alarm)", labels=["endpoint"])
        for endpoint in ("notify", "refund_notify"):
            probes.add_metric([endpoint], float(limiter["signtest_probes"].get(endpoint, 0)))
        yield probes

    rec = (f.get("reconciler") or {}).get("last") or {}
    if rec.get("finished_at"):
        finished = datetime.fromisoformat(rec["finished_at"]).timestamp()
        yield GaugeMetricFamily("wxpay_reconciler_last_run_timestamp_seconds", "When the last reconciler pass finished", value=finished)
        last = GaugeMetricFamily("wxpay_reconciler_last_run", "Counts from the last reconciler pass", labels=["figure"])
        for key in ("checked", "paid", "closed", "failed", "errors", "checkouts_closed"):
            last.add_metric([key], float(rec.get(key) or 0))
        yield last
