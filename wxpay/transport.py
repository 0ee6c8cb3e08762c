"""The one seam between the protocol code and the network.

Everything in :mod:`wxpay` builds an :class:`HttpRequest` and reads an
:class:`HttpResponse`; only :class:`TornadoTransport` touches a socket. Tests
(and other event loops) swap in any object with an async ``send``, or wrap a
plain async function with :class:`FunctionTransport`.
"""
from __future__ import annotations

import logging
import os
import re
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
    # APIv3 answers errors as 4xx/5xx with a JSON body the caller must read:
    # with any_status the transport returns every status instead of raising.
    any_status: bool = False

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


_QUERY = re.compile(r"\?\S*")


class _CurlLogRedactor(logging.Filter):
    """Tornado's curl client logs every URL at DEBUG, and with DEBUG on it
    also turns on curl's own trace (request lines and bodies). Query strings
    carry app secrets and OAuth codes; bodies carry shoppers' details."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "%s %r":  # curl's trace of a request body
            return False
        text = record.getMessage()
        record.msg, record.args = _QUERY.sub("?…", text), ()
        return True


def _redact_curl_log() -> None:
    logger = logging.getLogger("tornado.curl_httpclient")
    if not any(isinstance(f, _CurlLogRedactor) for f in logger.filters):
        logger.addFilter(_CurlLogRedactor())


def curl_available() -> bool:
    try:
        import pycurl  # noqa: F401
    except ImportError:
        return False
    return True


# libcurl's error numbers (CURLE_*) that CurlError carries.
_CURL_TIMEOUT = 28
_CURL_CANNOT_RESOLVE = 6
_CURL_CANNOT_CONNECT = 7
_CURL_TLS = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})


class TornadoTransport:
    """The only class in :mod:`wxpay` that does I/O.

    Uses its own Tornado HTTP client per event loop (not Tornado's shared
    one, whose 10 slots anything else in the process may fill: a burst of
    inbound notifies, each waiting for its orderquery, once starved the
    orderqueries into timeouts), with explicit connect and request timeouts,
    the merchant certificate for mutual TLS when the request carries one,
    and a cap on how much it will read.

    ``client="curl"`` (the default whenever pycurl is installed) is
    Tornado's libcurl client: it keeps connections to WeChat alive between
    calls, which saves a TCP and TLS handshake per call and about half the
    client's CPU. ``"simple"`` is Tornado's own client, one connection per
    call, for where pycurl cannot be installed.
    """

    def __init__(
        self,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ca_certs: str | None = None,
        user_agent: str = "wxpay-server/0.1",
        max_clients: int = 100,
        client: str = "auto",
    ) -> None:
        if client == "auto":
            client = "curl" if curl_available() else "simple"
        if client not in ("curl", "simple"):
            raise ConfigError(f"HTTP client must be 'curl', 'simple' or 'auto', not {client!r}")
        if client == "curl" and not curl_available():
            raise ConfigError("HTTP client 'curl' needs pycurl: pip install pycurl")
        self.client = client
        self.max_response_bytes = max_response_bytes
        self.ca_certs = ca_certs
        self.user_agent = user_agent
        self.max_clients = max_clients
        self._clients: dict[Any, Any] = {}

    def _client(self) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [k for k in self._clients if k.is_closed()]:
                del self._clients[old]
            if self.client == "curl":
                from tornado.curl_httpclient import CurlAsyncHTTPClient as cls

                _redact_curl_log()
            else:
                from tornado.simple_httpclient import SimpleAsyncHTTPClient as cls
            client = self._clients[loop] = cls(force_instance=True, max_clients=self.max_clients)
        return client

    def close(self) -> None:
        """Close the clients (and so their kept-alive connections)."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

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
        except HTTPClientError as exc:
            if exc.code != 599:  # raise_error=False: never raised for a status
                raise
            if isinstance(exc, HTTPTimeoutError):
                raise WxTimeoutError(f"Timed out talking to {where} ({exc.message})") from None
            errno = getattr(exc, "errno", None)  # set by the curl client
            if errno is None:  # simple client: stream closed and similar
                raise TransportError(f"No usable answer from {where} ({exc.message})") from None
            raise _curl_error(errno, str(exc.message), where) from None
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
        if not request.any_status:
            raise_for_status(response, request.url)
        return response


def _curl_error(errno: int, message: str, where: str) -> WxPayError:
    if errno == _CURL_TIMEOUT:
        return WxTimeoutError(f"Timed out talking to {where} ({message})")
    if errno in _CURL_TLS:
        err = TransportError(f"TLS failed with {where} ({message})")
        err.retryable = False  # a certificate problem does not fix itself
        return err
    if errno in (_CURL_CANNOT_RESOLVE, _CURL_CANNOT_CONNECT):
        return TransportError(f"Cannot reach {where} ({message})")
    return TransportError(f"No usable answer from {where} ({message})")


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
