"""What one "source" is, for every per-source limit in the process.

A limit counted per address string is a limit per address *spelling*: an
IPv6 host holds a whole /64 (2^64 addresses), and one address has many
spellings (``2001:DB8::1``, ``2001:db8:0::1``, ``::ffff:192.0.2.1``,
``fe80::1%eth0``). So every per-source limit (the connection cap, the
login and token lockouts, the notify limiter, the order and sign-in quotas,
the access log's line budget) keys on :func:`source_of`: an IPv4 address,
or an IPv6 address's /64; IPv4-mapped IPv6 counts as its IPv4 address.

:func:`forwarded_address` reads one ``X-Forwarded-For`` hop the way proxies
write it (``192.0.2.1``, ``192.0.2.1:4711``, ``[2001:db8::1]:4711``).
"""
from __future__ import annotations

import functools
import ipaddress

NOT_AN_ADDRESS = "(not an IP address)"  # a Unix socket's peer, say: one source for all of them

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=1024)
def parse_address(text: str) -> IPAddress | None:
    """``text`` as an address (IPv6 scope ids dropped, IPv4-mapped unwrapped), or None.

    Asked several times per request (the peer, its source, the access log)
    and the same few peers ask most (WeChat's notify servers, a proxy), so
    answers are kept: bounded, and the address objects are immutable."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            addr = ipaddress.IPv6Address(addr.packed)
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
    return addr


def forwarded_address(hop: str) -> IPAddress | None:
    """One ``X-Forwarded-For`` hop as an address: bare, ``ipv4:port`` or ``[ipv6]:port``."""
    hop = hop.strip()
    if hop.startswith("["):
        inside, sep, rest = hop[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit())):
            return None
        return parse_address(inside)
    if hop.count(":") == 1:  # IPv4 with a port; an IPv6 address has at least two colons
        host, _, port = hop.partition(":")
        return parse_address(host) if port.isascii() and port.isdigit() else None
    return parse_address(hop)


@functools.lru_cache(maxsize=1024)
def source_of(ip: str) -> str:
    """The key a peer is counted under: its IPv4 address or its IPv6 /64."""
    addr = parse_address(ip) if isinstance(ip, str) else None
    if addr is None:
        return NOT_AN_ADDRESS
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)
