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
- ``body_timeout_s`` for a whole body, from the end of the headers.

A timed-out connection is closed without an answer (Tornado's behaviour).
Tornado's own line for each malformed request or body timeout is held to
the server's :class:`~edge.log_budget.LineBudget` when one is given, so a
stream of garbage writes a bounded number of lines a minute.
Nothing limits a handler's own work (its calls carry their own timeouts),
and nothing limits how long a response takes to be read: every response an
outsider can get without credentials fits the kernel's socket buffers, so
the connection is back under the idle timer as soon as it is written.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Iterable

from tornado import httputil
from tornado.httpserver import HTTPServer
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
    max_connections: int = 1000
    max_connections_per_ip: int = 200


class _Peer:
    __slots__ = ("key", "requests")

    def __init__(self, key: str) -> None:
        self.key = key
        self.requests = 0


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
        self._log_filter: BudgetFilter | None = None
        if log_budget is not None:
            self._log_filter = BudgetFilter(log_budget, TORNADO_LINES)
            logging.getLogger("tornado.general").addFilter(self._log_filter)

    def stop(self) -> None:
        super().stop()
        if self._log_filter is not None:
            logging.getLogger("tornado.general").removeFilter(self._log_filter)
            self._log_filter = None

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        key = self.cap.admit(address[0] if isinstance(address, tuple) and address else "")
        if key is None:
            refuse(stream)
            return
        self._peers[stream] = _Peer(key)
        try:
            super().handle_stream(stream, address)
        except BaseException:  # never served, so never closed through on_close: give the slot back
            if self._peers.pop(stream, None) is not None:
                self.cap.release(key)
            raise

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        peer = self._peers.get(server_conn.stream)  # type: ignore[attr-defined]
        if peer is not None:
            peer.requests += 1
            if peer.requests > 1:  # waiting on a kept-alive connection: the idle timeout
                request_conn.params = self._kept_alive_params  # type: ignore[attr-defined]
        return super().start_request(server_conn, request_conn)

    def on_close(self, server_conn: object) -> None:
        peer = self._peers.pop(server_conn.stream, None)  # type: ignore[attr-defined]
        if peer is not None:
            self.cap.release(peer.key)
        super().on_close(server_conn)
