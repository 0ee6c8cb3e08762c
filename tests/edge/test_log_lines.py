"""One record, one line: what an outsider puts in a logged value cannot start a line of its own."""
from __future__ import annotations

import io
import logging
import re

import pytest

from edge.log_lines import CONTINUATION, FORMAT, OneLineFormatter, configure, lean_records, one_line

# Every character class the formatter must neutralise, each next to a forged record.
HOSTILE = {
    "CR LF": "\r\n",
    "LF": "\n",
    "CR": "\r",
    "VT FF": "\x0b\x0c",
    "ESC (terminal colours)": "\x1b[31m",
    "NUL": "\x00",
    "DEL": "\x7f",
    "NEL (C1)": "\x85",
    "CSI (C1)": "\x9b",
    "U+2028 line separator": "\u2028",
    "U+2029 paragraph separator": "\u2029",
    "RLO bidi override": "\u202e",
    "RLI bidi isolate": "\u2067",
    "lone surrogate": "\ud800",
}
FORGED = "2026-01-01 00:00:00,000 INFO wxpay_server: order paid"
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.fixture
def logged():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logger = logging.getLogger("tests.edge.log_lines")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_argument_stays_on_its_record_line(logged, name):
    logger, out = logged
    logger.warning("notify refused (%s)", "x" + HOSTILE[name] + FORGED)
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n"), repr(text)
    assert not RAW_CONTROL.search(text), repr(text)
    assert FORGED in text  # still there to read, escaped


def test_the_message_template_is_escaped_too(logged):
    logger, out = logged
    logger.info("first\nsecond %d", 2)
    assert out.getvalue().rstrip("\n").endswith("first\\nsecond 2")


def test_escapes_are_readable():
    assert one_line("a\r\nb\tc\x1b[0m\u2028\u202e\x85") == "a\\r\\nb\\tc\\x1b[0m\\u2028\\u202e\\x85"
    assert one_line("plain ascii, 中文, emoji 🙂 and a tab-free line") == "plain ascii, 中文, emoji 🙂 and a tab-free line"


def test_a_traceback_stays_readable_and_every_extra_line_is_marked(logged):
    logger, out = logged
    try:
        raise ValueError("bad field\r\n" + FORGED + "\u2028" + FORGED)
    except ValueError:
        logger.exception("processing failed for %s", "co_1\n" + FORGED)
    lines = out.getvalue().rstrip("\n").split("\n")
    assert len(lines) > 3
    assert lines[0].endswith("processing failed for co_1\\n" + FORGED)
    assert all(line.startswith(CONTINUATION) for line in lines[1:]), lines
    assert lines[1] == CONTINUATION + "Traceback (most recent call last):"
    assert any(line.startswith(CONTINUATION + "  File ") for line in lines)
    # The exception's own text is outsider-controlled: its LF starts a marked line, the rest is escaped.
    assert lines[-2:] == [CONTINUATION + "ValueError: bad field\\r", CONTINUATION + FORGED + "\\u2028" + FORGED]
    assert not any(line.startswith(FORGED) for line in lines)
    assert not RAW_CONTROL.search(out.getvalue())


def test_a_traceback_cached_unescaped_by_another_formatter_is_not_reused(logged):
    logger, out = logged
    plain = io.StringIO()
    other = logging.StreamHandler(plain)
    other.setFormatter(logging.Formatter("%(message)s"))  # caches record.exc_text, unescaped
    logger.addHandler(other)
    logger.handlers.reverse()  # the plain one formats first
    try:
        try:
            raise RuntimeError("x\n" + FORGED)
        except RuntimeError:
            logger.error("failed", exc_info=True)
    finally:
        logger.removeHandler(other)
    assert ("\n" + FORGED) in plain.getvalue()  # what we must not write
    assert ("\n" + FORGED) not in out.getvalue()
    assert (CONTINUATION + FORGED) in out.getvalue()


def test_stack_info_is_marked_as_continuation(logged):
    logger, out = logged
    logger.info("where am I", stack_info=True)
    lines = out.getvalue().rstrip("\n").split("\n")
    assert len(lines) > 1 and all(line.startswith(CONTINUATION) for line in lines[1:])


def test_configure_puts_tornados_loggers_through_the_formatter():
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure(logging.INFO, out)
    try:
        logging.getLogger("tornado.general").info("Malformed HTTP message from %s", "1.2.3.4\r\n" + FORGED)
        logging.getLogger("tornado.access").warning("404 GET /%s", "\u2028" + FORGED)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = out.getvalue().rstrip("\n").split("\n")
    assert len(lines) == 2 and all(" tornado." in line for line in lines), lines
    assert not RAW_CONTROL.search(out.getvalue())


@pytest.mark.parametrize("created", [0.0, 1.5, 1_700_000_000.999, 1_700_000_001.0004, 1_800_000_000.25])
def test_the_time_stamp_formatted_once_a_second_is_the_standard_one(created):
    """The seconds part is kept between records; a record of another second
    (earlier or later) gets its own, and milliseconds are each record's."""
    ours, standard = OneLineFormatter(FORMAT), logging.Formatter(FORMAT)
    for t in (created, created + 0.5, created + 1.0, created - 3.0, created):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = t, int((t - int(t)) * 1000) + 0.0
        assert ours.formatTime(record) == standard.formatTime(record), t
    record.created = 1_700_000_000.5
    assert ours.formatTime(record, "%H:%M") == standard.formatTime(record, "%H:%M")


def test_lean_records_leave_every_line_as_it_was(logged):
    """lean_records() drops what FORMAT never shows: lines, escaping included, stay the same."""
    logger, out = logged
    switches = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)

    def lines() -> list[str]:
        out.seek(0)
        out.truncate()
        logger.warning("notify refused (%s)", "x\r\n" + FORGED)
        try:
            raise ValueError("bad\n" + FORGED)
        except ValueError:
            logger.exception("failed for %s", "co_1\u2028")
        # the time stamps differ between the two passes; everything after them may not
        return [line.split(" ", 2)[-1] if not line.startswith(CONTINUATION) else line
                for line in out.getvalue().splitlines()]

    before = lines()
    try:
        lean_records()
        assert logging._srcfile is None and not logging.logThreads
        after = lines()
    finally:
        logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = switches
    assert after == before and len(before) > 3
    assert not any(RAW_CONTROL.search(line) for line in after)
