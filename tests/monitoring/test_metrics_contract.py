"""/metrics from a real server, checked as Prometheus and Grafana will read it.

- the scrape passes ``promtool check metrics`` (naming lint) and the text
  format's rules (HELP and TYPE for every family, ``_total`` for counters
  only, escaped label values: the store path here has a quote, a backslash
  and a space);
- every metric, label and label value that docs/alerts.yml and
  docs/dashboard.json use is in the scrape;
- docs/alerts.yml passes ``promtool check rules``, and its alerts fire as
  tests/monitoring/alerts_test.yml says (``promtool test rules``); without
  promtool (never in CI) the rules still get a structural check with a
  YAML parser;
- /status.json and /metrics show the same things: every figure of one is
  traced to the other, or is in a short list of what is left out on purpose,
  each with its reason.

One scenario (tests/monitoring/scenario.py) runs once for the module.
"""
from __future__ import annotations

import asyncio
import json
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from . import promtool
from .scenario import Scraped, families, run, samples

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "alerts.yml"
DASHBOARD = ROOT / "docs" / "dashboard.json"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yml")

# Label values the rules name that this sandbox scenario cannot show, and why.
NOT_IN_SANDBOX = {
    ("wxpay_wechat_certificate_expiry_timestamp_seconds", "kind", "merchant"):
        "the sandbox's merchant has no API certificate file, so no end date to report",
}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory) -> Scraped:
    return asyncio.run(run(tmp_path_factory.mktemp("monitoring")))


def union(scraped: Scraped) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for text in scraped.scrapes:
        for name, labels in samples(text).items():
            out.setdefault(name, []).extend(labels)
    return out


# -- the text format -------------------------------------------------------------------------------


def test_the_scrape_passes_promtool_lint(scraped):
    for text in scraped.scrapes:
        checked = promtool.run("check", "metrics", stdin=text)
        assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


def test_every_family_has_help_and_type_and_counters_end_in_total(scraped):
    text = scraped.last
    helps = re.findall(r"^# HELP (\S+) (.+)$", text, re.M)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert len(helps) == len(types) == len(set(types)) > 30
    assert {name for name, _ in helps} == set(types)
    for name, kind in types.items():
        assert name.startswith("wxpay_") and re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
        assert name.endswith("_total") == (kind == "counter"), name
        assert not re.search(r"_(ms|milliseconds|minutes|hours|days|yuan)$", name), f"{name}: base units only"
        if name.endswith("_info"):
            assert kind == "gauge", name
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r"[a-z_][a-z0-9_]*(\{.*\})? \S+$", line), line


def test_label_values_are_escaped(scraped):
    location = scraped.status["store"]["location"]
    assert '"' in location and "\\" in location
    line = next(l for l in scraped.last.splitlines() if l.startswith("wxpay_store_info{"))
    assert 'odd \\"dir\\" \\\\ here' in line  # the quote and the backslash escaped in the text itself
    (info,) = samples(scraped.last)["wxpay_store_info"]
    assert info["location"] == location  # and read back as they were


# -- what the rules and the dashboard use ----------------------------------------------------------


def rule_exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule.get("record"), rule["expr"]


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    def walk(node: Any, title: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            title = node.get("title", title)
            if isinstance(node.get("expr"), str):
                yield title, node["expr"]
            for value in node.values():
                yield from walk(value, title)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value, title)

    yield from walk(json.loads(DASHBOARD.read_text()), "")


