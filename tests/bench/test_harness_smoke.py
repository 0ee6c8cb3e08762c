"""The bench harness runs end to end and writes every section (behaviour, not speed).

Real processes on loopback: a bare Tornado app, a standalone simulator,
server processes and the peer (Flask under gunicorn, bench/peer/), driven by
wrk when installed, else by the Python load generator. No figure is
asserted: only that the report is produced, that each scenario got answers,
that none of them was an error and that each answer made its upstream call.
The fast test runs every scenario tiny (``--smoke``, seconds) so the harness
cannot rot between benchmark runs; the slow one runs ``--quick`` with scaling.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


JOURNEYS = ("sqlite", "v3", "peer/v2-sync", "peer/v2-gthread", "peer/v3-sync", "peer/v3-gthread")


def _journey(figures: dict, key: str) -> dict:
    out = figures
    for part in key.split("/"):
        out = out[part]
    return out


def test_smoke_run_covers_every_scenario_without_errors(tmp_path):
    out, raw = tmp_path / "BENCH.md", tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(out), "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(raw.read_text())
    orders = figures["config"]["orders"]
    for key in ("hello", "relay", "hello_again", "relay_again"):
        assert figures[key]["requests"] > 0 and figures[key]["bad"] == figures[key]["socket_errors"] == 0, key
    for key in JOURNEYS:
        journey = _journey(figures, key)
        for scenario in ("prepay", "notify"):
            result = journey[scenario]
            assert result["bad"] == 0 and result["socket_errors"] == 0, (key, scenario, result["sample"])
            # the whole pool answered (a cap of --pool-seconds, never reached), each with its own WeChat call
            assert result["requests"] == orders, (key, scenario)
            assert result["extra"]["upstream_calls"] == orders, (key, scenario)
            assert result["extra"]["server_cpu_ms"] > 0, (key, scenario)
            # where the wall time went: shares of it on a CPU and queued for one, for the server and the simulator
            for who in ("server", "sim"):
                assert result["extra"][f"{who}_on_cpu"] > 0 and result["extra"][f"{who}_cpu_wait"] >= 0, (key, who)
        assert journey["notify_paid_in_store"] == orders, key
    for scenario in ("duplicate", "status"):
        result = figures["sqlite"][scenario]
        assert result["requests"] > 0 and result["bad"] == result["socket_errors"] == 0, scenario
    names = {row["name"] for row in figures["library"]}
    assert {"notify parse+verify", "v3 notify verify+decrypt"} <= names
    assert all(row["ours"] > 0 and row["theirs"] > 0 for row in figures["library"])
    for version in ("v2", "v3"):
        mem = figures["memory"][version]
        assert mem["api_version"] == version and mem["failures"] == {}, mem
        assert mem["paid_in_store"] == mem["payments"] + mem["warmup"]
    text = out.read_text()
    for line in ("V2 first-time notify rate / relay rate", "V3 prepay rate / relay rate",
                 "V2 server CPU per notify / relay's", "server CPU per notify, V3 / V2",
                 "status poll rate / bare hello rate", "V2 first-time notify: ours / peer",
                 "V3 prepay: ours / peer", "library: notify parse+verify", "library: v3 notify verify+decrypt",
                 "V2 RSS growth", "V3 RSS growth", "| errors over every HTTP row (ours and the peer's) | 0 |",
                 "| answers without their upstream call at the simulator | 0 rows |",
                 "server on a CPU / waiting for one"):
        assert line in text, line


@pytest.mark.slow
def test_quick_run_writes_every_section_without_errors(tmp_path):
    out, raw = tmp_path / "BENCH.md", tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--duration", "1", "--orders", "60",
         "--memory-payments", "100", "--out", str(out), "--json", str(raw)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for heading in ("## Machine and versions", "## Results", "## Library", "## Memory", "## Stores", "## Scaling"):
        assert heading in text
    assert "MONGODB_URI" in text
    figures = json.loads(raw.read_text())
    for key in ("prepay", "notify", "duplicate", "status"):
        result = figures["sqlite"][key]
        assert result["requests"] > 0, key
        assert result["bad"] == 0 and result["socket_errors"] == 0, (key, result["sample"])
    # every first-time notify that was answered moved its order to paid, exactly once
    assert figures["sqlite"]["notify_paid_in_store"] == figures["sqlite"]["notify"]["requests"]
    assert figures["memory"]["failures"] == {} and figures["memory"]["in_memory_tables"] == {
        "prepay_locks": 0, "notify_locks": 0}
