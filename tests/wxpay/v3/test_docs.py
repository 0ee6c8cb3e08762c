"""docs/wxpay.md's "APIv3 (core)" examples are real code: run each as written, check what it prints."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SECTION = (ROOT / "docs" / "wxpay.md").read_text().split("## APIv3 (core)", 1)[1].split("\n## ", 1)[0]
BLOCKS = [b.split("```", 1)[0] for b in SECTION.split("```python\n")[1:]]


def test_the_section_has_the_five_examples():
    assert len(BLOCKS) == 5


@pytest.mark.parametrize("n", range(5))
def test_example_runs(n, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    exec(compile(BLOCKS[n], f"docs/wxpay.md APIv3 example {n + 1}", "exec"), {"__name__": "docs_example"})
    out = capsys.readouterr().out
    # What each example's comments say it prints.
    expected = [l.split("# ", 1)[1].strip() for l in BLOCKS[n].splitlines() if l.startswith("# N")]
    expected += [l.split("   # ", 1)[1].split(" {")[0] for l in BLOCKS[n].splitlines() if l.startswith("print(") and "   # " in l]
    # "#> " lines are a loop's output, line for line.
    printed = [l[3:] for l in BLOCKS[n].splitlines() if l.startswith("#> ")]
    assert expected or printed
    if printed:
        assert out.splitlines() == printed
    for line in expected:
        assert line.rstrip(".") in out, line