SELECTOR = re.compile(r"\b(wxpay_[a-z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def uses(expr: str) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """Each metric an expression selects, with its label matchers."""
    for name, braces in SELECTOR.findall(expr):
        yield name, MATCHER.findall(braces or "")


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_label_and_value_used_is_in_a_real_scrape(scraped, source):
    exprs = list(rule_exprs() if source == "alerts" else dashboard_exprs())
    assert len(exprs) > 15
    seen = union(scraped)
    used = set()
    for where, expr in exprs:
        for name, matchers in uses(expr):
            used.add(name)
            assert seen.get(name), f"{source} {where!r} uses {name}, which no scrape had"
            for label, op, value in matchers:
                if label == "job":
                    continue  # Prometheus's own target label
                values = {labels.get(label) for labels in seen[name]}
                assert values - {None}, f"{source} {where!r}: {name} has no label {label!r}"
                if op == "=" and value not in values and (name, label, value) not in NOT_IN_SANDBOX:
                    pytest.fail(f"{source} {where!r}: {name}{{{label}={value!r}}} never scraped (saw {values})")
                if op == "=~":
                    assert any(v and re.fullmatch(value, v) for v in values), (where, label, value)
    assert len(used) >= 15


# -- the rules ---------------------------------------------------------------------------------------


def test_the_rules_have_the_shape_prometheus_loads():
    """With a YAML parser only: runs everywhere, promtool or not."""
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", MONITORING_DOC.read_text(), re.M)}  # GitHub's heading anchors
    names = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Wxpay[A-Z][A-Za-z]+", rule["alert"]) and rule["alert"] not in names
            names.add(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].count("(") == rule["expr"].count(")")
            if "for" in rule:
                assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            runbook = rule["annotations"]["runbook"]
            assert runbook.startswith("docs/monitoring.md#") and runbook.split("#")[1] in anchors, runbook
    assert len(names) >= 12


def test_promtool_checks_the_rules():
    checked = promtool.run("check", "rules", ALERTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {sum(1 for _ in rule_exprs())} rules found" in checked.stdout


def test_the_alerts_fire_when_they_should_and_not_otherwise():
    """promtool's rule unit tests (alerts_test.yml) against docs/alerts.yml."""
    tested = promtool.run("test", "rules", ALERT_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", ()) if case.get("exp_alerts")}
    assert fired == {name for name, _ in rule_exprs()}, "every alert has a case where it fires"


def test_the_dashboard_is_a_grafana_dashboard():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "job"}
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]


# -- /status.json and /metrics say the same ---------------------------------------------------------

