"""Where APIv3 lives: V2's ``pay_base`` (WeChat serves both versions on one host).

APIv3 signs the path *as it goes on the wire*, so a base URL with a path
prefix (a simulator mounted at ``http://127.0.0.1:8000/_wechat``) makes the
prefix part of every signed path. The same base is the only place our
``Authorization`` may go: a bill's ``download_url`` naming any other origin
or path is refused before any request is made.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..endpoints import Endpoints
from ..errors import ProtocolError

__all__ = ["V3Endpoints"]


@dataclass(frozen=True)
class V3Endpoints:
    """The APIv3 base URL; build with ``V3Endpoints.from_endpoints(endpoints)`` to share V2's ``pay_base``."""

    base: str = Endpoints.pay_base

    def __post_init__(self) -> None:
        # One owner for the base URL's rules: Endpoints cleans it.
        object.__setattr__(self, "base", Endpoints(pay_base=self.base).pay_base)

    @classmethod
    def from_endpoints(cls, endpoints: Endpoints) -> "V3Endpoints":
        return cls(endpoints.pay_base)

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the base."""
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def prefix(self) -> str:
        """The base's own path ('' for WeChat itself)."""
        return urlsplit(self.base).path.rstrip("/")

    def path(self, api_path: str) -> str:
        """A WeChat path (``/v3/...?query``) as it goes on the wire under this base: what gets signed."""
        if not api_path.startswith("/v3/"):
            raise ValueError(f"APIv3 paths start with /v3/, got {api_path[:40]!r}")
        return self.prefix + api_path

    def url(self, wire_path: str) -> str:
        """The absolute URL of a path returned by :meth:`path`."""
        return self.origin + wire_path

    def api_path_of(self, download_url: str) -> str:
        """The WeChat path (``/v3/…?query``) of a bill ``download_url``, if it points at this base.

        Step 2 of a bill download carries our ``Authorization``; a URL on
        another origin (or outside the base's path) would hand it to a
        stranger, so it is refused with ``ProtocolError`` ``foreign_download_url``.
        """
        parts = urlsplit(download_url)
        same_origin = f"{parts.scheme}://{parts.netloc}".lower() == self.origin.lower()
        inside = parts.path.startswith(self.prefix + "/v3/")
        if not (same_origin and inside) or parts.fragment or parts.username or parts.password:
            shown = f"{parts.scheme}://{parts.netloc}{parts.path}"[:120]
            raise ProtocolError(
                f"The bill download_url points at {shown}, not the configured WeChat Pay host "
                f"{self.base}: refused, it would receive our Authorization. Check the configured "
                "base URL, or request the bill again",
                code="foreign_download_url",
            )
        return parts.path[len(self.prefix):] + (f"?{parts.query}" if parts.query else "")
