"""Tornado's HTTPServer with every wait bounded and a cap on connections.

Tornado 6 has one timer before a request's headers: ``idle_connection_timeout``
becomes the header timeout, which runs from the moment the connection is
ready for a request (accepted, or the previous response written) until the
blank line after the headers; its default is an hour. The body has no
deadline at all unless ``body_timeout`` is given. This server sets:

- ``header_timeout_s`` for the first request on a connection: a peer that
  connects and sends nothing, or half a header line, is dropped after it;
- ``idle_timeout_s`` for every later request on a kept-alive connection
  (the same timer, started when the previous response was written): long
  enough for a proxy's or a phone's keep-alive, and still a bound;
- ``body_timeout_s`` for a whole body, from the end of the headers;
- ``write_timeout_s`` for a response's delivery to make progress: a
  connection whose pending response has not moved a byte for that long is
  closed. Tornado keeps no timer while it writes, and it reads a pipelined
  request only once the previous response is written, so a client that
  pipelines requests and never reads (a tiny receive window) held its
  connection, and a response in memory, for ever: a few hundred such
  sockets filled the connection cap. A sweep once a second looks at the
  connections with a response in Tornado's buffer (what the kernel's
  buffers could not take).

A timed-out connection is closed without an answer (Tornado's behaviour).
Tornado's own line for each malformed request or body timeout is held to
the server's :class:`~edge.log_budget.LineBudget` when one is given, so a
stream of garbage writes a bounded number of lines a minute (through a
filter on Tornado's process-wide logger, removed at ``stop()``: with two
servers in one process, as in tests, each one's budget sees both).
Nothing limits a handler's own work (its calls carry their own timeouts).
"""
from __future__ import annotations

import copy
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any, Iterable

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.iostream import IOStream

from .connection_cap import ConnectionCap, IPNetwork, refuse
from .log_budget import BudgetFilter, LineBudget

# What Tornado writes per request that failed at the HTTP layer (tornado/http1connection.py, iostream.py).
TORNADO_LINES = {
    "Malformed HTTP message from %s: %s": "malformed request",
    "Timeout reading body from %s": "body timeout",
    "Unsatisfiable read, closing connection: *": "headers too large",
}


@dataclass(frozen=True)
class Limits:
    """What a slow or greedy client may hold; ``server.*`` settings carry the same defaults."""

    header_timeout_s: float = 20.0
    idle_timeout_s: float = 75.0
    body_timeout_s: float = 30.0
    write_timeout_s: float = 30.0
    max_connections: int = 1000
    max_connections_per_ip: int = 200


SWEEP_EVERY_S = 1.0

try:  # the bytes a socket's send queue holds (Linux; elsewhere Tornado's own count is used)
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):
    _OUTQ = None

log = logging.getLogger("wxpay_server.connections")


class _Peer:
    __slots__ = ("key", "requests", "written", "stalled_since")

    def __init__(self, key: str) -> None:
        self.key = key
        self.requests = 0
        self.written = -1  # bytes the stream had written when last seen writing
        self.stalled_since = 0.0


def _bytes_delivered(stream: IOStream) -> int | None:
    """How many bytes of the stream's answers have left this machine: what
    Tornado handed to the kernel, less what still waits in the socket's send
    queue. Progress must be read here, not at Tornado's count alone: a large
    send buffer takes new bytes only once a third of it is free, which a
    slow reader may take minutes to make."""
    handed = getattr(stream, "_total_write_done_index", None)
    if handed is None or _OUTQ is None:
        return handed
    try:
        queued = struct.unpack("i", fcntl.ioctl(stream.socket.fileno(), _OUTQ, b"\0\0\0\0"))[0]
    except (OSError, AttributeError, ValueError):
        return handed
    return handed - queued


class EdgeHTTPServer(HTTPServer):
    """``EdgeHTTPServer(app, limits=Limits(...), exempt=(networks...), **HTTPServer options)``."""

    def initialize(  # type: ignore[override]
        self,
        request_callback: Any,
        limits: Limits = Limits(),
        exempt: Iterable[IPNetwork] = (),
        log_budget: LineBudget | None = None,
        **kwargs: Any,
    ) -> None:
        super().initialize(
            request_callback,
            idle_connection_timeout=limits.header_timeout_s,
            body_timeout=limits.body_timeout_s,
            **kwargs,
        )
        self.limits = limits
        self._kept_alive_params = copy.copy(self.conn_params)
        self._kept_alive_params.header_timeout = limits.idle_timeout_s
        self.cap = ConnectionCap(limits.max_connections, limits.max_connections_per_ip, exempt)
        self._peers: dict[IOStream, _Peer] = {}
        self.dropped_stalled_writes = 0  # since start
        self._sweeper: PeriodicCallback | None = None
        self._log_filter: BudgetFilter | None = None
        if log_budget is not None:
            self._log_filter = BudgetFilter(log_budget, TORNADO_LINES)
            logging.getLogger("tornado.general").addFilter(self._log_filter)

    def stop(self) -> None:
        super().stop()
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None
        if self._log_filter is not None:
            logging.getLogger("tornado.general").removeFilter(self._log_filter)
            self._log_filter = None

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        key = self.cap.admit(address[0] if isinstance(address, tuple) and address else "")
        if key is None:
            refuse(stream)
            return
        self._peers[stream] = _Peer(key)
        if self._sweeper is None:
            self._sweeper = PeriodicCallback(self._sweep_stalled_writes, SWEEP_EVERY_S * 1000)
            self._sweeper.start()
        try:
            super().handle_stream(stream, address)
        except BaseException:  # never served, so never closed through on_close: give the slot back
            if self._peers.pop(stream, None) is not None:
                self.cap.release(key)
            raise

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        stream = server_conn.stream  # type: ignore[attr-defined]
        if stream.closed():
            # Tornado still parses the requests left in a closed stream's read
            # buffer (a pipelining client we dropped, or one that hung up):
            # nobody can read their answers, so no handler runs for them.
            return httputil.HTTPMessageDelegate()
        peer = self._peers.get(stream)
        if peer is not None:
            peer.requests += 1
            if peer.requests > 1:  # waiting on a kept-alive connection: the idle timeout
                request_conn.params = self._kept_alive_params  # type: ignore[attr-defined]
        return super().start_request(server_conn, request_conn)

    def _sweep_stalled_writes(self, now: float | None = None) -> None:
        """Close connections whose pending response made no progress for ``write_timeout_s``."""
        now = time.monotonic() if now is None else now
        stalled = []
        for stream, peer in self._peers.items():
            if not stream.writing():
                peer.written = -1
                continue
            written = _bytes_delivered(stream)
            if peer.written == -1 or (written is not None and written != peer.written):
                # Newly writing, or progress since the last look (without a count: only the start counts).
                peer.written = written if written is not None else -2
                peer.stalled_since = now
            elif now - peer.stalled_since >= self.limits.write_timeout_s:
                stalled.append(stream)
        for stream in stalled:
            self.dropped_stalled_writes += 1
            stream.close()  # on_close gives its slot back
        if stalled:
            log.info("closed %d connection(s) whose response made no progress for %.0f s (server.write_timeout_s)",
                     len(stalled), self.limits.write_timeout_s)

    def on_close(self, server_conn: object) -> None:
        peer = self._peers.pop(server_conn.stream, None)  # type: ignore[attr-defined]
        if peer is not None:
            self.cap.release(peer.key)
        super().on_close(server_conn)