LEFT_OUT = "left out"
# First match wins: a /status.json path ("*" stands for one key or list index) → the
# sample names that show it, or why /metrics leaves it out.
TRACE: list[tuple[str, tuple[str, ...] | str]] = [
    ("mode", ("wxpay_info",)),
    ("version", ("wxpay_info",)),
    ("now", f"{LEFT_OUT}: the scrape's own time (Prometheus stamps every sample)"),
    ("started_at", ("wxpay_start_time_seconds",)),
    ("uptime_s", ("wxpay_uptime_seconds",)),
    ("store.backend", ("wxpay_store_info", "wxpay_info")),
    ("store.location", ("wxpay_store_info",)),
    ("store.ok", ("wxpay_store_up",)),
    ("store.rtt_ms", ("wxpay_store_rtt_seconds",)),
    ("store.error", f"{LEFT_OUT}: a text code; wxpay_store_up says the store failed"),
    ("*.error", ("wxpay_status_section_up",)),
    ("tokens.*.expires_at", ("wxpay_token_expiry_timestamp_seconds",)),
    ("tokens.*.expires_in_s", ("wxpay_token_expires_in_seconds",)),
    ("tokens.*.refreshed_at", ("wxpay_token_refreshed_timestamp_seconds",)),
    ("tokens.*.refresh_failures", ("wxpay_token_refresh_consecutive_failures",)),
    ("tokens.*.last_refresh_error", f"{LEFT_OUT}: a text code (on /status); the count is the metric"),
    ("orders_today.since", f"{LEFT_OUT}: China-time midnight, which the names' 'today' means"),
    ("orders_today.by_state.*", ("wxpay_orders_today",)),
    ("orders_today.total", f"{LEFT_OUT}: sum(wxpay_orders_today)"),
    ("orders_today.revenue_fen", ("wxpay_revenue_today_fen",)),
    ("orders_today.revenue_truncated", ("wxpay_revenue_today_truncated",)),
    ("money_today.day", f"{LEFT_OUT}: the China day, which the names' 'today' means"),
    ("money_today.timezone", f"{LEFT_OUT}: always Asia/Shanghai (UTC+8)"),
    ("money_today.since", f"{LEFT_OUT}: China-time midnight, which the names' 'today' means"),
    ("money_today.until", f"{LEFT_OUT}: the next China-time midnight"),
    ("money_today.payments", ("wxpay_payments_today",)),
    ("money_today.refunds", ("wxpay_refunds_today",)),
    ("money_today.gross_fen", ("wxpay_money_today_fen",)),
    ("money_today.refunded_fen", ("wxpay_money_today_fen",)),
    ("money_today.refunds_pending_fen", ("wxpay_money_today_fen",)),
    ("money_today.net_fen", ("wxpay_money_today_fen",)),
    ("money_today.truncated", ("wxpay_money_today_truncated",)),
    ("chart.**", f"{LEFT_OUT}: the hourly chart is history, which Prometheus keeps itself"),
    ("latest_orders.**", f"{LEFT_OUT}: a list of recent items, each with its ids (no label may carry one)"),
    ("latest_notifies.**", f"{LEFT_OUT}: a list of recent items (wxpay_notifies_total counts them by verdict)"),
    ("reconciler.enabled", ("wxpay_reconciler_enabled",)),
    ("reconciler.interval_s", ("wxpay_reconciler_interval_seconds",)),
    ("reconciler.last.started_at", ("wxpay_reconciler_last_run_duration_seconds",)),
    ("reconciler.last.finished_at", ("wxpay_reconciler_last_run_timestamp_seconds",)),
    ("reconciler.last.ran", f"{LEFT_OUT}: always true in a recorded pass (a pass without the lease is not recorded)"),
    ("reconciler.last.notes.**", f"{LEFT_OUT}: texts"),
    ("reconciler.last.*", ("wxpay_reconciler_last_run",)),
    ("refunds.by_state.*", ("wxpay_refunds",)),
    ("refunds.latest.**", f"{LEFT_OUT}: a list of recent items, each with its ids"),
    ("double_payments.count", ("wxpay_double_payments",)),
    ("double_payments.latest.**", f"{LEFT_OUT}: a list of recent items, each with its ids"),
    ("webhooks.enabled", ("wxpay_webhooks_enabled",)),
    ("webhooks.pending", ("wxpay_webhook_events",)),
    ("webhooks.failed", ("wxpay_webhook_events",)),
    ("webhooks.oldest_pending_at", ("wxpay_webhook_oldest_pending_timestamp_seconds",)),
    ("webhooks.attempts.*", ("wxpay_webhook_attempts_total",)),
    ("payments_confirmed.*", ("wxpay_payments_confirmed_total",)),
    ("notifies.*.*", ("wxpay_notifies_total",)),
    ("wechat.*.endpoint", ("wxpay_wechat_calls_total",)),
    ("wechat.*.recent_calls", ("wxpay_wechat_recent_calls",)),
    ("wechat.*.recent_ok", ("wxpay_wechat_recent_calls",)),
    ("wechat.*.success_rate", ("wxpay_wechat_recent_success_ratio",)),
    ("wechat.*.latency_ms_p50", ("wxpay_wechat_call_duration_seconds",)),
    ("wechat.*.latency_ms_p95", ("wxpay_wechat_call_duration_seconds",)),
    ("wechat.*.latency_ms_max", ("wxpay_wechat_recent_latency_max_seconds",)),
    ("wechat.*.calls_total", ("wxpay_wechat_calls_total", "wxpay_wechat_call_duration_seconds_count")),
    ("wechat.*.failures_total", ("wxpay_wechat_calls_total",)),
    ("wechat.*.latency_seconds_sum", ("wxpay_wechat_call_duration_seconds_sum",)),
    ("wechat.*.last_error", f"{LEFT_OUT}: a text code; wxpay_wechat_call_failures_total counts failures by cause"),
    ("wechat.*.last_error_at", ("wxpay_wechat_last_failure_timestamp_seconds",)),
    ("wechat.*.last_at", ("wxpay_wechat_last_call_timestamp_seconds",)),
    ("wechat.*.last_failure.**", f"{LEFT_OUT}: the latest failure's texts (detail, host, hint)"),
    ("wechat.*.failures_by_cause.*", ("wxpay_wechat_call_failures_total",)),
    ("wechat_failures.by_cause.*", ("wxpay_wechat_call_failures_total",)),
    ("wechat_failures.latest.**", f"{LEFT_OUT}: a list of recent failures with their texts"),
    ("notify_limiter.per_source_per_minute", ("wxpay_notify_limiter_budget",)),
    ("notify_limiter.total_per_minute", ("wxpay_notify_limiter_budget",)),
    ("notify_limiter.sources_tracked", ("wxpay_notify_limiter_sources",)),
    ("notify_limiter.refused_unverified.*.*", ("wxpay_notifies_unverified_refused_total",)),
    ("notify_limiter.signtest_probes.*", ("wxpay_notify_signtest_probes_total",)),
    ("notify_limiter.last_signtest_probe_at", ("wxpay_notify_signtest_last_probe_timestamp_seconds",)),
    ("wechat_pay.api_version", ("wxpay_wechat_pay_api_info",)),
    ("wechat_pay.notify_versions.*", ("wxpay_wechat_pay_api_info",)),
    ("wechat_pay.signtest_probes", f"{LEFT_OUT}: sum(wxpay_notify_signtest_probes_total)"),
    ("wechat_pay.gateways.*.merchant_certificate_expires_at", ("wxpay_wechat_certificate_expiry_timestamp_seconds",)),
    ("wechat_pay.gateways.*.merchant_certificate_expires_in_days", f"{LEFT_OUT}: the expiry minus time()"),
    ("wechat_pay.gateways.*.platform_certificates.*.serial_no", ("wxpay_wechat_certificate_expiry_timestamp_seconds",)),
    ("wechat_pay.gateways.*.platform_certificates.*.not_after", ("wxpay_wechat_certificate_expiry_timestamp_seconds",)),
    ("wechat_pay.gateways.*.platform_certificates.*.not_before", ("wxpay_wechat_certificate_start_timestamp_seconds",)),
    ("wechat_pay.gateways.*.platform_certificates.*.expires_in_days", f"{LEFT_OUT}: the expiry minus time()"),
    ("wechat_pay.gateways.*.platform_certificates_fetched_at",
     ("wxpay_wechat_platform_certificates_fetched_timestamp_seconds",)),
    ("wechat_pay.gateways.*.*", ("wxpay_wechat_pay_api_info",)),
]


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, str(index)))
    else:
        yield ".".join(path), value


