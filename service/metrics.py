"""/metrics in Prometheus text format: every figure /status.json has, by Prometheus's conventions.

Each application gets its own ``CollectorRegistry`` (never prometheus_client's
global one), so a test process can build many apps, and a scrape renders
the figures ``service.status.collect`` gathered for it: nothing is kept
here between scrapes. What is left out on purpose (the lists of recent
items, the hourly chart, texts such as the last error's message) and why:
docs/monitoring.md.

Two kinds of figure, and each metric's HELP says which:

- **from the store** (``[store]``): orders, refunds, webhooks, double
  payments, tokens, the reconciler's last pass. Gauges; every process
  reports the same value, and a restart changes nothing. Aggregate them
  across processes with ``max``, not ``sum``.
- **this process since it started** (``[process]``): WeChat calls, notify
  verdicts, payments confirmed, webhook attempts. Counters (``_total``);
  they start from zero at each start, which ``rate()`` and ``increase()``
  absorb, and Prometheus sums the processes.

Names end in their unit (``_seconds``, ``_fen``: money is integer fen),
times are Unix timestamps (``_timestamp_seconds``), versions and modes are
``_info`` gauges of value 1, and no label ever carries a checkout id, an
order number or an address: label values are endpoints, states, verdicts,
causes and key serials, all from short lists.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STORE = " [store: the same in every process; survives restarts]"
PROCESS = " [process: this process since it started]"
QUANTILES = (("0.5", "latency_ms_p50"), ("0.95", "latency_ms_p95"))
# The /status sections read from the store that can fail on their own ({"error": code}).
STORE_SECTIONS = ("tokens", "orders_today", "money_today", "reconciler", "refunds", "double_payments", "webhooks")


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


def _families(f: dict[str, Any]) -> Iterator[Metric]:
    for part in (_process, _store, _sections, _tokens, _orders, _money, _payments, _notifies, _limiter, _wechat_calls,
                 _wechat_pay, _reconciler, _refunds, _double_payments, _webhooks):
        yield from part(f)


# -- helpers -------------------------------------------------------------------------------------


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _ok(section: Any) -> bool:
    """A section the store answered (a failed one is ``{"error": code}``)."""
    return isinstance(section, dict) and "error" not in section


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _labelled(kind: type, name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> Metric:
    family = kind(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric([str(v) for v in values], float(value))
    return family


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


# -- the sections, in /status.json's order --------------------------------------------------------


def _process(f: dict[str, Any]) -> Iterator[Metric]:
    store = f.get("store") or {}
    yield _labelled(GaugeMetricFamily, "wxpay_info", "Version and mode of this process (value 1)",
                    ["version", "mode", "store"], [([f.get("version"), f.get("mode"), store.get("backend", "")], 1)])
    if f.get("started_at"):
        yield _gauge("wxpay_start_time_seconds", "When this process started (Unix time)", _timestamp(f["started_at"]))
    yield _gauge("wxpay_uptime_seconds", "Seconds since this process started", f.get("uptime_s") or 0)


def _store(f: dict[str, Any]) -> Iterator[Metric]:
    store = f.get("store") or {}
    yield _labelled(GaugeMetricFamily, "wxpay_store_info", "The store this process uses (value 1); location: the "
                    "SQLite file, or MongoDB's hosts and database (never credentials)", ["backend", "location"],
                    [([store.get("backend", ""), store.get("location", "")], 1)])
    yield _gauge("wxpay_store_up", "1 when the store answered a ping at this scrape, else 0", 1 if store.get("ok") else 0)
    if store.get("rtt_ms") is not None:
        yield _gauge("wxpay_store_rtt_seconds", "Round-trip time of that ping", store["rtt_ms"] / 1000)


def _sections(f: dict[str, Any]) -> Iterator[Metric]:
    yield _labelled(
        GaugeMetricFamily, "wxpay_status_section_up",
        "1 when this scrape could read a section of figures from the store, 0 when it could not (its metrics are "
        "missing from this scrape)", ["section"],
        [([name], 1 if _ok(f.get(name)) else 0) for name in STORE_SECTIONS if name in f])


def _tokens(f: dict[str, Any]) -> Iterator[Metric]:
    tokens = f.get("tokens")
    if not _ok(tokens):
        return
    rows = sorted(tokens.items())
    yield _labelled(GaugeMetricFamily, "wxpay_token_expiry_timestamp_seconds",
                    "When the cached credential (access_token, jsapi_ticket) expires" + STORE, ["kind"],
                    [([k], _timestamp(t["expires_at"])) for k, t in rows if t.get("expires_at")])
    yield _labelled(GaugeMetricFamily, "wxpay_token_expires_in_seconds",
                    "Seconds until the cached credential expires, at this scrape" + STORE, ["kind"],
                    [([k], t["expires_in_s"]) for k, t in rows if t.get("expires_in_s") is not None])
    yield _labelled(GaugeMetricFamily, "wxpay_token_refreshed_timestamp_seconds",
                    "When the cached credential was fetched from WeChat" + STORE, ["kind"],
                    [([k], _timestamp(t["refreshed_at"])) for k, t in rows if t.get("refreshed_at")])
    yield _labelled(GaugeMetricFamily, "wxpay_token_refresh_consecutive_failures",
                    "Fetches of the credential that failed in a row, by any process (0 after a success; the last "
                    "failure's code is on /status)" + STORE, ["kind"],
                    [([k], t.get("refresh_failures") or 0) for k, t in rows])


def _orders(f: dict[str, Any]) -> Iterator[Metric]:
    today = f.get("orders_today")
    if not _ok(today):
        return
    yield _labelled(GaugeMetricFamily, "wxpay_orders_today",
                    "WeChat orders created since China-time midnight, by state" + STORE, ["state"],
                    [([state], n) for state, n in today["by_state"].items()])
    yield _gauge("wxpay_revenue_today_fen", "Amount of the orders created today and paid, in fen" + STORE,
                 today["revenue_fen"])
    yield _gauge("wxpay_revenue_today_truncated", "1 when today's paid orders were too many to add up at this scrape "
                 "(wxpay_revenue_today_fen is then a lower bound)" + STORE, 1 if today.get("revenue_truncated") else 0)


def _money(f: dict[str, Any]) -> Iterator[Metric]:
    day = f.get("money_today")
    if not _ok(day):
        return
    yield _labelled(GaugeMetricFamily, "wxpay_money_today_fen",
                    "Today's money (the China day; a payment counts on the day WeChat says it was paid, a refund "
                    "on the day it was asked), in fen: gross, refunded (succeeded), refunds_pending (asked, not "
                    "yet succeeded) and net = gross - refunded" + STORE, ["kind"],
                    [([kind], day[f"{kind}_fen"]) for kind in ("gross", "refunded", "refunds_pending", "net")])
    yield _gauge("wxpay_payments_today", "Payments of the China day" + STORE, day["payments"])
    yield _gauge("wxpay_refunds_today", "Refunds asked on the China day, WeChat's refusals left out" + STORE,
                 day["refunds"])
    yield _gauge("wxpay_money_today_truncated", "1 when the day had too many payments or refunds to add up at "
                 "this scrape (wxpay_money_today_fen is then a lower bound)" + STORE, 1 if day.get("truncated") else 0)


def _payments(f: dict[str, Any]) -> Iterator[Metric]:
    yield _labelled(CounterMetricFamily, "wxpay_payments_confirmed",
                    "Orders moved to paid, by who found the payment: via=notify (WeChat's notify) or "
                    "via=reconciler (its order query: the notify never came)" + PROCESS, ["via"],
                    [([via], n) for via, n in sorted((f.get("payments_confirmed") or {}).items())])


def _notifies(f: dict[str, Any]) -> Iterator[Metric]:
    yield _labelled(
        CounterMetricFamily, "wxpay_notifies",
        "Notifies answered, by endpoint (notify, refund_notify), verdict, result (accepted, refused) and whether "
        "their proof of origin succeeded (verified=yes: WeChat sent it); SIGNTEST probes are not counted here"
        + PROCESS, ["endpoint", "verdict", "result", "verified"],
        [([r["endpoint"], r["verdict"], "accepted" if r["accepted"] else "refused", _yes(r["verified"])], r["count"])
         for r in f.get("notifies") or ()])


def _limiter(f: dict[str, Any]) -> Iterator[Metric]:
    limiter = f.get("notify_limiter") or {}
    if "refused_unverified" not in limiter:
        return
    yield _labelled(CounterMetricFamily, "wxpay_notifies_unverified_refused",
                    "Notifies refused before their proof of origin; recorded=no: over the rate limit (429), only "
                    "counted" + PROCESS, ["endpoint", "recorded"],
                    [row for endpoint, counts in sorted(limiter["refused_unverified"].items())
                     for row in (([endpoint, "yes"], counts["recorded"]), ([endpoint, "no"], counts["not_recorded"]))])
    probes = limiter.get("signtest_probes") or {}
    yield _labelled(CounterMetricFamily, "wxpay_notify_signtest_probes",
                    "APIv3 WECHATPAY/SIGNTEST/ signature probes refused (WeChat checking that forged signatures are "
                    "refused: not an alarm)" + PROCESS, ["endpoint"],
                    [([endpoint], probes.get(endpoint, 0)) for endpoint in sorted({"notify", "refund_notify", *probes})])
    if limiter.get("last_signtest_probe_at"):
        yield _gauge("wxpay_notify_signtest_last_probe_timestamp_seconds", "When the last SIGNTEST probe came" + PROCESS,
                     _timestamp(limiter["last_signtest_probe_at"]))
    yield _labelled(GaugeMetricFamily, "wxpay_notify_limiter_budget",
                    "Unverified notifies recorded at most in any minute, per source and in all "
                    "(notify.refused_per_minute, notify.refused_per_minute_total); beyond it they are answered 429",
                    ["scope"], [(["source"], limiter["per_source_per_minute"]), (["total"], limiter["total_per_minute"])])
    yield _gauge("wxpay_notify_limiter_sources", "Sources the notify limiter keeps a budget for" + PROCESS,
                 limiter.get("sources_tracked") or 0)


def _wechat_calls(f: dict[str, Any]) -> Iterator[Metric]:
    rows = f.get("wechat") or []
    calls = CounterMetricFamily("wxpay_wechat_calls", "Attempts at each WeChat endpoint, by outcome" + PROCESS,
                                labels=["endpoint", "outcome"])
    failures = CounterMetricFamily(
        "wxpay_wechat_call_failures", "Failed attempts at each WeChat endpoint, by cause (refused, dns, tls_certificate, "
        "read_timeout, http_502 …: docs/wxpay.md)" + PROCESS, labels=["endpoint", "cause"])
    duration = Metric("wxpay_wechat_call_duration_seconds",
                      "Time of each attempt at a WeChat endpoint: quantiles over its recent attempts (the last 200), "
                      "sum and count since start" + PROCESS, "summary")
    recent = GaugeMetricFamily("wxpay_wechat_recent_calls", "Recent attempts at each WeChat endpoint (at most the "
                               "last 200), by outcome" + PROCESS, labels=["endpoint", "outcome"])
    ratio = GaugeMetricFamily("wxpay_wechat_recent_success_ratio", "Share of the recent attempts that succeeded"
                              + PROCESS, labels=["endpoint"])
    slowest = GaugeMetricFamily("wxpay_wechat_recent_latency_max_seconds", "The slowest of the recent attempts"
                                + PROCESS, labels=["endpoint"])
    last = GaugeMetricFamily("wxpay_wechat_last_call_timestamp_seconds", "When the last attempt ended" + PROCESS,
                             labels=["endpoint"])
    last_failure = GaugeMetricFamily("wxpay_wechat_last_failure_timestamp_seconds", "When the last failed attempt "
                                     "ended (its cause and host are on /status)" + PROCESS, labels=["endpoint"])
    for row in rows:
        ep = row["endpoint"]
        calls.add_metric([ep, "ok"], row["calls_total"] - row["failures_total"])
        calls.add_metric([ep, "error"], row["failures_total"])
        for cause, n in (row.get("failures_by_cause") or {}).items():
            failures.add_metric([ep, cause], n)
        for quantile, key in QUANTILES:
            if row.get(key) is not None:
                duration.add_sample("wxpay_wechat_call_duration_seconds", {"endpoint": ep, "quantile": quantile},
                                    row[key] / 1000)
        duration.add_sample("wxpay_wechat_call_duration_seconds_sum", {"endpoint": ep}, row["latency_seconds_sum"])
        duration.add_sample("wxpay_wechat_call_duration_seconds_count", {"endpoint": ep}, row["calls_total"])
        recent.add_metric([ep, "ok"], row["recent_ok"])
        recent.add_metric([ep, "error"], row["recent_calls"] - row["recent_ok"])
        if row.get("success_rate") is not None:
            ratio.add_metric([ep], row["success_rate"])
        if row.get("latency_ms_max") is not None:
            slowest.add_metric([ep], row["latency_ms_max"] / 1000)
        if row.get("last_at"):
            last.add_metric([ep], _timestamp(row["last_at"]))
        if row.get("last_error_at"):
            last_failure.add_metric([ep], _timestamp(row["last_error_at"]))
    yield from (calls, failures, duration, recent, ratio, slowest, last, last_failure)


def _wechat_pay(f: dict[str, Any]) -> Iterator[Metric]:
    pay = f.get("wechat_pay") or {}
    gateways = pay.get("gateways") or {}
    if not gateways:
        return
    info = GaugeMetricFamily(
        "wxpay_wechat_pay_api_info",
        "WeChat Pay API versions in use (value 1): role=orders (the configured one) or notifies (whose notifies are "
        "read: the other version's too after a move), with how WeChat is verified (key_mode public_key, "
        "platform_cert or gray, and the public key's ID)",
        labels=["api_version", "role", "mch_id", "sign_type", "key_mode", "public_key_id", "merchant_serial_no"])
    roles = [(pay["api_version"], "orders")] + [(v, "notifies") for v in pay.get("notify_versions") or ()]
    for version, role in roles:
        view = gateways.get(version) or {}
        info.add_metric([version, role] + [str(view.get(k) or "") for k in
                                           ("mch_id", "sign_type", "key_mode", "public_key_id", "merchant_serial_no")],
                        1.0)
    yield info
    expiry = GaugeMetricFamily(
        "wxpay_wechat_certificate_expiry_timestamp_seconds",
        "When each certificate this server relies on ends: kind=platform (WeChat's platform certificates, APIv3) or "
        "merchant (the merchant's API certificate). A WeChat Pay public key has no end date", labels=["kind", "serial_no"])
    start = GaugeMetricFamily("wxpay_wechat_certificate_start_timestamp_seconds",
                              "When each of WeChat's platform certificates starts to be valid (a new one is "
                              "downloaded before it is used)", labels=["kind", "serial_no"])
    fetched = GaugeMetricFamily("wxpay_wechat_platform_certificates_fetched_timestamp_seconds",
                                "When WeChat's platform certificates were last downloaded (by any process)",
                                labels=["api_version"])
    for version, view in sorted(gateways.items()):
        for cert in view.get("platform_certificates") or ():
            expiry.add_metric(["platform", cert["serial_no"]], _timestamp(cert["not_after"]))
            if cert.get("not_before"):
                start.add_metric(["platform", cert["serial_no"]], _timestamp(cert["not_before"]))
        if view.get("merchant_certificate_expires_at"):
            expiry.add_metric(["merchant", str(view.get("merchant_serial_no"))],
                              _timestamp(view["merchant_certificate_expires_at"]))
        if view.get("platform_certificates_fetched_at"):
            fetched.add_metric([version], _timestamp(view["platform_certificates_fetched_at"]))
    yield from (expiry, start, fetched)


def _reconciler(f: dict[str, Any]) -> Iterator[Metric]:
    rec = f.get("reconciler")
    if not _ok(rec):
        return
    yield _gauge("wxpay_reconciler_enabled", "1 when this process runs the reconciler (reconciler.enabled)",
                 1 if rec.get("enabled") else 0)
    yield _gauge("wxpay_reconciler_interval_seconds", "Seconds between the reconciler's passes (reconciler.interval_s)",
                 rec.get("interval_s") or 0)
    last = rec.get("last") or {}
    if not last.get("finished_at"):
        return
    finished = _timestamp(last["finished_at"])
    yield _gauge("wxpay_reconciler_last_run_timestamp_seconds", "When the last reconciler pass (by any process) "
                 "finished" + STORE, finished)
    if last.get("started_at"):
        yield _gauge("wxpay_reconciler_last_run_duration_seconds", "How long the last reconciler pass took" + STORE,
                     finished - _timestamp(last["started_at"]))
    yield _labelled(
        GaugeMetricFamily, "wxpay_reconciler_last_run",
        "Counts from the last reconciler pass: orders checked, found paid (their notify never came), closed, failed; "
        "errors; checkouts closed; settlements finished; refunds checked and settled" + STORE, ["figure"],
        [([key], value) for key, value in last.items() if isinstance(value, int) and not isinstance(value, bool)])


def _refunds(f: dict[str, Any]) -> Iterator[Metric]:
    refunds = f.get("refunds")
    if _ok(refunds):
        yield _labelled(GaugeMetricFamily, "wxpay_refunds",
                        "Refunds by state; needs_attention: WeChat could not pay it back, a person must act" + STORE,
                        ["state"], [([state], n) for state, n in refunds["by_state"].items()])


def _double_payments(f: dict[str, Any]) -> Iterator[Metric]:
    double = f.get("double_payments")
    if _ok(double):
        yield _gauge("wxpay_double_payments", "Checkouts paid twice (each extra payment is refunded automatically), as "
                     "kept in the audit trail (audit.retention_days)" + STORE, double["count"])


def _webhooks(f: dict[str, Any]) -> Iterator[Metric]:
    hooks = f.get("webhooks")
    if not _ok(hooks):
        return
    yield _gauge("wxpay_webhooks_enabled", "1 when webhooks are configured (webhooks.url and webhooks.secret)",
                 1 if hooks.get("enabled") else 0)
    yield _labelled(GaugeMetricFamily, "wxpay_webhook_events",
                    "Webhook events waiting to be delivered (pending) or given up after webhooks.max_attempts "
                    "(failed: resend them from the admin API)" + STORE, ["state"],
                    [(["pending"], hooks["pending"]), (["failed"], hooks["failed"])])
    if hooks.get("oldest_pending_at"):
        yield _gauge("wxpay_webhook_oldest_pending_timestamp_seconds", "When the oldest event still waiting was "
                     "written" + STORE, _timestamp(hooks["oldest_pending_at"]))
    yield _labelled(CounterMetricFamily, "wxpay_webhook_attempts",
                    "Webhook delivery attempts, by how each ended: delivered (a 2xx), will_retry, gave_up (the last "
                    "attempt failed)" + PROCESS, ["outcome"],
                    [([outcome], n) for outcome, n in (hooks.get("attempts") or {}).items()])
