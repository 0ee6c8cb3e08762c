"""The shopper's side: the pay page, silent OAuth, prepay and the status poll."""
from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import urlsplit

import segno

from service.errors import InvalidInput
from service.oauth import safe_next

from .base import BaseHandler, PageHandler

OPENID_COOKIE = "wx_openid"
OAUTH_COOKIE = "wx_oauth"
_MOBILE = re.compile(r"iPhone|iPad|iPod|Android|Mobile|HarmonyOS", re.I)


def client_env(user_agent: str) -> str:
    """Where the page runs: inside WeChat, a mobile browser, or a desktop."""
    if "MicroMessenger" in user_agent:
        return "wechat"
    return "mobile" if _MOBILE.search(user_agent) else "desktop"


def default_trade_type(env: str) -> str:
    return {"wechat": "JSAPI", "mobile": "MWEB"}.get(env, "NATIVE")


class PayPageHandler(PageHandler):
    async def get(self, checkout_id: str) -> None:
        checkout = await self.services.checkouts.get(checkout_id)
        env = client_env(self.request.headers.get("User-Agent", ""))
        if env == "wechat" and not self.get_signed_cookie(OPENID_COOKIE, max_age_days=30):
            url, state = self.services.oauth.begin()
            self.set_signed_cookie(
                OAUTH_COOKIE, f"{state}|{self.request.uri}", expires_days=None, **self.cookie_options()
            )
            self.redirect(url)
            return
        self.xsrf_token  # sets the XSRF cookie the page's POST will echo
        self.render(
            "pay.html",
            checkout=checkout,
            shop_name=self.app_settings.shop.name,
            page_config=json.dumps(
                {
                    "checkoutId": checkout.id,
                    "env": env,
                    "status": checkout.status,
                    "amountFen": checkout.amount_fen,
                    "returnUrl": checkout.return_url,
                    "useJssdk": self.app_settings.wechat.use_jssdk,
                    "sandbox": self.app_settings.is_sandbox,
                    "simulatorBase": self.services.simulator_path if self.app_settings.is_sandbox else None,
                },
                ensure_ascii=False,
            ),
        )


class OAuthCallbackHandler(PageHandler):
    async def get(self) -> None:
        raw = self.get_signed_cookie(OAUTH_COOKIE, max_age_days=1)
        expected, _, next_path = (raw.decode() if raw else "").partition("|")
        self.clear_cookie(OAUTH_COOKIE)
        openid = await self.services.oauth.finish(
            self.get_query_argument("code", None), self.get_query_argument("state", None), expected or None
        )
        self.set_signed_cookie(OPENID_COOKIE, openid, expires_days=30, **self.cookie_options())
        self.redirect(safe_next(next_path))


class PrepayHandler(BaseHandler):
    """The page's POST (XSRF-protected). The amount is never read from it."""

    async def post(self, checkout_id: str) -> None:
        data = self.json_body() if self.request.body else {}
        if not isinstance(data, dict):
            raise InvalidInput("invalid_body", "The request body must be a JSON object")
        env = client_env(self.request.headers.get("User-Agent", ""))
        trade_type = data.get("trade_type") or default_trade_type(env)
        allowed = {"wechat": ("JSAPI", "NATIVE"), "mobile": ("MWEB", "NATIVE"), "desktop": ("NATIVE",)}[env]
        if trade_type not in allowed:
            raise InvalidInput("trade_type_not_allowed", f"{trade_type} is not available in this browser ({env})")
        openid = None
        if trade_type == "JSAPI":
            raw = self.get_signed_cookie(OPENID_COOKIE, max_age_days=30)
            if not raw:
                raise InvalidInput("openid_required", "Sign-in expired; reload the page")
            openid = raw.decode()
        base = self.services.public_base
        page_url = data.get("page_url")
        if not (isinstance(page_url, str) and _same_origin(page_url, base)):
            page_url = None
        result = await self.services.prepay.prepay(
            checkout_id,
            trade_type=trade_type,
            openid=openid,
            client_ip=self.client_ip(),
            page_url=page_url if self.app_settings.wechat.use_jssdk else None,
            wap_url=base,
        )
        body: dict[str, Any] = result.public()
        if result.code_url:
            body["qr_svg"] = qr_data_uri(result.code_url)
        if result.mweb_url:
            body["mweb_url"] = self.services.mweb_with_return(result.mweb_url, checkout_id)
        self.write_json(body)


class StatusHandler(BaseHandler):
    """The page's poll: one store read, no WeChat call."""

    async def get(self, checkout_id: str) -> None:
        checkout = await self.services.checkouts.get(checkout_id)
        expired = checkout.status == "open" and checkout.expires_at <= self.services.now()
        self.write_json(
            {
                "status": "expired" if expired else checkout.status,
                "paid": checkout.status == "paid",
                "return_url": checkout.return_url,
            }
        )


class ResultPageHandler(PayPageHandler):
    """Where an H5 (MWEB) payment returns: the page asks the server, not the URL."""


def qr_data_uri(text: str) -> str:
    svg = segno.make(text, error="m").svg_inline(scale=6, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def routes() -> list[tuple[str, type, dict]]:
    cid = r"([^/]+)"
    return [
        (rf"/pay/{cid}", PayPageHandler, {}),
        (rf"/pay/{cid}/result", ResultPageHandler, {}),
        (rf"/pay/{cid}/prepay", PrepayHandler, {}),
        (rf"/pay/{cid}/status", StatusHandler, {}),
        (r"/oauth/callback", OAuthCallbackHandler, {}),
    ]
