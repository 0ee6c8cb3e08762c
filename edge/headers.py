"""Headers every response carries, whoever wrote it.

An output transform runs on every response a Tornado Application sends:
our handlers, static files, the default 404, redirects, the errors Tornado
itself generates (405, XSRF 403, 304s) and, in sandbox mode, the mounted
simulator. So the rule has one owner and no handler can forget it:

- ``X-Content-Type-Options: nosniff``;
- no ``Server`` header (Tornado sets ``TornadoServer/<version>`` by default);
- ``Strict-Transport-Security`` when the server is only reached over https
  (live mode).

Answers the HTTP/1 layer writes before any application runs (Tornado's bare
``400 Bad Request`` to a malformed request, the connection cap's 503) carry
no body to sniff and no version either.
"""
from __future__ import annotations

from tornado import httputil
from tornado.web import OutputTransform

HSTS = "max-age=31536000"  # one year; subdomains are the merchant's own business


def header_values(*, hsts: bool) -> dict[str, str]:
    """What every response carries; also for answers written below the application."""
    values = {"X-Content-Type-Options": "nosniff"}
    if hsts:
        values["Strict-Transport-Security"] = HSTS
    return values


def security_headers(*, hsts: bool) -> type[OutputTransform]:
    """The transform to hand to ``Application.add_transform``."""
    values = header_values(hsts=hsts)

    class SecurityHeaders(OutputTransform):
        def transform_first_chunk(
            self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
        ) -> tuple[int, httputil.HTTPHeaders, bytes]:
            headers.update(values)
            if "Server" in headers:
                del headers["Server"]
            return status_code, headers, chunk

    return SecurityHeaders
