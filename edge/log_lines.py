"""Log lines an outsider cannot forge.

Anything a request carries can end up in a log message: a decoded path
argument, a JSON field name, a notify's ``out_trade_no`` before its
signature is checked. A CR or LF in it would start a line that looks like
ours; ESC sequences repaint a terminal; U+2028 and bidi overrides fool
viewers that honour them. The formatter escapes every such character in
the formatted message, arguments and template alike, so one record is one
line. Tracebacks stay multi-line and readable, but every line after the
first starts with :data:`CONTINUATION`, which no record's first line can
(it starts with the time), and their characters are escaped the same way.
"""
from __future__ import annotations

import logging
import re
import time
from typing import IO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTINUATION = "  | "

# C0 controls (CR, LF, TAB, ESC …), DEL, C1 controls (NEL …), the Arabic
# letter mark, LRM/RLM, the line and paragraph separators, the bidi
# embeddings/overrides and isolates, and lone surrogates (which a JSON
# "\ud800" produces and a UTF-8 stream refuses to write).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` with every control, separator and bidi character escaped."""
    return _UNSAFE.sub(_escape, text)


def continuation(block: str) -> str:
    """A multi-line block (a traceback) as escaped, prefixed continuation lines."""
    return "".join("\n" + CONTINUATION + one_line(line) for line in block.rstrip("\n").split("\n"))


class OneLineFormatter(logging.Formatter):
    """A Formatter whose records cannot contain a line an outsider wrote.

    It never reuses ``record.exc_text``: another handler's formatter may
    have cached an unescaped traceback there.
    """

    _second: tuple[int, str] = (-1, "")  # the last second's time stamp, formatted

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """The default stamp (``2026-01-01 00:00:00,000``), its seconds part
        formatted once a second instead of for every line."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime(self.default_time_format, self.converter(record.created)))
        return self.default_msec_format % (cached[1], record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if record.exc_info:
            text += continuation(self.formatException(record.exc_info))
        elif record.exc_text:
            text += continuation(record.exc_text)
        if record.stack_info:
            text += continuation(self.formatStack(record.stack_info))
        return text


def lean_records() -> None:
    """Stop working out, for every record, what :data:`FORMAT` never shows:
    the calling file, line and function (a walk up the stack), the thread's
    and the process's names (the logging HOWTO's "Optimization" switches).
    About a third of the cost of an access-log line. Process-wide, so only
    the server's entry point calls it."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure(level: int | str = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Log everything (Tornado's loggers included) through one escaping handler.

    Returns the handler, so a test can remove it again."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