def matches(path: str, pattern: str) -> bool:
    """Segment by segment: ``*`` is one key or index; a final ``**``, the key itself
    (when it is empty or null) or anything below it."""
    have, want = path.split("."), pattern.split(".")
    if want[-1] == "**":
        want = want[:-1]
        have = have[:len(want)]
    return len(have) == len(want) and all(fnmatchcase(h, w) for h, w in zip(have, want))


def trace(path: str) -> tuple[str, ...] | str | None:
    for pattern, target in TRACE:
        if matches(path, pattern):
            return target
    return None


def test_every_status_figure_is_a_metric_or_left_out_with_a_reason(scraped):
    seen = samples(scraped.last)
    untraced, missing = [], []
    for path, value in leaves(scraped.status):
        target = trace(path)
        if target is None:
            untraced.append(path)
        elif isinstance(target, tuple) and value is not None:
            missing += [f"{path} → {name}" for name in target if not seen.get(name)]
    assert not untraced, f"/status.json shows these and /metrics does not (add a metric, or a reason): {untraced}"
    assert not missing, f"traced to metrics the scrape does not have: {missing}"


def test_every_metric_comes_from_a_status_figure(scraped):
    traced = {name for _, target in TRACE if isinstance(target, tuple) for name in target}
    scraped_names = set(samples(scraped.last))
    assert scraped_names - traced == set(), "/metrics shows these and /status.json does not"
    assert len(scraped_names) > 40


