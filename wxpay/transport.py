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
from typing import Any, Awaitable, Callable, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from . import causes
from .errors import ConfigError, MessageTooLargeError, TransportError, WxPayError, WxTimeoutError
from .retry import RetryPolicy, Sleep, run_with_retry

T = TypeVar("T")

log = logging.getLogger("wxpay.transport")

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_REQUEST_TIMEOUT = 10.0
# Bills for a busy day run to megabytes; nothing else WeChat sends comes close.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


def _redacted_url(url: str) -> str:
    """scheme://host/path only: queries carry secrets and OAuth codes."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{host_of(url)}{parts.path}" + ("?…" if parts.query else "")


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``: never a user name, a path or a query string."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


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
    host = host_of(url) if url else None
    if status >= 500:
        raise TransportError(f"WeChat answered HTTP {status}{where}; retry later", status=status, host=host)
    err = TransportError(
        f"Unexpected HTTP {status}{where}; check the configured WeChat base URL",
        status=status, host=host,
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

        where, host = _redacted_url(request.url), host_of(request.url)
        for path in (request.client_cert, request.client_key):
            if path is None:
                continue
            if not os.path.isfile(path):
                raise ConfigError(f"Merchant certificate file not found: {path}",
                                  cause=causes.TLS_CLIENT_CERTIFICATE, host=host)
            if not os.access(path, os.R_OK):
                raise ConfigError(f"Merchant certificate file not readable by this user: {path}",
                                  cause=causes.TLS_CLIENT_CERTIFICATE, host=host)

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

        handles: list[Any] = []  # the curl handle, to ask it the socket's errno after a failure
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
            prepare_curl_callback=handles.append if self.client == "curl" else None,
        )
        try:
            reply = await self._client().fetch(tornado_request, raise_error=False)
        except HTTPClientError as exc:
            if exc.code != 599:  # raise_error=False: never raised for a status
                raise
            curl_errno = getattr(exc, "errno", None)  # set by the curl client
            if curl_errno is not None:
                cause = causes.from_curl(curl_errno, str(exc.message), _curl_os_errno(handles))
            else:  # simple client: its own timeouts and closed streams
                cause = causes.from_tornado_message(str(exc.message), timeout=isinstance(exc, HTTPTimeoutError))
            raise _failure(cause, where, host, str(exc.message)) from None
        except OSError as exc:  # simple client: refused, reset, DNS, TLS (ssl.SSLError is an OSError)
            raise _failure(causes.from_os_error(exc), where, host, _os_text(exc)) from None
        except WxPayError:
            raise
        if received > cap:
            raise MessageTooLargeError(f"Reply from {where} exceeds the {cap}-byte limit", host=host)
        headers = {name: value for name, value in reply.headers.get_all()}
        response = HttpResponse(status=reply.code, headers=headers, body=b"".join(chunks))
        if not request.any_status:
            raise_for_status(response, request.url)
        return response


def _curl_os_errno(handles: list[Any]) -> int | None:
    """The socket's errno of the failed transfer: curl's message no longer says "refused"."""
    if not handles:
        return None
    curl = handles[-1]
    if getattr(curl, "info", None) is not None:  # already carrying the next request
        return None
    try:
        import pycurl

        return int(curl.getinfo(pycurl.OS_ERRNO)) or None
    except Exception:  # pycurl's own error, a closed handle: the message must do
        return None


def _os_text(exc: OSError) -> str:
    import ssl

    if isinstance(exc, ssl.SSLError):
        return str(getattr(exc, "verify_message", None) or exc.reason or exc)
    return exc.strerror or str(exc) or exc.__class__.__name__


_SAYS = {
    causes.REFUSED: "Connection refused by",
    causes.DNS: "Cannot resolve the host of",
    causes.UNREACHABLE: "No route to",
    causes.CONNECT_TIMEOUT: "Timed out connecting to",
    causes.READ_TIMEOUT: "Timed out waiting for the answer of",
    causes.QUEUE_TIMEOUT: "Timed out waiting for a free connection to",
    causes.TIMEOUT: "Timed out talking to",
    causes.RESET: "Connection reset by",
    causes.CLOSED: "Connection closed without a whole answer by",
    causes.TLS: "TLS failed with",
    causes.TLS_CERTIFICATE: "The TLS certificate did not verify for",
    causes.TLS_CLIENT_CERTIFICATE: "The merchant certificate was not usable with",
}


def _failure(cause: str, where: str, host: str, detail: str) -> WxPayError:
    """The one error for a failure on the wire: its class from the cause, its words for the operator."""
    detail = _QUERY.sub("?…", detail)[:300]
    if cause in (causes.MALFORMED_REPLY,):
        from .errors import ProtocolError

        return ProtocolError(f"Not an HTTP answer from {where} ({detail})", cause=cause, host=host)
    if cause == causes.TOO_LARGE:
        return MessageTooLargeError(f"Reply from {where} is too large ({detail})", cause=cause, host=host)
    says = _SAYS.get(cause, "No usable answer from")
    cls = WxTimeoutError if cause.endswith("timeout") else TransportError
    err = cls(f"{says} {where} ({detail})", cause=cause, host=host)
    if causes.is_tls(cause) or cause in (causes.CONFIG, causes.INTERNAL):
        err.retryable = False  # a certificate problem does not fix itself
    return err


# --- per-call observation ----------------------------------------------------


@dataclass(frozen=True)
class CallRecord:
    """One attempt at one WeChat endpoint, for per-endpoint success rates
    and, when it failed, why (``cause``: :mod:`wxpay.causes`), where
    (``host``) and the operator's words (``detail``: no query string)."""

    endpoint: str
    ok: bool
    latency_s: float
    error_code: str | None = None
    cause: str | None = None
    host: str | None = None
    detail: str | None = None


