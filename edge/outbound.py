"""Our own outbound HTTP: one POST, an answer or the reason there was none.

The server's webhooks go out through this (``service/webhooks.py`` knows
only its ``post``); redirects are not followed (a receiver that moved must
be reconfigured, not guessed), and every failure becomes a short reason
instead of an exception.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from tornado.httpclient import AsyncHTTPClient, HTTPRequest


@dataclass(frozen=True)
class Posted:
    status: int | None  # None: no answer at all
    error: str | None = None  # None: a 2xx


class TornadoPoster:
    """POSTs with Tornado's client; ``post`` never raises."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> Posted:
        request = HTTPRequest(
            url, method="POST", body=body, headers=dict(headers), follow_redirects=False,
            connect_timeout=timeout, request_timeout=timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except Exception as exc:  # DNS, refused connection, TLS …
            return Posted(None, f"unreachable: {exc.__class__.__name__}")
        if response.code == 599:
            return Posted(None, f"unreachable: {response.error}"[:200])
        if not 200 <= response.code < 300:
            return Posted(response.code, f"HTTP {response.code}")
        return Posted(response.code)
