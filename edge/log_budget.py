"""How many log lines the requests of one source may write, and the rest summed up.

A line per refused request is what an outsider can multiply for free: a
flood of wrong tokens, unknown paths, oversized bodies or malformed request
lines wrote one or two lines each (about 130 bytes per request, 45 GB a
day at 4,000 requests a second). A :class:`LineBudget` lets each source
write ``per_source_per_minute`` such lines, and all sources together
``total_per_minute``; beyond that a line is only counted, and one WARNING
line per window sums up what was not written (counts by label, the busiest
sources). So a flood writes a bounded number of lines a minute whatever
its rate, and a source that errs now and then still gets every line.

:class:`Buckets` is the token-bucket table underneath, also used where a
limit gates more than a log line (``service/notify_limiter.py``). Memory is
bounded: at most ``max_sources`` buckets (the least recently seen forgotten
first, which only gives a forgotten source a fresh budget: the total
bucket still holds) and at most ``max_sources`` counted sources per window.
Sources are keyed by :func:`edge.sources.source_of`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from typing import Callable

from .sources import source_of

MAX_SOURCES = 10_000
WINDOW_S = 60.0
TOP_SOURCES = 3
MAX_LABELS = 64


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at

    def refill(self, now: float, capacity: float, per_second: float) -> None:
        self.tokens = min(capacity, self.tokens + (now - self.at) * per_second)
        self.at = now


class Buckets:
    """Token buckets per source and in all, refilled per minute."""

    def __init__(
        self,
        *,
        per_source_per_minute: float,
        total_per_minute: float,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_source = float(per_source_per_minute)
        self.total = float(total_per_minute)
        self.max_sources = max_sources
        self.clock = clock
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        self._all = _Bucket(self.total, clock())

    def __len__(self) -> int:
        return len(self._sources)

    def take(self, key: str) -> bool:
        """Spend one token of ``key`` (a source key) and of the total, or none if either is empty."""
        now = self.clock()
        bucket = self._sources.get(key)
        if bucket is None:
            bucket = _Bucket(self.per_source, now)
            self._sources[key] = bucket
            if len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(key)
            bucket.refill(now, self.per_source, self.per_source / 60)
        self._all.refill(now, self.total, self.total / 60)
        if bucket.tokens >= 1 and self._all.tokens >= 1:
            bucket.tokens -= 1
            self._all.tokens -= 1
            return True
        return False


class LineBudget:
    """``allow(source, label)`` before writing a line an outsider's request caused."""

    def __init__(
        self,
        what: str,
        *,
        per_source_per_minute: int = 30,
        total_per_minute: int = 300,
        logger: logging.Logger | None = None,
        window_s: float = WINDOW_S,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.window_s = window_s
        self.max_sources = max_sources
        self.log = logger or logging.getLogger("wxpay_server.log_budget")
        self.buckets = Buckets(
            per_source_per_minute=per_source_per_minute, total_per_minute=total_per_minute,
            max_sources=max_sources, clock=clock,
        )
        self.suppressed_total = 0  # since start
        self._labels: Counter[str] = Counter()
        self._by_source: Counter[str] = Counter()
        self._summary: asyncio.TimerHandle | None = None

    def allow(self, source: str, label: str) -> bool:
        """True if the line may be written; otherwise it is counted for the summary."""
        key = source_of(source)
        if self.buckets.take(key):
            return True
        self.suppressed_total += 1
        if label in self._labels or len(self._labels) < MAX_LABELS:
            self._labels[label] += 1
        else:
            self._labels["other"] += 1
        if key in self._by_source or len(self._by_source) < self.max_sources:
            self._by_source[key] += 1
        if self._summary is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
            self._summary = loop.call_later(self.window_s, self.flush)
        return False

    def flush(self) -> None:
        """Write the window's summary line (if anything was held back) and start a new window."""
        if self._summary is not None:
            self._summary.cancel()
            self._summary = None
        if not self._labels:
            return
        total = sum(self._labels.values())
        labels = ", ".join(f"{label} {n}" for label, n in self._labels.most_common())
        busiest = ", ".join(f"{src} {n}" for src, n in self._by_source.most_common(TOP_SOURCES))
        self.log.warning(
            "%d %s line(s) not written in the last %.0f s, over the per-source or total budget (%s); "
            "%d source(s), busiest: %s",
            total, self.what, self.window_s, labels, len(self._by_source), busiest,
        )
        self._labels.clear()
        self._by_source.clear()


class BudgetFilter(logging.Filter):
    """Holds records of some message templates to a budget. ``templates``
    maps a template (e.g. Tornado's "Malformed HTTP message from %s: %s") to
    its label; the source is the record's first argument (the peer). A
    template ending in ``*`` matches messages that start with the rest, and
    such records, which name no peer, share one source. Install with
    ``logger.addFilter``; remove when done."""

    def __init__(self, budget: LineBudget, templates: dict[str, str]) -> None:
        super().__init__()
        self.budget = budget
        self.exact = {t: label for t, label in templates.items() if not t.endswith("*")}
        self.prefixes = tuple((t[:-1], label) for t, label in templates.items() if t.endswith("*"))

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg if isinstance(record.msg, str) else ""
        label = self.exact.get(msg)
        if label is not None and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            peer = getattr(args[0], "remote_ip", None) or str(args[0])
            return self.budget.allow(peer, label)
        for prefix, label in self.prefixes:
            if msg.startswith(prefix):
                return self.budget.allow("", label)
        return True
