"""Admin authentication pieces: Basic parsing, constant-time match, the login throttle."""
from __future__ import annotations

import base64

import pytest

from handlers.admin import LoginThrottle, credentials_match, parse_basic


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


def test_delay_doubles_per_failure_up_to_a_cap_and_success_resets():
    throttle = LoginThrottle(base_delay=0.25, max_delay=2.0, clock=Clock())
    assert [throttle.failed("10.0.0.1") for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert throttle.failed("10.0.0.2") == 0.25  # per source
    throttle.succeeded("10.0.0.1")
    assert throttle.failures("10.0.0.1") == 0 and throttle.failed("10.0.0.1") == 0.25


def test_failures_are_forgotten_after_a_quiet_period():
    clock = Clock()
    throttle = LoginThrottle(forget_after=60, clock=clock)
    throttle.failed("10.0.0.1")
    throttle.failed("10.0.0.1")
    clock.t += 59
    assert throttle.failures("10.0.0.1") == 2
    clock.t += 2
    assert throttle.failures("10.0.0.1") == 0 and len(throttle) == 0


def test_memory_is_bounded_and_the_oldest_sources_go_first():
    throttle = LoginThrottle(max_sources=100, clock=Clock())
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100
    assert throttle.failures("10.0.0.0") == 0 and throttle.failures("10.0.3.231") == 1
