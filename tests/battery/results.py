"""Where the battery writes what it saw, for ``tests/battery/report.py``.

Each test appends JSON records (section, case, outcome, figures) to one
file per section in the results folder (``$WXPAY_BATTERY_RESULTS``, default
``build/battery``). The report reads whatever is there, so a partial run
gives a partial report that says so.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def results_dir() -> Path:
    path = Path(os.environ.get("WXPAY_BATTERY_RESULTS") or ROOT / "build" / "battery")
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(section: str, case: str, outcome: str, **figures: Any) -> None:
    """One case's outcome (``pass`` or a short failure) and its figures."""
    entry = {"section": section, "case": case, "outcome": outcome, "at": time.time(), "figures": figures}
    with open(results_dir() / f"{section}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")


def read_all(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every record, the latest per (section, case) winning."""
    folder = folder or results_dir()
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                latest[(entry["section"], entry["case"])] = entry
    return sorted(latest.values(), key=lambda e: (e["section"], e["at"]))