def test_the_values_agree(scraped):
    status = scraped.status
    got = {(name, tuple(sorted(labels.items()))): sample.value
           for family in families(scraped.last).values() for sample in family.samples
           for name, labels in [(sample.name, sample.labels)]}

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    for state, n in status["refunds"]["by_state"].items():
        assert value("wxpay_refunds", state=state) == n
    assert status["refunds"]["by_state"]["succeeded"] == 1
    for state, n in status["orders_today"]["by_state"].items():
        assert value("wxpay_orders_today", state=state) == n
    assert value("wxpay_double_payments") == status["double_payments"]["count"] == 0
    money = status["money_today"]
    for kind in ("gross", "refunded", "refunds_pending", "net"):
        assert value("wxpay_money_today_fen", kind=kind) == money[f"{kind}_fen"]
    assert money["gross_fen"] > 0 and money["refunded_fen"] > 0  # the scenario paid and refunded today
    assert value("wxpay_payments_today") == money["payments"] and value("wxpay_refunds_today") == money["refunds"]
    for row in status["notifies"]:
        result = "accepted" if row["accepted"] else "refused"
        assert value("wxpay_notifies_total", endpoint=row["endpoint"], verdict=row["verdict"], result=result,
                     verified="yes" if row["verified"] else "no") == row["count"]
    for via, n in status["payments_confirmed"].items():
        assert value("wxpay_payments_confirmed_total", via=via) == n
    for row in status["wechat"]:
        ep = row["endpoint"]
        assert value("wxpay_wechat_calls_total", endpoint=ep, outcome="error") == row["failures_total"]
        assert value("wxpay_wechat_call_duration_seconds_count", endpoint=ep) == row["calls_total"]
        for cause, n in row["failures_by_cause"].items():
            assert value("wxpay_wechat_call_failures_total", endpoint=ep, cause=cause) == n
    assert status["wechat_failures"]["by_cause"] == {"http_500": 1}
    (cert,) = status["wechat_pay"]["gateways"]["v3"]["platform_certificates"]
    assert value("wxpay_wechat_certificate_expiry_timestamp_seconds", kind="platform",
                 serial_no=cert["serial_no"]) == 1893456000.0  # 2030-01-01, as /status.json says
    assert cert["not_after"].startswith("2030-01-01")
    for endpoint, n in status["notify_limiter"]["signtest_probes"].items():
        assert value("wxpay_notify_signtest_probes_total", endpoint=endpoint) == n
    assert value("wxpay_store_up") == 1 and value("wxpay_reconciler_enabled") == 0


def test_a_signtest_probe_is_counted_apart_from_refusals(scraped):
    got = samples(scraped.last)
    assert scraped.status["notify_limiter"]["signtest_probes"] == {"notify": 1}
    assert [labels["verdict"] for labels in got["wxpay_notifies_total"] if labels["result"] == "refused"] == \
        ["bad_signature"]  # the forged notify; the probe is not among the refusals
    refused = [row for row in scraped.status["notifies"] if not row["accepted"]]
    assert [(r["verdict"], r["verified"], r["count"]) for r in refused] == [("bad_signature", False, 1)]


def test_the_webhook_backlog_and_its_failures_show_as_they_happen(scraped):
    first, last = (samples(text) for text in (scraped.scrapes[0], scraped.scrapes[-1]))
    assert first["wxpay_webhook_oldest_pending_timestamp_seconds"]  # an event waited at the first scrape
    pending = {labels["state"] for labels in first["wxpay_webhook_events"]}
    assert pending == {"pending", "failed"}
    failed = families(scraped.last)["wxpay_webhook_events"]
    assert any(s.labels["state"] == "failed" and s.value >= 1 for s in failed.samples)
    attempts = {s.labels["outcome"]: s.value for s in families(scraped.last)["wxpay_webhook_attempts"].samples
                if s.name.endswith("_total")}
    assert attempts["gave_up"] >= 1 and attempts["will_retry"] >= 1 and attempts["delivered"] == 0
    assert "wxpay_webhook_attempts_total" in last
