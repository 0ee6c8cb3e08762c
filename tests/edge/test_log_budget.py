"""The line budget: a source's first lines a minute are written, the rest summed up."""
from __future__ import annotations

import logging

from edge.log_budget import BudgetFilter, Buckets, LineBudget


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def budget(per_source: int = 3, total: int = 10) -> tuple[LineBudget, Clock, Lines, logging.Logger]:
    clock, lines = Clock(), Lines()
    logger = logging.getLogger(f"test.log_budget.{id(clock)}")
    logger.addHandler(lines)
    logger.propagate = False
    return LineBudget("test", per_source_per_minute=per_source, total_per_minute=total, logger=logger,
                      clock=clock), clock, lines, logger


def test_each_source_gets_its_share_then_lines_are_counted():
    b, clock, lines, _ = budget(per_source=3, total=100)
    assert [b.allow("203.0.113.1", "404") for _ in range(10)].count(True) == 3
    assert [b.allow("203.0.113.2", "404") for _ in range(10)].count(True) == 3
    assert b.suppressed_total == 14
    clock.t += 20  # a third of a minute: one more line for each
    assert [b.allow("203.0.113.1", "404") for _ in range(5)].count(True) == 1


def test_one_ipv6_host_is_one_source_whatever_address_it_uses():
    b, _, _, _ = budget(per_source=3, total=1000)
    got = [b.allow(f"2001:db8:1:2::{i:x}", "401") for i in range(1, 50)]
    assert got.count(True) == 3


def test_the_total_caps_many_sources():
    b, _, _, _ = budget(per_source=3, total=10)
    got = [b.allow(f"198.51.100.{i}", "404") for i in range(50)]
    assert got.count(True) == 10


def test_one_summary_line_names_what_was_held_back():
    b, _, lines, _ = budget(per_source=1, total=100)
    for _ in range(5):
        b.allow("203.0.113.1", "429")
    b.allow("203.0.113.1", "404")
    b.flush()
    assert len(lines.messages) == 1
    assert "5 test line(s) not written" in lines.messages[0]
    assert "429 4, 404 1" in lines.messages[0] and "203.0.113.1 5" in lines.messages[0]
    b.flush()
    assert len(lines.messages) == 1  # nothing new held back: no line


def test_memory_is_bounded_under_a_flood_of_sources():
    buckets = Buckets(per_source_per_minute=1, total_per_minute=10**9, max_sources=100)
    for i in range(5000):
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 100


def test_the_filter_holds_a_template_to_the_budget_by_its_peer():
    b, _, _, _ = budget(per_source=2, total=100)
    f = BudgetFilter(b, {"Malformed HTTP message from %s: %s": "malformed", "Unsatisfiable read*": "too large"})

    def record(msg: str, args: tuple) -> logging.LogRecord:
        return logging.LogRecord("tornado.general", logging.INFO, __file__, 1, msg, args, None)

    class Context:
        remote_ip = "203.0.113.9"

        def __str__(self) -> str:
            return "203.0.113.9"

    got = [f.filter(record("Malformed HTTP message from %s: %s", (Context(), "bad"))) for _ in range(5)]
    assert got == [True, True, False, False, False]
    assert f.filter(record("Something else %s", ("x",))) is True
    assert [f.filter(record("Unsatisfiable read, closing connection: big", ())) for _ in range(4)].count(True) == 2
