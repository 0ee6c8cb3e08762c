"""The one place where domain errors become HTTP statuses, and shared guards.

Every API error is JSON ``{code, message}``; internal exception text never
reaches a client. Pages get security headers; the client IP is taken from
X-Forwarded-For only when the peer is a configured trusted proxy.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any

import tornado.web

from service.errors import ServiceError

log = logging.getLogger("wxpay_server.http")

STATUS_BY_KIND = {
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "upstream": 502,
    "unavailable": 503,
}

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self' https://res.wx.qq.com; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class BaseHandler(tornado.web.RequestHandler):
    """Shared behaviour; subclasses set ``api`` for JSON errors."""

    api = True
    _counted = False

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
    def services(self) -> Any:
        return self.settings["services"]

    @property
    def app_settings(self) -> Any:
        return self.settings["app_settings"]

    def set_default_headers(self) -> None:
        # nosniff, no Server header and HSTS are on every response: edge/headers.py
        self.set_header("Referrer-Policy", "strict-origin-when-cross-origin")
        self.set_header("X-Frame-Options", "DENY")

    # -- errors ---------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ServiceError):
            status_code = STATUS_BY_KIND.get(exc.kind, 400)
            self.set_status(status_code)
            body = exc.to_dict()
        elif isinstance(exc, tornado.web.HTTPError):
            body = {"code": f"http_{status_code}", "message": exc.reason or self._reason}
        else:
            body = {"code": "internal_error", "message": "Internal error; it has been logged"}
        if self.api:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps(body, ensure_ascii=False))
        else:
            self.render_error_page(status_code, body)

    def render_error_page(self, status_code: int, body: dict[str, Any]) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>{status_code}</title><main style='font-family:sans-serif;padding:2em'>"
            f"<h1>{tornado.escape.xhtml_escape(body['message'])}</h1>"
            f"<p>{tornado.escape.xhtml_escape(body['code'])}</p></main>"
        )

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[override]
        if isinstance(value, ServiceError):
            log.info("%s %s -> %s: %s", self.request.method, self.request.path, value.code, value.message)
        else:
            super().log_exception(typ, value, tb)

    # -- helpers --------------------------------------------------------------

    def client_ip(self) -> str:
        """The shopper's IP: the peer, unless the peer is a trusted proxy."""
        peer = self.request.remote_ip or "127.0.0.1"
        trusted = self.settings.get("trusted_proxies") or ()
        if not trusted or not _in_networks(peer, trusted):
            return peer
        hops = [h.strip() for h in self.request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer
            if not _in_networks(hop, trusted):
                return hop
        return peer

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

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, ensure_ascii=False, default=str))


class ApiHandler(BaseHandler):
    """The merchant API: bearer token, JSON in and out, no cookies so no XSRF."""

    def check_xsrf_cookie(self) -> None:
        return None

    def prepare(self) -> None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        tokens = self.settings.get("api_tokens") or ()
        ok = scheme.lower() == "bearer" and token and any(
            hmac.compare_digest(token.encode(), t.encode()) for t in tokens
        )
        if not ok:
            from service.errors import Unauthorized

            self.set_header("WWW-Authenticate", 'Bearer realm="wxpay-server"')
            raise Unauthorized("unauthorized", "A valid merchant API token is required (Authorization: Bearer …)")


class PageHandler(BaseHandler):
    api = False

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Security-Policy", PAGE_CSP)

    def cookie_options(self) -> dict[str, Any]:
        return {"httponly": True, "samesite": "Lax", "secure": self.settings.get("secure_cookies", False)}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _in_networks(ip: str, networks: Any) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)
