"""A tiny cookie-keeping HTTP client over real loopback HTTP (no mocks)."""
from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urljoin

from tornado.httpclient import AsyncHTTPClient, HTTPResponse

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x18003237) NetType/WIFI Language/zh_CN"
)
MOBILE_UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


class Browser:
    def __init__(self, base: str, user_agent: str = DESKTOP_UA) -> None:
        self.base = base
        self.user_agent = user_agent
        self.cookies: dict[str, str] = {}
        self.client = AsyncHTTPClient()

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | str | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        xsrf: bool = False,
    ) -> HTTPResponse:
        url = urljoin(self.base + "/", url)
        hdrs = {"User-Agent": self.user_agent, **(headers or {})}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if json_body is not None:
            body = json.dumps(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        if xsrf and "_xsrf" in self.cookies:
            hdrs["X-XSRFToken"] = self.cookies["_xsrf"]
        if method in ("POST", "PUT") and body is None:
            body = b""
        response = await self.client.fetch(
            url, method=method, body=body, headers=hdrs, follow_redirects=False, raise_error=False, request_timeout=20
        )
        for raw in response.headers.get_list("Set-Cookie"):
            jar = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if morsel["expires"] and "1970" in morsel["expires"] or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    async def get(self, url: str, **kw: Any) -> HTTPResponse:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> HTTPResponse:
        return await self.request("POST", url, **kw)

    async def follow(self, url: str, *, limit: int = 10) -> tuple[HTTPResponse, list[str]]:
        """GET and follow redirects by hand, keeping cookies; returns the hops."""
        hops = [url]
        response = await self.get(url)
        while response.code in (301, 302, 303, 307) and len(hops) < limit:
            url = urljoin(response.effective_url, response.headers["Location"])
            hops.append(url)
            response = await self.get(url)
        return response, hops


def as_json(response: HTTPResponse) -> Any:
    return json.loads(response.body)
