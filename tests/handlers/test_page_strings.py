"""The page's strings live in one table per language, and everything the page uses is in it."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from handlers.i18n import languages, pick_language, strings
from handlers.pay import yuan_text
from handlers.status import chart_svg, duration, yuan

WEB = Path(__file__).resolve().parents[2] / "web"


def test_every_language_has_every_key():
    assert set(languages()) == {"zh", "en"}
    assert set(strings("zh")) == set(strings("en"))
    assert all(v.strip() for lang in languages() for v in strings(lang).values())


@pytest.mark.parametrize("source,pattern", [
    ("static/pay.js", r"\bT\.([a-z_]+)"),
    ("sandbox/bridge.js", r"\bT\.([a-z_]+)"),
    ("templates/pay.html", r"t\['([a-z_]+)'\]"),
    ("templates/error.html", r"t\['([a-z_]+)'\]"),
])
def test_every_string_the_page_uses_exists(source, pattern):
    used = set(re.findall(pattern, (WEB / source).read_text(encoding="utf-8")))
    assert used, source
    assert used <= set(strings("zh")), used - set(strings("zh"))


@pytest.mark.parametrize("query,accept,want", [
    (None, None, "zh"),
    ("en", None, "en"),
    ("EN-us", "zh", "en"),
    ("xx", "en", "en"),
    (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    (None, "de;q=1.0,en;q=0.3,zh;q=0.2", "en"),
    (None, "en;q=oops,zh", "zh"),
    (None, "fr", "zh"),
])
def test_pick_language(query, accept, want):
    assert pick_language(query, accept) == want


@pytest.mark.parametrize("fen,want", [(0, "0.00"), (1, "0.01"), (1234, "12.34"), (100000, "1,000.00"), (123456789, "1,234,567.89")])
def test_yuan_text_is_exact(fen, want):
    assert yuan_text(fen) == want
    assert yuan(fen) == "¥" + want


def test_yuan_and_duration_edge_cases():
    assert yuan(-250) == "-¥2.50" and yuan(None) == "—"
    assert duration(59) == "0m 59s" and duration(3600 * 26 + 61) == "1d 2h 1m" and duration(None) == "—"


def test_chart_svg_is_well_formed_with_one_group_per_hour():
    start = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    buckets = [{"hour": (start + timedelta(hours=i)).isoformat(), "orders": i, "paid": i // 2,
                "notifies": 2 * i, "notifies_refused": 1 if i == 3 else 0} for i in range(6)]
    svg = ET.fromstring(chart_svg({"buckets": buckets}))
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.get("role") == "img" and "15 orders, 30 notifies" in svg.get("aria-label")
    assert len(svg.findall(f"{ns}g")) == 6
    assert len(svg.findall(f".//{ns}rect")) == 5 + 4 + 5 + 1  # orders, paid, notifies, refused; empty bars not drawn
    assert "20:00" in ET.tostring(svg, encoding="unicode")  # hour labels in China time
    assert "did not answer" in chart_svg({"error": "store_unavailable"})
