"""docs/wxpay.md's "APIv3 client" examples are real code: run each as written, check what it prints."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SECTION = (ROOT / "docs" / "wxpay.md").read_text().split("## APIv3 client", 1)[1].split("\n## ", 1)[0]
BLOCKS = [b.split("```", 1)[0] for b in SECTION.split("```python\n")[1:]]


def test_the_section_has_the_three_examples():
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("n", range(3))
def test_example_runs_and_prints_what_it_says(n, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    exec(compile(BLOCKS[n], f"docs/wxpay.md APIv3 client example {n + 1}", "exec"), {"__name__": "docs_example"})
    out = capsys.readouterr().out.splitlines()
    # Each print(...) line's trailing comment is what it prints, and "#> " lines a loop's output, in order.
    expected = [line.rsplit("   # ", 1)[1] if not line.startswith("#> ") else line[3:]
                for line in BLOCKS[n].splitlines()
                if (line.strip().startswith("print(") and "   # " in line) or line.startswith("#> ")]
    assert expected and out == expected
