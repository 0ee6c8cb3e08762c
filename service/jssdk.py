"""Signed ``wx.config`` objects for pages that use WeChat's JSSDK."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from wxpay import payloads

from .errors import InvalidInput

_API = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


class JssdkService:
    def __init__(self, tokens: Any, appid: str) -> None:
        self.tokens = tokens
        self.appid = appid

    async def config(self, page_url: str, js_api_list: list[str]) -> dict[str, Any]:
        """``wx.config`` for ``page_url``; the page's domain must be a JS-safe
        domain in the Official Account console, which WeChat checks, not us."""
        parts = urlsplit(page_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname or len(page_url) > 1024 or _CONTROL.search(page_url):
            raise InvalidInput("invalid_page_url", "url must be the absolute http(s) URL of the page calling wx.config")
        if not js_api_list or len(js_api_list) > 50 or not all(_API.match(a) for a in js_api_list):
            raise InvalidInput("invalid_js_api_list", "jsApiList must be comma-separated JSSDK API names")
        ticket = await self.tokens.jsapi_ticket()
        return payloads.wx_config(self.appid, ticket, page_url, js_api_list=js_api_list).to_dict()
