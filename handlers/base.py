"""The one place where domain errors become HTTP statuses, and shared guards.

Every API error is JSON ``{code, message}``; internal exception text never
reaches a client. Pages get security headers; the client IP is taken from
X-Forwarded-For only when the peer is a configured trusted proxy.
"""
from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

import tornado.web
from tornado import httputil

from edge.sources import forwarded_address, parse_address, source_of
from service.container import Services
from service.errors import ServiceError

log = logging.getLogger("wxpay_server.http")

STATUS_BY_KIND = {
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "rate_limited": 429,
    "upstream": 502,
    "unavailable": 503,
}

# Refusals Tornado makes before any handler code runs (its HTTPError statuses).
HTTP_ERRORS = {
    400: ("invalid_encoding", "A query or path argument is not valid UTF-8"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Nothing here; the merchant API is described at /api/openapi.json"),
    413: ("body_too_large", "The request body is larger than the server accepts"),
}

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self' https://res.wx.qq.com; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


JSON_TYPE = "application/json; charset=utf-8"


class BaseHandler(tornado.web.RequestHandler):
    """Shared behaviour; subclasses set ``api`` for JSON errors."""

    api = True
    _counted = False
    error_code: str | None = None  # the code of the error answered, for the access log line
    # What every answer of this handler starts with (a subclass extends it);
    # nosniff, no Server header and HSTS are on every response: edge/headers.py
    default_headers: dict[str, str] = {
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",
    }

    def initialize(self) -> None:
        inflight = self.settings.get("inflight")
        if inflight is not None:
            inflight.enter()
            self._counted = True

    def on_finish(self) -> None:
        self._leave()

    def on_connection_close(self) -> None:
        self._leave()
        super().on_connection_close()

    def _leave(self) -> None:
        if self._counted:
            self._counted = False
            self.settings["inflight"].leave()

    @property
    def services(self) -> Services:
        return self.settings["services"]

    @property
    def app_settings(self) -> Any:
        return self.settings["app_settings"]

    def clear(self) -> None:
        """Tornado's reset, in one step: its defaults (less the ``Server``
        header, which edge/headers.py drops anyway), the Date formatted once
        a second rather than per answer, and ``default_headers`` (constants,
        so not re-validated). Subclasses may still add to
        ``set_default_headers``."""
        self._headers = httputil.HTTPHeaders(
            {"Content-Type": "text/html; charset=UTF-8", "Date": http_date(), **self.default_headers}
        )
        self.set_default_headers()
        self._write_buffer = []
        self._status_code = 200
        self._reason = "OK"

    # -- errors ---------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ServiceError):
            status_code = STATUS_BY_KIND.get(exc.kind, 400)
            self.set_status(status_code)
            body = exc.to_dict()
            if isinstance(exc.details.get("retry_after_s"), int):
                self.set_header("Retry-After", str(exc.details["retry_after_s"]))
        elif status_code < 500:
            body = self.http_error_body(status_code)
        else:
            body = {"code": "internal_error", "message": "Internal error; it has been logged"}
        self.error_code = str(body.get("code"))
        if self.api:
            self._headers["Content-Type"] = JSON_TYPE
            self._headers["Cache-Control"] = "no-store"
            self.finish(json_bytes(body))
        else:
            self.render_error_page(status_code, body)

    def http_error_body(self, status_code: int) -> dict[str, Any]:
        """What Tornado itself refuses (no route, no such method, undecodable
        arguments), in the same ``{code, message}`` shape as ours."""
        if status_code == 405:
            allowed = self.allowed_methods()
            self.set_header("Allow", ", ".join(allowed))
            return {
                "code": "method_not_allowed",
                "message": f"{self.request.method} is not allowed here; allowed: {', '.join(allowed) or 'none'}",
            }
        code, message = HTTP_ERRORS.get(status_code, (f"http_{status_code}", self._reason))
        return {"code": code, "message": message}

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this handler implements (for ``Allow`` and the API document)."""
        base = tornado.web.RequestHandler
        return [m for m in cls.SUPPORTED_METHODS if getattr(cls, m.lower(), None) is not getattr(base, m.lower(), None)]

    def check_xsrf_cookie(self) -> None:
        """Tornado's check, refusing with a code the page's script can act on."""
        try:
            super().check_xsrf_cookie()
        except tornado.web.HTTPError:
            from service.errors import Forbidden

            raise Forbidden(
                "xsrf_invalid", "The page's form token (XSRF) is missing or wrong; reload the page and try again"
            ) from None

    def render_error_page(self, status_code: int, body: dict[str, Any]) -> None:
        """The shopper's (or the admin's) error page: handlers/error_pages.py says what it shows."""
        from .error_pages import page_values

        retry_after = (body.get("details") or {}).get("retry_after_s")
        values = page_values(
            status=status_code, code=str(body.get("code") or f"http_{status_code}"),
            lang_query=b"".join(self.request.query_arguments.get("lang", [])[-1:]).decode("utf-8", "replace"),
            accept_language=self.request.headers.get("Accept-Language"),
            method=self.request.method or "GET", uri=self.request.uri or "/",
            retry_path=getattr(self, "retry_path", None),
            retry_after_s=retry_after if isinstance(retry_after, int) else None,
            shop_name=self.app_settings.shop.name,
        )
        self.set_header("Content-Security-Policy", PAGE_CSP)  # whichever handler failed
        self.set_header("Cache-Control", "no-store")
        self.set_header("Vary", "Accept-Language")
        self.render("error.html", **values)

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[override]
        if isinstance(value, ServiceError):
            # The access log's line names the code (within its budget: handlers/access_log.py).
            log.debug("%s %s -> %s: %s", self.request.method, self.request.path, value.code, value.message)
        else:
            super().log_exception(typ, value, tb)

    # -- helpers --------------------------------------------------------------

    def client_ip(self) -> str:
        """The shopper's IP: the peer, unless the peer is a trusted proxy.

        Canonical text (IPv4-mapped IPv6 as IPv4, no zone id), so that one
        address has one spelling wherever it is counted or sent to WeChat;
        a hop may carry a port (``192.0.2.1:4711``, ``[2001:db8::1]:4711``)."""
        raw = self.request.remote_ip or "127.0.0.1"
        addr = parse_address(raw)
        peer = str(addr) if addr is not None else raw
        trusted = self.settings.get("trusted_proxies") or ()
        if not trusted or not _in_networks(peer, trusted):
            return peer
        hops = [h.strip() for h in self.request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            hop_addr = forwarded_address(hop)
            if hop_addr is None:
                return peer
            if not any(hop_addr in net for net in trusted):
                return str(hop_addr)
        return peer

    def client_source(self) -> str:
        """What per-source limits count this request under (an IPv4 address
        or an IPv6 /64: ``edge.sources.source_of``)."""
        return source_of(self.client_ip())

    def json_body(self) -> Any:
        """Strict JSON: no NaN/Infinity, and nesting deep enough to exhaust
        the parser's recursion is a 400, not a 500."""
        try:
            return json.loads(self.request.body or b"null", parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):
            from service.errors import InvalidInput

            raise InvalidInput("invalid_json", "The request body must be valid JSON") from None

    def compute_etag(self) -> str | None:
        # JSON answers are no-store: a validator would never be used.
        return None if self._headers.get("Cache-Control") == "no-store" else super().compute_etag()

    def check_etag_header(self) -> bool:
        # Without an ETag nothing can match (Tornado's answer too), so the
        # request's If-None-Match is not parsed.
        return "Etag" in self._headers and super().check_etag_header()

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self._headers["Content-Type"] = JSON_TYPE  # constants: set without Tornado's re-check
        self._headers["Cache-Control"] = "no-store"
        self.finish(json_bytes(data))


