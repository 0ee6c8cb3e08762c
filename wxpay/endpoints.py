"""Where WeChat lives: three base URLs, or one when a simulator serves them all."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError


def _clean_base(url: str, name: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an absolute http(s) URL without query, got {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True)
class Endpoints:
    """Base URLs for Pay V2, the OAuth authorize page and the JSON APIs.

    WeChat's paths are appended unchanged, so a stand-in that serves them
    under one prefix (``Endpoints.single("http://127.0.0.1:8000/_wechat")``)
    needs no other configuration.
    """

    pay_base: str = "https://api.mch.weixin.qq.com"
    open_base: str = "https://open.weixin.qq.com"
    api_base: str = "https://api.weixin.qq.com"

    def __post_init__(self) -> None:
        for name in ("pay_base", "open_base", "api_base"):
            object.__setattr__(self, name, _clean_base(getattr(self, name), name))

    @classmethod
    def single(cls, base_url: str) -> "Endpoints":
        return cls(pay_base=base_url, open_base=base_url, api_base=base_url)

    def pay(self, path: str) -> str:
        return f"{self.pay_base}/{path.lstrip('/')}"

    def open(self, path: str) -> str:
        return f"{self.open_base}/{path.lstrip('/')}"

    def api(self, path: str) -> str:
        return f"{self.api_base}/{path.lstrip('/')}"
