"""The connection cap's bookkeeping, and its fit to the process's open-files limit (in real child processes)."""
from __future__ import annotations

import ipaddress
import logging
import subprocess
import sys
from pathlib import Path

from edge.connection_cap import RESERVED_FDS, ConnectionCap, source_of

ROOT = Path(__file__).resolve().parents[2]


def test_sources_are_ipv4_addresses_and_ipv6_slash_64s():
    assert source_of("203.0.113.7") == "203.0.113.7"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:203.0.113.7") == "203.0.113.7"
    assert source_of("") == source_of("not an address")


def test_the_total_and_each_sources_share_are_enforced_and_released():
    cap = ConnectionCap(max_total=4, max_per_source=2)
    a1, a2 = cap.admit("198.51.100.1"), cap.admit("198.51.100.1")
    assert a1 and a2 and cap.admit("198.51.100.1") is None  # over its share
    assert cap.refused_per_source == 1
    b1, b2 = cap.admit("2001:db8::1"), cap.admit("2001:db8::2")
    assert b1 == b2 and cap.admit("198.51.100.9") is None  # over the total
    assert cap.refused_total == 1 and cap.open == 4
    cap.release(a1)
    assert cap.admit("198.51.100.1") is not None  # a freed slot is usable again
    for key in (a2, b1, b2):
        cap.release(key)
    assert cap.open == 1 and cap.sources() == 1  # no counter left behind for a gone source


def test_exempt_networks_count_towards_the_total_only():
    cap = ConnectionCap(max_total=3, max_per_source=1, exempt=[ipaddress.ip_network("10.0.0.0/8")])
    keys = [cap.admit("10.1.2.3") for _ in range(3)]
    assert keys == ["", "", ""] and cap.admit("10.1.2.3") is None and cap.refused_total == 1
    cap.release(keys[0])
    assert cap.admit("::ffff:10.1.2.3") == ""  # the same proxy over a dual-stack socket
    assert cap.sources() == 0


def test_refusals_are_reported_once_per_period_not_once_each(caplog):
    cap = ConnectionCap(max_total=1, max_per_source=1)
    cap.admit("198.51.100.1")
    with caplog.at_level(logging.WARNING, logger="wxpay_server.connections"):
        for _ in range(10_000):
            assert cap.admit("198.51.100.2") is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "wxpay_server.connections"]
    assert len(warnings) == 1 and "server.max_connections = 1" in warnings[0], warnings


def _fit_in_child(soft: int, hard: int, wanted: int) -> tuple[int, int, str]:
    code = (
        "import logging, resource, sys\n"
        "logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format='%(message)s')\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n"
        "from edge.connection_cap import fit_to_open_files\n"
        f"print(fit_to_open_files({wanted}), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    *log, last = done.stdout.strip().splitlines()
    fitted, soft_after = map(int, last.split())
    return fitted, soft_after, "\n".join(log)


def test_a_low_soft_limit_is_raised_towards_the_hard_one():
    fitted, soft_after, log = _fit_in_child(300, 4096, 1000)
    assert fitted == 1000 and soft_after == 1000 + RESERVED_FDS and log == ""


def test_a_cap_the_hard_limit_cannot_hold_is_lowered_with_a_warning():
    fitted, soft_after, log = _fit_in_child(400, 400, 1000)
    assert fitted == 400 - RESERVED_FDS and soft_after == 400
    assert "capped at 250" in log and "ulimit -n" in log