Observer = Callable[[CallRecord], Any]

DETAIL_CHARS = 300


def error_code_of(exc: BaseException) -> str:
    """WeChat's own code when it gave one (err_code / errcode), else ours."""
    if isinstance(exc, WxPayError):
        if exc.err_code:
            return exc.err_code
        if exc.errcode is not None:
            return str(exc.errcode)
        return exc.code
    return exc.__class__.__name__


def detail_of(exc: BaseException) -> str:
    """What an operator reads about a failure: our message (never a query
    string), or only the class of an exception that is not ours."""
    if isinstance(exc, WxPayError):
        return _QUERY.sub("?…", exc.message)[:DETAIL_CHARS]
    return exc.__class__.__name__


def observe(
    observer: Observer | None,
    logger: logging.Logger,
    endpoint: str,
    started: float,
    exc: BaseException | None,
    *,
    host: str | None = None,
) -> None:
    """Log one attempt at DEBUG (endpoint, host, latency, outcome) and tell the observer."""
    latency = max(0.0, time.monotonic() - started)
    record = CallRecord(endpoint=endpoint, ok=exc is None, latency_s=latency, host=host)
    if exc is None:
        logger.debug("wechat %s attempt ok: host=%s in %.3fs", endpoint, host, latency)
    else:
        record = CallRecord(
            endpoint=endpoint, ok=False, latency_s=latency, error_code=error_code_of(exc),
            cause=causes.of(exc), host=getattr(exc, "host", None) or host, detail=detail_of(exc),
        )
        logger.debug("wechat %s attempt failed: cause=%s host=%s code=%s in %.3fs",
                     endpoint, record.cause, record.host, record.error_code, latency)
    if observer is None:
        return
    try:
        observer(record)
    except Exception:  # an observer must never break a payment
        logger.warning("observer failed for %s", endpoint, exc_info=True)


async def observed_call(
    endpoint: str,
    host: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    observer: Observer | None,
    logger: logging.Logger,
    policy: RetryPolicy | None = None,
    retry: bool = False,
    sleep: Sleep | None = None,
) -> T:
    """One call to WeChat: its attempts (repeated per ``policy`` when
    ``retry``), each observed and logged at DEBUG, and one INFO line for the
    call when it fails for good, or succeeds only after a failed attempt,
    so the log says why WeChat failed without a line per retry."""
    started = time.monotonic()
    failed: list[BaseException] = []

    async def observed() -> T:
        attempt_started = time.monotonic()
        try:
            result = await attempt()
        except Exception as exc:
            failed.append(exc)
            observe(observer, logger, endpoint, attempt_started, exc, host=host)
            raise
        observe(observer, logger, endpoint, attempt_started, None, host=host)
        return result

    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    try:
        result = await run_with_retry(observed, policy=policy or RetryPolicy(), enabled=retry, **kwargs)
    except Exception as exc:
        latency = time.monotonic() - started
        logger.info(
            "wechat %s failed: cause=%s host=%s latency=%.3fs attempts=%d code=%s: %s",
            endpoint, causes.of(exc), getattr(exc, "host", None) or host, latency, max(1, len(failed)),
            error_code_of(exc), detail_of(exc),
        )
        raise
    if failed:
        first = failed[0]
        logger.info(
            "wechat %s ok after %d attempts: host=%s latency=%.3fs (first failure: cause=%s code=%s)",
            endpoint, len(failed) + 1, getattr(first, "host", None) or host, time.monotonic() - started,
            causes.of(first), error_code_of(first),
        )
    return result
