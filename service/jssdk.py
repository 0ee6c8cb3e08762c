"""Signed ``wx.config`` objects for pages that use WeChat's JSSDK."""
from __future__ import annotations

import re
from typing import Any

from wxpay import payloads

from .errors import InvalidInput
from .tokens import TokenService
from .validation import http_url, matches

API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
MAX_APIS = 50
PAGE_URL_MAX = 1024


class JssdkService:
    def __init__(self, tokens: TokenService, appid: str) -> None:
        self.tokens = tokens
        self.appid = appid

    async def config(self, page_url: str, js_api_list: list[str]) -> dict[str, Any]:
        """``wx.config`` for ``page_url``; the page's domain must be a JS-safe
        domain in the Official Account console, which WeChat checks, not us."""
        if http_url(page_url, max_length=PAGE_URL_MAX) is None:
            raise InvalidInput(
                "invalid_page_url",
                f"url must be the absolute http(s) URL (at most {PAGE_URL_MAX} ASCII characters) of the page calling wx.config",
            )
        if not js_api_list or len(js_api_list) > MAX_APIS or not all(matches(API_NAME, a) for a in js_api_list):
            raise InvalidInput("invalid_js_api_list", f"jsApiList must be 1-{MAX_APIS} comma-separated JSSDK API names")
        ticket = await self.tokens.jsapi_ticket()
        return payloads.wx_config(self.appid, ticket, page_url, js_api_list=js_api_list).to_dict()
