"""Clients that reach the server the way shoppers and WeChat do: over TLS to nginx."""
from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.server.browser import DESKTOP_UA, Browser


class _Fetcher:
    """Tornado's client with nginx's test certificate trusted and a chosen source address."""

    def __init__(self, ca: Path, source: str) -> None:
        self.ca, self.source = str(ca), source

    def fetch(self, url: str, **kw: Any) -> "asyncio.Future[HTTPResponse]":
        return AsyncHTTPClient().fetch(url, ca_certs=self.ca, network_interface=self.source, **kw)


class Via(Browser):
    """tests/server's cookie-keeping Browser, from ``source`` (any 127.0.0.0/8 address:
    the shopper's own address, as nginx sees it)."""

    def __init__(self, base: str, user_agent: str = DESKTOP_UA, *, ca: Path, source: str = "127.0.0.1") -> None:
        super().__init__(base, user_agent)
        self.client = _Fetcher(ca, source)  # type: ignore[assignment]


async def raw_tls(port: int, ca: Path, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare TLS connection to nginx, for clients that misbehave byte by byte."""
    context = ssl.create_default_context(cafile=str(ca))
    return await asyncio.open_connection("127.0.0.1", port, ssl=context, local_addr=(source, 0))


async def until_closed(reader: asyncio.StreamReader, limit_s: float) -> bytes:
    """Everything the peer sends until it closes (bounded by ``limit_s``)."""
    received = b""
    try:
        async with asyncio.timeout(limit_s):
            while chunk := await reader.read(65536):
                received += chunk
    except (ConnectionError, ssl.SSLError):
        pass  # a reset or an unclean TLS close is a close too
    return received


def established_on(port: int) -> int:
    """TCP connections open to ``port`` on 127.0.0.1, counted on the listening side (/proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
            count += 1
    return count
