"""The bench harness runs end to end and writes every section (behaviour, not speed).

Real processes on loopback: a bare Tornado app, a standalone simulator and
server processes, driven by wrk when installed, else by the Python load
generator. No figure is asserted: only that the report is produced, that
each scenario got answers and that none of them was an error.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
