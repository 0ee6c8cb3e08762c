"""Admin authentication pieces: Basic parsing, constant-time match, the lockout."""
from __future__ import annotations

import base64

import pytest

from handlers.admin import credentials_match, parse_basic
from handlers.lockout import Lockout, admin_lockout, merchant_api_lockout


def header(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize("value,want", [
    (header(b"admin:pw"), ("admin", "pw")),
    (header(b"admin:pw:with:colons"), ("admin", "pw:with:colons")),
    (header("管理员:密码".encode()), ("管理员", "密码")),
    (header(b"admin"), None),                 # no colon
    ("Basic !!!", None),                       # not base64
    (header(b"\xff\xfe:x"), None),             # not UTF-8
    ("Bearer abc", None),
    ("Basic ", None),
    ("", None),
])
def test_parse_basic(value, want):
    assert parse_basic(value) == want


def test_credentials_match_needs_a_configured_password():
    assert credentials_match(("admin", "pw"), "admin", "pw")
    assert not credentials_match(("admin", "PW"), "admin", "pw")
    assert not credentials_match(("root", "pw"), "admin", "pw")
    assert not credentials_match(("admin", ""), "admin", "")
    assert not credentials_match(("admin", ""), "admin", None)
    assert not credentials_match(None, "admin", "pw")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def guess(lockout: Lockout, source: str) -> str:
    """One wrong attempt: "refused" (not evaluated) or "evaluated"."""
    if lockout.admit(source) is not None:
        return "refused"
    lockout.failed(source)
    return "evaluated"


def test_free_failures_then_a_lock_that_doubles_up_to_a_cap():
    clock = Clock()
    lockout = Lockout(free=3, base_lock=10, max_lock=40, forget_after=100, clock=clock)
    assert [guess(lockout, "10.0.0.1") for _ in range(5)] == ["evaluated"] * 3 + ["refused"] * 2
    assert lockout.admit("10.0.0.1").retry_after == 10
    assert lockout.admit("10.0.0.2") is None  # per source
    locks = []
    for _ in range(4):
        refusal = lockout.admit("10.0.0.1")
        clock.t += refusal.retry_after
        assert lockout.admit("10.0.0.1") is None  # the lock expired: one attempt
        locks.append(lockout.failed("10.0.0.1"))
    assert locks == [20, 40, 40, 40]


def test_success_clears_the_source_and_locks_expire():
    clock = Clock()
    lockout = Lockout(free=2, base_lock=5, max_lock=5, forget_after=60, clock=clock)
    guess(lockout, "10.0.0.1"), guess(lockout, "10.0.0.1")
    assert lockout.admit("10.0.0.1") is not None
    clock.t += 5
    assert lockout.admit("10.0.0.1") is None
    lockout.succeeded("10.0.0.1")
    assert lockout.failures("10.0.0.1") == 0
    assert [guess(lockout, "10.0.0.1") for _ in range(3)] == ["evaluated", "evaluated", "refused"]


def test_attempts_in_flight_count_against_the_budget():
    lockout = Lockout(free=5, clock=Clock())
    admitted = [lockout.admit("10.0.0.1") is None for _ in range(50)]
    assert admitted.count(True) == 5
    for _ in range(5):
        lockout.failed("10.0.0.1")
    assert lockout.admit("10.0.0.1").retry_after == 30


def test_failures_are_forgotten_after_a_quiet_period_but_never_while_locked():
    clock = Clock()
    lockout = Lockout(free=2, base_lock=50, max_lock=50, forget_after=60, clock=clock)
    guess(lockout, "10.0.0.1")
    clock.t += 59
    assert lockout.failures("10.0.0.1") == 1
    clock.t += 2
    assert lockout.failures("10.0.0.1") == 0 and len(lockout) == 0
    with pytest.raises(ValueError):
        Lockout(max_lock=100, forget_after=50)


def test_overall_budget_exempts_recent_successes_and_expires():
    clock = Clock()
    lockout = Lockout(free=5, global_failures=20, global_window=100, trusted_for=1000, clock=clock)
    lockout.admit("192.0.2.1")
    lockout.succeeded("192.0.2.1")  # the real admin signed in from here
    for i in range(20):  # twenty addresses, one guess each
        assert guess(lockout, f"10.0.{i}.1") == "evaluated"
    refusal = lockout.admit("198.51.100.7")  # a new address: refused during the flood
    assert refusal is not None and refusal.overall and refusal.retry_after == 100
    assert lockout.admit("192.0.2.1") is None  # the admin's known address keeps access
    lockout.succeeded("192.0.2.1")
    clock.t += 100
    assert lockout.admit("198.51.100.7") is None  # the window slid: not locked for good


def test_clear_on_success_off_keeps_counting_a_shared_address():
    clock = Clock()
    lockout = merchant_api_lockout(clock=clock)
    for _ in range(19):
        guess(lockout, "10.0.0.1")
        assert lockout.admit("10.0.0.1") is None
        lockout.succeeded("10.0.0.1")  # the merchant's backend behind the same NAT
    assert lockout.failures("10.0.0.1") == 19
    assert guess(lockout, "10.0.0.1") == "evaluated" and guess(lockout, "10.0.0.1") == "refused"


def test_memory_is_bounded_under_a_flood_of_addresses():
    lockout = admin_lockout(max_sources=1000, clock=Clock())
    outcomes = [guess(lockout, f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}") for i in range(100_000)]
    assert outcomes.count("evaluated") == 100  # the overall budget: 100 guesses per window
    assert len(lockout) <= 1000 and len(lockout._recent) <= 100
    trusting = admin_lockout(max_trusted=100, clock=Clock())
    for i in range(1000):
        assert trusting.admit(f"fd00::{i:x}") is None
        trusting.succeeded(f"fd00::{i:x}")
    assert trusting.trusted_count == 100 and len(trusting) == 0
