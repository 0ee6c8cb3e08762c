"""The one seam between the protocol code and the network.

Everything in :mod:`wxpay` builds an :class:`HttpRequest` and reads an
:class:`HttpResponse`; only :class:`TornadoTransport` touches a socket. Tests
(and other event loops) swap in any object with an async ``send``, or wrap a
plain async function with :class:`FunctionTransport`.
"""
from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .errors import ConfigError, MessageTooLargeError, TransportError, WxPayError, WxTimeoutError

log = logging.getLogger("wxpay.transport")

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_REQUEST_TIMEOUT = 10.0
# Bills for a busy day run to megabytes; nothing else WeChat sends comes close.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


def _redacted_url(url: str) -> str:
    """scheme://host/path only: queries carry secrets and OAuth codes."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    client_cert: str | None = None
    client_key: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def __repr__(self) -> str:  # never show a query string (secret, code)
        cert = ", client_cert=…" if self.client_cert else ""
        size = len(self.body) if self.body is not None else 0
        return f"HttpRequest({self.method} {_redacted_url(self.url)}, {size} bytes{cert})"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default


@runtime_checkable
class Transport(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse: ...


class FunctionTransport:
    """Adapt ``async def handler(request) -> HttpResponse`` to a transport."""

    def __init__(self, handler: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self._handler = handler

    async def send(self, request: HttpRequest) -> HttpResponse:
        return await self._handler(request)


def as_transport(obj: Any) -> Transport:
    """Accept a transport, or a bare async callable to wrap."""
    if obj is None:
        return TornadoTransport()
    if hasattr(obj, "send"):
        return obj
    if callable(obj):
        return FunctionTransport(obj)
    raise ConfigError(f"transport must have an async send() or be callable, not {type(obj).__name__}")


def raise_for_status(response: HttpResponse, url: str = "") -> None:
    """Turn a non-2xx answer into a :class:`TransportError`.

    5xx is WeChat (or a proxy) having trouble: retryable. Anything else that
    is not 2xx means a wrong URL or a proxy in the way, which a retry will not
    fix.
    """
    status = response.status
    if 200 <= status < 300:
        return
    where = f" from {_redacted_url(url)}" if url else ""
    if status >= 500:
        raise TransportError(f"WeChat answered HTTP {status}{where}; retry later", status=status)
    err = TransportError(
        f"Unexpected HTTP {status}{where}; check the configured WeChat base URL",
        status=status,
    )
    err.retryable = False
    raise err


class TornadoTransport:
    """The only class in :mod:`wxpay` that does I/O.

    Uses its own ``AsyncHTTPClient`` per event loop (not Tornado's shared
    one, whose 10 slots anything else in the process may fill: a burst of
    inbound notifies, each waiting for its orderquery, once starved the
    orderqueries into timeouts), with explicit connect and request timeouts,
    the merchant certificate for mutual TLS when the request carries one,
    and a cap on how much it will read.
    """

    def __init__(
        self,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ca_certs: str | None = None,
        user_agent: str = "wxpay-server/0.1",
        max_clients: int = 100,
    ) -> None:
        self.max_response_bytes = max_response_bytes
        self.ca_certs = ca_certs
        self.user_agent = user_agent
        self.max_clients = max_clients
        self._clients: dict[Any, Any] = {}

    def _client(self) -> Any:
        import asyncio

        from tornado.httpclient import AsyncHTTPClient

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [k for k in self._clients if k.is_closed()]:
                del self._clients[old]
            client = self._clients[loop] = AsyncHTTPClient(force_instance=True, max_clients=self.max_clients)
        return client

    async def send(self, request: HttpRequest) -> HttpResponse:
        from tornado.httpclient import HTTPClientError
        from tornado.httpclient import HTTPRequest as TornadoRequest
        from tornado.simple_httpclient import HTTPTimeoutError

        for path in (request.client_cert, request.client_key):
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"Merchant certificate file not found: {path}")

        chunks: list[bytes] = []
        received = 0
        cap = self.max_response_bytes

        def on_chunk(chunk: bytes) -> None:
            # Raising here would only be logged by Tornado and surface as a
            # closed stream; past the cap we keep reading but keep nothing.
            nonlocal received
            received += len(chunk)
            if received <= cap:
                chunks.append(chunk)

        tornado_request = TornadoRequest(
            request.url,
            method=request.method,
            headers=dict(request.headers),
            body=request.body,
            connect_timeout=request.connect_timeout,
            request_timeout=request.request_timeout,
            client_cert=request.client_cert,
            client_key=request.client_key,
            ca_certs=self.ca_certs,
            follow_redirects=False,
            user_agent=self.user_agent,
            streaming_callback=on_chunk,
        )
        where = _redacted_url(request.url)
        try:
            reply = await self._client().fetch(tornado_request, raise_error=False)
        except HTTPTimeoutError as exc:
            raise WxTimeoutError(f"Timed out talking to {where} ({exc.message})") from None
        except HTTPClientError as exc:  # 599: stream closed and similar
            raise TransportError(f"No usable answer from {where} ({exc.message})") from None
        except ssl.SSLError as exc:
            err = TransportError(f"TLS failed with {where} ({exc.reason or exc.__class__.__name__})")
            err.retryable = False  # a certificate problem does not fix itself
            raise err from None
        except (socket.timeout, TimeoutError):
            raise WxTimeoutError(f"Timed out talking to {where}") from None
        except OSError as exc:  # refused, reset, DNS failure
            raise TransportError(f"Cannot reach {where} ({exc.strerror or exc.__class__.__name__})") from None
        except WxPayError:
            raise
        if received > cap:
            raise MessageTooLargeError(f"Reply from {where} exceeds the {cap}-byte limit")
        headers = {name: value for name, value in reply.headers.get_all()}
        response = HttpResponse(status=reply.code, headers=headers, body=b"".join(chunks))
        raise_for_status(response, request.url)
        return response


# --- per-call observation ----------------------------------------------------


@dataclass(frozen=True)
class CallRecord:
    """One attempt at one WeChat endpoint, for per-endpoint success rates."""

    endpoint: str
    ok: bool
    latency_s: float
    error_code: str | None = None


Observer = Callable[[CallRecord], Any]


def error_code_of(exc: BaseException) -> str:
    """WeChat's own code when it gave one (err_code / errcode), else ours."""
    if isinstance(exc, WxPayError):
        if exc.err_code:
            return exc.err_code
        if exc.errcode is not None:
            return str(exc.errcode)
        return exc.code
    return exc.__class__.__name__


def observe(
    observer: Observer | None,
    logger: logging.Logger,
    endpoint: str,
    started: float,
    exc: BaseException | None,
) -> None:
    """Log the outcome at debug (endpoint, latency, outcome only) and tell the observer."""
    latency = max(0.0, time.monotonic() - started)
    code = None if exc is None else error_code_of(exc)
    if exc is None:
        logger.debug("wechat %s ok in %.3fs", endpoint, latency)
    else:
        logger.debug("wechat %s failed (%s) in %.3fs", endpoint, code, latency)
    if observer is None:
        return
    try:
        observer(CallRecord(endpoint=endpoint, ok=exc is None, latency_s=latency, error_code=code))
    except Exception:  # an observer must never break a payment
        logger.warning("observer failed for %s", endpoint, exc_info=True)
