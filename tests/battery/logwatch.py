"""Everything the battery's servers said, and the secrets none of it may contain.

In-process servers log through the ``logging`` tree (a handler installed
per test by ``conftest.py`` at DEBUG, Tornado's access log included);
server processes write their log files, registered with :func:`add_file`.
Error bodies the battery received are added with :func:`add_text`. The
last battery test (``test_zz_secrets.py``) searches all of it for every
value registered with :func:`secret`.
"""
from __future__ import annotations

import logging
from pathlib import Path

LINES: list[str] = []
FILES: list[Path] = []
SECRETS: dict[str, str] = {}  # value -> what it is


def secret(value: str | None, what: str) -> None:
    if value and len(value) >= 6:
        SECRETS[value] = what


def add_text(text: str | bytes) -> None:
    LINES.append(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)


def add_file(path: Path) -> None:
    FILES.append(Path(path))


class Collector(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is still a line
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        LINES.append(f"{record.name}: {text}")


def all_lines() -> list[str]:
    out = list(LINES)
    for path in FILES:
        if path.exists():
            out.extend(path.read_text("utf-8", "replace").splitlines())
    return out
