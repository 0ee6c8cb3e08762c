"""docs/wxpay.md's APIv3 gateway example is real code: run it as written against the
simulator (in this process, on a loopback port, with the real clock), check what it prints."""
from __future__ import annotations

import asyncio
from pathlib import Path

from wxpay.simulator.clock import Clock
from tests.simulator.pay_server import running_sim

ROOT = Path(__file__).resolve().parents[2]
SECTION = (ROOT / "docs" / "wxpay.md").read_text().split("### The APIv3 gateway", 1)[1].split("\n## ", 1)[0]
BLOCKS = [b.split("```", 1)[0] for b in SECTION.split("```python\n")[1:]]


async def test_the_example_runs_and_prints_what_it_says(capsys):
    [block] = BLOCKS
    expected = [line.rsplit("   # ", 1)[1] for line in block.splitlines()
                if line.strip().startswith("print(") and "   # " in line]
    async with running_sim(Clock()) as srv:
        code = block.replace("http://127.0.0.1:9000", srv.base)
        # The example runs its own event loop (asyncio.run), so it gets a thread of its own.
        await asyncio.to_thread(exec, compile(code, "docs/wxpay.md APIv3 gateway example", "exec"),
                                {"__name__": "docs_example"})
    assert expected and capsys.readouterr().out.splitlines() == expected
