"""The shopper's side: the pay page, silent OAuth, prepay and the status poll."""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import segno

from service.errors import InvalidInput, NotFound
from service.models import shown_status
from service.oauth import safe_next
from service.validation import http_url

from .base import BaseHandler, PageHandler
from .i18n import page_strings, pick_language

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
        # paid, or (partially_)refunded: the shopper is told of refunds too
        status = shown_status(checkout.status, checkout.expires_at, self.services.now())
        lang = pick_language(self.get_query_argument("lang", None), self.request.headers.get("Accept-Language"))
        t = page_strings(lang)
        bridge = sandbox_bridge_enabled(self)
        result_page = self.request.path.endswith("/result")
        screen = status if status != "open" else ("confirming" if result_page else "idle")
        config = {
            "checkoutId": checkout.id,
            "env": env,
            "status": status,
            "amountFen": checkout.amount_fen,
            "refundedFen": checkout.refunded_fen,
            "returnUrl": checkout.return_url,
            "useJssdk": self.app_settings.wechat.use_jssdk,
            "sandbox": self.app_settings.is_sandbox,
            "simulatorBase": self.services.sandbox_bridge if bridge else None,
            "resultPage": result_page,
            "shopName": self.app_settings.shop.name,
            "lang": lang,
            "strings": t,
        }
        self.set_header("Cache-Control", "no-store")
        self.set_header("Vary", "Accept-Language, User-Agent")
        self.render(
            "pay.html",
            checkout=checkout,
            shop_name=self.app_settings.shop.name,
            t=t,
            screen=screen,
            sandbox=self.app_settings.is_sandbox,
            sandbox_bridge=bridge,
            amount_text=yuan_text(checkout.amount_fen),
            refunded_text=yuan_text(checkout.refunded_fen),
            return_url=checkout.return_url,
            # JSON inside <script>: no "<" at all, so no "</script>" or "<!--" can end it early.
            page_config=json.dumps(config, ensure_ascii=False).replace("<", "\\u003c"),
        )


class OAuthCallbackHandler(PageHandler):
    async def get(self) -> None:
        raw = self.get_signed_cookie(OAUTH_COOKIE, max_age_days=1)
        expected, _, next_path = (raw.decode() if raw else "").partition("|")
        self.retry_path = next_path or None  # the error page's way back to the pay page
        self.clear_cookie(OAUTH_COOKIE)
        openid = await self.services.oauth.finish(
            self.get_query_argument("code", None), self.get_query_argument("state", None), expected or None,
            source=self.client_ip(),
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
        if not isinstance(trade_type, str) or trade_type not in allowed:
            raise InvalidInput("trade_type_not_allowed", f"trade_type must be {' or '.join(allowed)} in this browser ({env})")
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
        try:
            result = await self.services.prepay.prepay(
                checkout_id,
                trade_type=trade_type,
                openid=openid,
                client_ip=self.client_ip(),
                page_url=page_url if self.app_settings.wechat.use_jssdk else None,
                wap_url=base,
            )
        except InvalidInput as exc:
            if exc.code == "openid_rejected":  # a sign-in of another appid: the reload signs in afresh
                self.clear_cookie(OPENID_COOKIE)
            raise
        body: dict[str, Any] = result.public()
        if result.code_url:
            body["qr_svg"] = qr_data_uri(result.code_url)
        if result.mweb_url:
            body["mweb_url"] = self.services.h5_with_return(result.mweb_url, checkout_id)
        self.write_json(body)


class StatusHandler(BaseHandler):
    """The page's poll: one store read, no WeChat call."""

    quiet_access_log = True  # answered polls at DEBUG (handlers/access_log.py)

    async def get(self, checkout_id: str) -> None:
        self.write_json(await self.services.checkouts.poll(checkout_id))


class ResultPageHandler(PayPageHandler):
    """Where an H5 (MWEB) payment returns: the page asks the server, not the URL."""


SANDBOX_DIR = Path(__file__).resolve().parent.parent / "web" / "sandbox"
SANDBOX_ASSETS = {"bridge.js": "application/javascript; charset=utf-8", "bridge.css": "text/css; charset=utf-8"}


def sandbox_bridge_enabled(handler: BaseHandler) -> bool:
    """Only in sandbox mode with the simulated WeChat mounted in this process."""
    return bool(handler.app_settings.is_sandbox and handler.services.sandbox_bridge is not None)


class SandboxAssetHandler(BaseHandler):
    """The sandbox bridge, which plays the WeChat client in any browser.

    Not in the static directory (always served): this handler answers 404
    unless the process runs in sandbox mode, so live mode cannot load it.
    """

    api = False

    def get(self, name: str) -> None:
        if not sandbox_bridge_enabled(self) or name not in SANDBOX_ASSETS:
            raise NotFound("not_found", "Nothing here")
        self.set_header("Content-Type", SANDBOX_ASSETS[name])
        self.set_header("Cache-Control", "no-cache")
        self.finish((SANDBOX_DIR / name).read_bytes())


def yuan_text(fen: int) -> str:
    """12345 fen → "123.45"; 123456789 → "1,234,567.89" (integer arithmetic only)."""
    whole, cents = divmod(int(fen), 100)
    return f"{whole:,}.{cents:02d}"


def qr_data_uri(text: str) -> str:
    """The QR code as an image URI (a standalone SVG needs its xmlns, which inline SVG omits)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=6, border=4, light="#fff", xmldecl=False, svgns=True)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def _same_origin(url: str, base: str) -> bool:
    """The page's own URL on this server; a URL that does not parse is not."""
    a, b = http_url(url), urlsplit(base)
    return a is not None and (a.scheme, a.netloc) == (b.scheme, b.netloc)


def routes() -> list[tuple[str, type, dict]]:
    cid = r"([^/]+)"
    return [
        # The page's poll first: the most frequent request of all (no two patterns overlap).
        (rf"/pay/{cid}/status", StatusHandler, {}),
        (rf"/pay/{cid}/prepay", PrepayHandler, {}),
        (rf"/pay/{cid}", PayPageHandler, {}),
        (rf"/pay/{cid}/result", ResultPageHandler, {}),
        (r"/oauth/callback", OAuthCallbackHandler, {}),
        (r"/_sandbox/([a-z.]+)", SandboxAssetHandler, {}),
    ]
