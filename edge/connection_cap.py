"""A cap on open connections, in total and per source.

Tornado accepts every connection it is offered until the process runs out
of file descriptors; then ``accept()`` fails on every turn of the loop.
The cap refuses what is over it at once, with a bare 503 written straight
to the socket (no parsing, no handler, no timer), and leaves open
connections alone. Memory is one counter per source with an open
connection.

A source is an IPv4 address or an IPv6 /64 (a single host usually holds a
whole /64): :func:`edge.sources.source_of`, the rule every per-source limit
shares. Exempt sources (reverse proxies, which carry everyone's
traffic) count towards the total only.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from typing import Iterable

from tornado.iostream import IOStream, SSLIOStream

from .sources import parse_address, source_of

log = logging.getLogger("wxpay_server.connections")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Length: 0\r\n"
    b"Connection: close\r\n"
    b"Retry-After: 1\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"\r\n"
)

# File descriptors kept for everything but inbound connections: the store,
# the pool of connections to WeChat (up to 100), webhooks, log files.
RESERVED_FDS = 150

REPORT_EVERY_S = 10.0


class ConnectionCap:
    """Counts open connections; says whether one more may open."""

    def __init__(self, max_total: int, max_per_source: int, exempt: Iterable[IPNetwork] = ()) -> None:
        self.max_total = max_total
        self.max_per_source = max_per_source
        self.exempt = tuple(exempt)
        self.open = 0
        self._by_source: dict[str, int] = {}
        self.refused_total = 0  # over the total cap, since start
        self.refused_per_source = 0  # over a source's share, since start
        self._unreported = 0
        self._reported_at = float("-inf")

    def admit(self, ip: str) -> str | None:
        """Count the connection in and return the key to release it with
        (``""`` for an exempt source), or None if it is refused."""
        key = source_of(ip)
        if self.open >= self.max_total:
            self.refused_total += 1
            self._report(f"{self.open} open (server.max_connections = {self.max_total})")
            return None
        counted = not self._is_exempt(ip)
        if counted and self._by_source.get(key, 0) >= self.max_per_source:
            self.refused_per_source += 1
            self._report(
                f"{self.max_per_source} open from {key} (server.max_connections_per_ip; a reverse proxy "
                "belongs in server.trusted_proxies)"
            )
            return None
        self.open += 1
        if counted:
            self._by_source[key] = self._by_source.get(key, 0) + 1
        return key if counted else ""

    def release(self, key: str) -> None:
        """The connection admitted under ``key`` closed."""
        self.open -= 1
        if key:
            left = self._by_source[key] - 1
            if left:
                self._by_source[key] = left
            else:
                del self._by_source[key]

    def sources(self) -> int:
        return len(self._by_source)

    def _is_exempt(self, ip: str) -> bool:
        if not self.exempt:
            return False
        addr = parse_address(ip)
        return addr is not None and any(addr in net for net in self.exempt)

    def _report(self, why: str) -> None:
        """One warning per REPORT_EVERY_S at most: a flood must not fill the log."""
        self._unreported += 1
        now = time.monotonic()
        if now - self._reported_at < REPORT_EVERY_S:
            return
        log.warning("refused %d connection(s) since the last report; latest: %s", self._unreported, why)
        self._unreported = 0
        self._reported_at = now


def refuse(stream: IOStream) -> None:
    """Answer a bare 503 and close, without reading the request.

    What the peer already sent is drained first (one non-blocking read), so
    the close is a FIN after the 503, not a reset that could discard it.
    A TLS stream (not handshaken yet) is just closed."""
    if isinstance(stream, SSLIOStream):
        stream.close()
        return
    sock = stream.socket
    try:
        sock.recv(65536)
    except OSError:
        pass
    try:
        sock.send(REFUSAL)  # non-blocking, and far smaller than an empty send buffer
    except OSError:
        pass
    stream.close()


def fit_to_open_files(max_connections: int) -> int:
    """The cap the process's descriptor limit allows, raising the soft limit if it must.

    Past the limit ``accept()`` fails on every loop turn; a cap below it
    refuses instead. Returns ``max_connections`` or less (never below 1)."""
    try:
        import resource
    except ImportError:  # not a Unix
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_connections + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= need:
        return max_connections
    fitted = max(1, soft - RESERVED_FDS)
    log.warning(
        "server.max_connections = %d does not fit the open-files limit (%d, hard %d): capped at %d; "
        "raise the limit (ulimit -n, systemd LimitNOFILE=) to allow more",
        max_connections, soft, hard, fitted,
    )
    return fitted
