"""The checkout page's language: Chinese by default, English on request.

Every string the page shows (server-rendered or set by its scripts) lives
in ``web/strings.json``, one table per language, so a translation is one
file. ``?lang=`` wins, then the browser's Accept-Language, then Chinese.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

STRINGS_FILE = Path(__file__).resolve().parent.parent / "web" / "strings.json"
DEFAULT = "zh"


@lru_cache(maxsize=1)
def _tables() -> dict[str, dict[str, str]]:
    return json.loads(STRINGS_FILE.read_text(encoding="utf-8"))


def languages() -> tuple[str, ...]:
    return tuple(_tables())


def strings(lang: str) -> dict[str, str]:
    tables = _tables()
    return tables.get(lang) or tables[DEFAULT]


def pick_language(query: str | None, accept_language: str | None) -> str:
    """``?lang=en`` / ``?lang=zh``, else the best Accept-Language match, else Chinese."""
    known = languages()
    if query:
        primary = query.strip().lower().split("-")[0]
        if primary in known:
            return primary
    best, best_q = DEFAULT, 0.0
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        # Earlier entries win ties, as browsers list them in preference order.
        if primary in known and q > best_q:
            best, best_q = primary, q
    return best


def page_strings(lang: str) -> dict[str, Any]:
    """What the template and the page's scripts get."""
    return dict(strings(lang), lang=lang)