class ApiHandler(BaseHandler):
    """The merchant API: bearer token, JSON in and out, no cookies so no XSRF."""

    # The query arguments each method reads; any other, or one given twice, is
    # refused: a typo such as ?stauts=paid must not list every checkout.
    query_params: dict[str, frozenset[str]] = {}

    def check_xsrf_cookie(self) -> None:
        return None

    def check_query(self) -> None:
        from service.errors import InvalidInput
        from service.validation import printable

        allowed = self.query_params.get(self.request.method or "", frozenset())
        for name, values in self.request.query_arguments.items():
            if name not in allowed:
                shown = printable(name, 64)
                raise InvalidInput("unknown_parameter", f"Unknown query parameter: {shown}", parameter=shown)
            if len(values) > 1:
                raise InvalidInput("repeated_parameter", f"The query parameter {name} is given more than once",
                                   parameter=name)

    def query_arg(self, name: str) -> str | None:
        """A query argument exactly as sent: Tornado strips whitespace and
        turns control characters into spaces, which would let "12\\n", " paid"
        or "ref\\x0f" pass as "12", "paid" and "ref "."""
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        return self.decode_argument(values[-1], name=name)

    def prepare(self) -> None:
        """A presented token is an attempt: admitted by the lockout
        (handlers/lockout.py) before it is compared, counted when wrong."""
        from service.errors import RateLimited, Unauthorized

        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            source = self.client_source()
            lockout = self.settings["api_lockout"]
            refusal = lockout.admit(source)
            if refusal is not None:
                raise RateLimited(
                    "too_many_token_attempts",
                    f"Too many requests with a wrong API token from your address; try again in {refusal.retry_after} s",
                    retry_after_s=refusal.retry_after,
                )
            tokens = self.settings.get("api_tokens") or ()
            if any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
                lockout.succeeded(source)
                self.check_query()
                return
            lockout.failed(source)
        self.set_header("WWW-Authenticate", 'Bearer realm="wxpay-server"')
        raise Unauthorized("unauthorized", "A valid merchant API token is required (Authorization: Bearer …)")


class PageHandler(BaseHandler):
    api = False
    default_headers = {**BaseHandler.default_headers, "Content-Security-Policy": PAGE_CSP}

    def cookie_options(self) -> dict[str, Any]:
        return {"httponly": True, "samesite": "Lax", "secure": self.settings.get("secure_cookies", False)}


_JSON = json.JSONEncoder(ensure_ascii=False, default=str)  # one encoder, not one per json.dumps call


def json_bytes(data: Any) -> bytes:
    """UTF-8 JSON that cannot fail to encode: a lone surrogate that slipped
    into a value is written as its ``\\uXXXX`` escape, which is still JSON."""
    return _JSON.encode(data).encode("utf-8", "backslashreplace")


_date = (0, "")


def http_date() -> str:
    """The ``Date`` header's value, formatted once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, httputil.format_timestamp(now))
    return _date[1]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _in_networks(ip: str, networks: Any) -> bool:
    addr = parse_address(ip)
    return addr is not None and any(addr in net for net in networks)
