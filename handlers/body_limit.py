"""The request body limit (``server.max_body_bytes``), answered in JSON.

Tornado enforces ``max_body_size`` itself by writing a bare
``400 Bad Request`` and closing. This wrapper around the application
refuses first, with the same ``{code, message}`` body as every other error:

- a declared ``Content-Length`` over the limit is refused as soon as the
  headers arrive: 413 ``body_too_large``, the connection closed, at most
  ``DRAIN_MAX`` bytes of the body read and thrown away so the client can
  finish sending and read the answer (none when it asked ``100-continue``);
- a malformed ``Content-Length`` is 400 ``malformed_request``;
- a chunked body is counted as it arrives; past the limit nothing more
  reaches the handler and the answer is 413. The HTTP server's own limit
  is the limit plus ``DRAIN_MAX``: a chunked body beyond that still gets
  Tornado's bare 400.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from tornado import httputil
from tornado.iostream import StreamClosedError

from edge.log_budget import LineBudget

log = logging.getLogger("wxpay_server.http")

DRAIN_MAX = 1 << 20
DRAIN_SECONDS = 2.0
_LENGTH = re.compile(r"[0-9]{1,18}")
_REASONS = {400: "Bad Request", 413: "Payload Too Large"}


def server_max_body_size(limit: int) -> int:
    """What to give Tornado's HTTPServer so that this wrapper answers first."""
    return limit + DRAIN_MAX


class BodyLimit(httputil.HTTPServerConnectionDelegate):
    """Wraps an application (itself a connection delegate) for the HTTP server."""

    def __init__(
        self, app: Any, limit: int, headers: dict[str, str] | None = None, log_budget: LineBudget | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.log_budget = log_budget  # one line per refusal, within the budget (edge/log_budget.py)
        # The application's output transforms never see these answers: the
        # security headers (edge/headers.py) are given here as well.
        self.headers = dict(headers or {"X-Content-Type-Options": "nosniff"})

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _LimitedRequest(
            self.app.start_request(server_conn, request_conn), request_conn, self.limit, self.headers, self.log_budget
        )

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


def error_response(status: int, code: str, message: str, headers: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    body = json.dumps({"code": code, "message": message}).encode()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in _json_headers(len(body), headers).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _json_headers(length: int, extra: dict[str, str]) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8", "Content-Length": str(length),
        "Cache-Control": "no-store", **extra, "Connection": "close",
    }


def too_large_message(limit: int) -> str:
    return f"The request body is larger than the server accepts ({limit} bytes, server.max_body_bytes)"


class _LimitedRequest(httputil.HTTPMessageDelegate):
    def __init__(
        self,
        inner: httputil.HTTPMessageDelegate,
        conn: httputil.HTTPConnection,
        limit: int,
        headers: dict[str, str],
        log_budget: LineBudget | None = None,
    ) -> None:
        self.inner = inner
        self.log_budget = log_budget
        self.conn = conn
        self.limit = limit
        self.headers = headers
        self.received = 0
        self.too_large = False
        self.forwarded = False

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> Any:
        declared = headers.get("Content-Length")
        if declared is not None:
            if not _LENGTH.fullmatch(declared):
                return self._refuse(start_line, 400, "malformed_request", "The Content-Length header is not a number", 0)
            if int(declared) > self.limit:
                drain = 0 if headers.get("Expect", "").lower() == "100-continue" else int(declared)
                return self._refuse(start_line, 413, "body_too_large", too_large_message(self.limit), drain)
        self.forwarded = True
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        self.received += len(chunk)
        if self.too_large or self.received > self.limit:
            self.too_large = True
            return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.too_large:
            self.inner.finish()
            return
        self.inner.on_connection_close()  # the handler never runs; let it drop what it buffered
        body = json.dumps({"code": "body_too_large", "message": too_large_message(self.limit)}).encode()
        headers = httputil.HTTPHeaders(_json_headers(len(body), self.headers))
        self.conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", 413, _REASONS[413]), headers, body)
        self.conn.finish()

    def on_connection_close(self) -> None:
        if self.forwarded:
            self.inner.on_connection_close()

    def _refuse(self, start_line: Any, status: int, code: str, message: str, drain: int) -> Any:
        """Answer without reading the body: the connection is ours from here on."""
        peer = getattr(getattr(self.conn, "context", None), "remote_ip", None) or ""
        if self.log_budget is None or self.log_budget.allow(peer, str(status)):
            log.info("%s %s -> %d %s", getattr(start_line, "method", "?"), getattr(start_line, "path", "?")[:200],
                     status, code)
        stream = self.conn.detach()  # type: ignore[attr-defined]
        return _answer_and_close(stream, error_response(status, code, message, self.headers), min(drain, DRAIN_MAX))


async def _answer_and_close(stream: Any, response: bytes, drain: int) -> None:
    try:
        await stream.write(response)
        await asyncio.wait_for(_discard(stream, drain), DRAIN_SECONDS)
    except (StreamClosedError, asyncio.TimeoutError):
        pass
    finally:
        stream.close()


async def _discard(stream: Any, count: int) -> None:
    while count > 0:
        chunk = await stream.read_bytes(min(count, 65536), partial=True)
        count -= len(chunk)
