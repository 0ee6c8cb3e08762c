"""docs/simulator.md's example for our own V3 client is real code: run it as written against a real
``python -m wxpay.simulator`` (the base URL and the notify port are the only lines changed), and check
that it prints what its comments say, in order."""
from __future__ import annotations

import re
import subprocess
import sys

from .test_standalone import ROOT, free_port

STARTUP_LIMIT = 30.0  # a safety net against a hung child, not a performance assertion
SECTION = (ROOT / "docs" / "simulator.md").read_text().split("### With our own client", 1)[1].split("\n### ", 1)[0]
[BLOCK] = [b.split("```", 1)[0] for b in SECTION.split("```python\n")[1:]]


def start_simulator(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "wxpay.simulator", "--port", str(port)], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    for line in proc.stdout:  # the banner ends with the inspect URL
        lines.append(line)
        if line.startswith("inspect:"):
            return proc
    proc.kill()
    proc.wait(STARTUP_LIMIT)
    proc.stdout.close()
    raise AssertionError(f"simulator exited early: {lines}")


def test_the_example_runs_against_a_real_simulator(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    sim_port, notify_port = free_port(), free_port()
    code = re.sub(r'^BASE = "http://127\.0\.0\.1:9000"', f'BASE = "http://127.0.0.1:{sim_port}"', BLOCK, flags=re.M)
    code = re.sub(r"^NOTIFY_PORT = 8080", f"NOTIFY_PORT = {notify_port}", code, flags=re.M)
    assert code.count(str(sim_port)) == 1 and code.count(str(notify_port)) == 1
    proc = start_simulator(sim_port)
    try:
        exec(compile(code, "docs/simulator.md (our V3 client)", "exec"), {"__name__": "docs_example"})
    finally:
        proc.kill()
        proc.wait(STARTUP_LIMIT)
        proc.stdout.close()
    out = capsys.readouterr().out.splitlines()
    expected = [line.rsplit("   # ", 1)[1] for line in BLOCK.splitlines()
                if line.strip().startswith("print(") and "   # " in line]
    assert len(expected) == 5 and out == expected
