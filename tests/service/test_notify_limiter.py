"""service.notify_limiter: the budget of unverified notifies, and its summary line."""
from __future__ import annotations

import logging

import pytest

from edge.sources import NOT_AN_ADDRESS, source_of as source_key
from service.notify_limiter import NotifyLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def limiter(per_source: int = 3, total: int = 100, **kw) -> tuple[NotifyLimiter, Clock]:
    clock = Clock()
    return NotifyLimiter(per_source_per_minute=per_source, total_per_minute=total, clock=clock, **kw), clock


def test_each_source_has_its_own_budget_refilled_over_the_minute():
    lim, clock = limiter(per_source=3)
    assert [lim.admit("notify", "10.0.0.1", "bad_signature") for _ in range(5)] == [True, True, True, False, False]
    assert lim.admit("notify", "10.0.0.2", "bad_signature") is True  # another source is not affected
    clock.t += 20  # a third of a minute: one more for 10.0.0.1
    assert [lim.admit("notify", "10.0.0.1", "bad_signature") for _ in range(2)] == [True, False]
    assert lim.totals[("notify", True)] == 5 and lim.totals[("notify", False)] == 3


def test_many_sources_together_cannot_exceed_the_total():
    lim, _ = limiter(per_source=10, total=5)
    admitted = [lim.admit("notify", f"10.0.{i}.1", "malformed_xml") for i in range(20)]
    assert admitted.count(True) == 5


def test_a_refused_source_does_not_spend_the_total():
    lim, _ = limiter(per_source=1, total=3)
    assert [lim.admit("notify", "10.0.0.1", "bad_signature") for _ in range(50)].count(True) == 1
    # 49 refusals spent nothing of the total: two of three remain
    assert [lim.admit("notify", f"10.0.1.{i}", "bad_signature") for i in range(3)] == [True, True, False]


def test_ipv6_sources_are_grouped_by_64_and_mapped_ipv4_is_ipv4():
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:10.0.0.1") == "10.0.0.1" == source_key("10.0.0.1")
    assert source_key("not an ip" * 20) == NOT_AN_ADDRESS
    lim, _ = limiter(per_source=2)
    assert [lim.admit("notify", f"2001:db8:1:2::{i}", "x") for i in range(1, 4)] == [True, True, False]


def test_memory_is_bounded_by_max_sources():
    lim, _ = limiter(per_source=1, total=10**9, max_sources=100)
    for i in range(5000):
        lim.admit("notify", f"10.{i // 256 % 256}.{i % 256}.1", "bad_signature")
    assert lim.snapshot()["sources_tracked"] == 100
    assert len(lim._by_source) <= 100 and len(lim._verdicts) <= 64


def test_one_summary_line_per_window_whatever_the_flood(caplog):
    lim, _ = limiter(per_source=2)
    caplog.set_level(logging.DEBUG, logger="wxpay_server.notify")
    for _ in range(500):
        lim.admit("notify", "10.0.0.1", "bad_signature")
    lim.admit("refund_notify", "10.0.0.2", "undecryptable")
    lim.flush()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "501 notify(s) refused before verification" in text
    assert "notify bad_signature 500" in text and "refund_notify undecryptable 1" in text
    assert "498 over the rate limit" in text and "10.0.0.1 500" in text
    lim.flush()  # an empty window says nothing
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


async def test_the_summary_is_scheduled_at_the_end_of_the_window(caplog):
    import asyncio

    caplog.set_level(logging.WARNING, logger="wxpay_server.notify")
    lim = NotifyLimiter(per_source_per_minute=1, total_per_minute=10, window_s=0.05)
    for _ in range(10):
        lim.admit("notify", "10.0.0.1", "bad_signature")
    for _ in range(100):
        if caplog.records:
            break
        await asyncio.sleep(0.02)
    assert len(caplog.records) == 1 and "10 notify(s)" in caplog.records[0].getMessage()


@pytest.mark.parametrize("bad", [0, -1])
def test_settings_refuse_a_limit_below_one(tmp_path, bad):
    from config import SettingsError, load_settings

    with pytest.raises(SettingsError) as exc:
        load_settings(None, env={}, overrides={"notify.refused_per_minute": bad, "audit.retention_days": bad})
    assert any("notify.refused_per_minute" in p for p in exc.value.problems)
    assert any("audit.retention_days" in p for p in exc.value.problems)
