"""Simulated Official Account web authorization (protocol digest §14).

The browser side is ``connect/oauth2/authorize``: it answers with a 302 to
``redirect_uri?code=CODE&state=STATE`` (silently for ``snsapi_base``, after a
consent page for ``snsapi_userinfo``) or with WeChat's error page.  The server
side trades the code for a user-level token, refreshes it, reads the profile
and checks the token.

Who is "logged in" to this offline WeChat: the ``sim_user`` query parameter on
the authorize URL, else the ``sim_user`` cookie (set whenever the parameter is
given), else the first configured user.  Any name of 1-64 characters from
``[A-Za-z0-9_.-]`` is a valid shopper, so load tests can invent many.

openids are HMAC-SHA256(seed, appid + user) so one shopper has a stable openid
per app and a different one in each app, as on WeChat; the seed is random per
state and persisted by ``to_json``.  The unionid is per shopper across apps.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tornado.web

from .apihandler import JsonApiHandler, SimHandler
from .clock import Clock
from .config import SimConfig

CODE_TTL = timedelta(minutes=5)
ACCESS_TTL = timedelta(seconds=7200)
REFRESH_TTL = timedelta(days=30)
# Used or expired codes and tokens are remembered this long so a late caller
# gets "code been used" / "expired" rather than "invalid".
_FORGET_AFTER = timedelta(days=1)

SCOPES = ("snsapi_base", "snsapi_userinfo")
USER_COOKIE = "sim_user"
_USER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# Authorize-page errors (§14.1) with the text the error page shows.
AUTHORIZE_ERRORS = {
    10003: "redirect_uri 域名与后台配置不一致",
    10010: "scope 参数错误或没有 scope 权限",
    10011: "redirect_uri 参数错误",
    10012: "appid 参数错误",
    10016: "不支持该 appid（不是公众号 appid）",
}

# The {"errcode", "errmsg"} pairs the sns/* endpoints answer with.
ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40030: "invalid refresh_token",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41003: "refresh_token missing",
    41004: "appsecret missing",
    41008: "missing code",
    41009: "missing openid",
    42001: "access_token expired",
    42002: "refresh_token expired",
    42003: "code expired",
    48001: "api unauthorized",
}

# A fixed, plausible location per lang so userinfo exercises the lang switch.
_PLACES = {
    "zh_CN": ("广东", "广州", "中国"),
    "zh_TW": ("廣東", "廣州", "中國"),
    "en": ("Guangdong", "Guangzhou", "China"),
}


class OAuthError(Exception):
    """An sns/* answer other than success; carries the WeChat errcode."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.errmsg = ERRMSG.get(errcode, "invalid request")

    def body(self) -> dict:
        return {"errcode": self.errcode, "errmsg": self.errmsg}


class AuthorizeError(Exception):
    """An authorize-page error shown in the browser (10003, 10010, ...)."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.message = AUTHORIZE_ERRORS[errcode]


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class _Code:
    appid: str
    user: str
    scope: str
    issued_at: datetime
    used: bool = False


@dataclass
class _Access:
    appid: str
    user: str
    scope: str
    expires_at: datetime
    refresh_token: str


@dataclass
class _Refresh:
    appid: str
    user: str
    scope: str
    expires_at: datetime
    access_token: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class OAuthState:
    """Codes, user tokens and refresh tokens of the simulated web authorization."""

    def __init__(self, config: SimConfig, clock: Clock, seed: bytes | None = None) -> None:
        self.config = config
        self.clock = clock
        self._seed = seed or secrets.token_bytes(32)
        self._openids: dict[tuple[str, str], str] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        # Redirect_uri domains per appid (or "*" for all); None accepts any.
        self.domains: dict[str, tuple[str, ...]] | None = _domains_from(config.extra.get("oauth_domains"))

    # -- identities ---------------------------------------------------------

    def openid(self, appid: str, user: str) -> str:
        """The shopper's openid in this app: 28 chars starting with "o" like WeChat's.

        Remembered (bounded): every JSAPI order and orderquery of a shopper asks again.
        """
        key = (appid, user)
        found = self._openids.get(key)
        if found is None:
            mac = hmac.new(self._seed, f"openid\0{appid}\0{user}".encode(), hashlib.sha256).digest()
            found = "o" + _b64(mac)[:27]
            if len(self._openids) < 4096:
                self._openids[key] = found
        return found

    def unionid(self, user: str) -> str:
        """The shopper's unionid, the same in every app of the simulated Open platform."""
        mac = hmac.new(self._seed, f"unionid\0{user}".encode(), hashlib.sha256).digest()
        return "o" + _b64(mac)[:27]

    def default_user(self) -> str:
        return self.config.users[0] if self.config.users else "alice"

    @staticmethod
    def valid_user(name: str) -> bool:
        return bool(_USER_NAME.fullmatch(name or ""))

    # -- authorize page -----------------------------------------------------

    def check_authorize(self, appid: str, redirect_uri: str, scope: str) -> None:
        """Raise AuthorizeError the way the authorize page refuses a request (§14.1)."""
        if not appid:
            raise AuthorizeError(10012)
        app = self.config.app(appid)
        if app is None:
            raise AuthorizeError(10012)
        if app.kind != "official_account":
            raise AuthorizeError(10016)
        if not redirect_uri:
            raise AuthorizeError(10011)
        if scope not in SCOPES:
            raise AuthorizeError(10010)
        parts = urlsplit(redirect_uri)
        # Only an absolute http(s) URL can be redirected to, whatever the domain list.
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AuthorizeError(10003)
        if self.domains is not None:
            allowed = self.domains.get(appid, ()) + self.domains.get("*", ())
            if not any(_domain_matches(d, parts) for d in allowed):
                raise AuthorizeError(10003)

    def issue_code(self, appid: str, user: str, scope: str) -> str:
        """A fresh single-use code for this shopper's consent."""
        self._prune()
        code = secrets.token_hex(16)
        self._codes[code] = _Code(appid, user, scope, self.clock.now())
        return code

    # -- sns/oauth2/access_token -------------------------------------------

    def _check_app(self, appid: str, secret: str | None) -> None:
        if not appid:
            raise OAuthError(41002)
        app = self.config.app(appid)
        if app is None:
            raise OAuthError(40013)
        if secret is not None:
            if not secret:
                raise OAuthError(41004)
            if not hmac.compare_digest(secret.encode(), app.secret.encode()):
                raise OAuthError(40125)

    def exchange(self, appid: str, secret: str, code: str, grant_type: str) -> dict:
        """Trade a code for a user token (§14.2); raises OAuthError."""
        self._check_app(appid, secret)
        if grant_type != "authorization_code":
            raise OAuthError(40002)
        if not code:
            raise OAuthError(41008)
        entry = self._codes.get(code)
        if entry is None or entry.appid != appid:
            raise OAuthError(40029)
        if entry.used:
            raise OAuthError(40163)
        now = self.clock.now()
        if now - entry.issued_at >= CODE_TTL:
            raise OAuthError(42003)
        entry.used = True
        access, refresh = secrets.token_urlsafe(66), secrets.token_urlsafe(66)
        self._access[access] = _Access(appid, entry.user, entry.scope, now + ACCESS_TTL, refresh)
        self._refresh[refresh] = _Refresh(appid, entry.user, entry.scope, now + REFRESH_TTL, access)
        reply = {
            "access_token": access,
            "expires_in": int(ACCESS_TTL.total_seconds()),
            "refresh_token": refresh,
            "openid": self.openid(appid, entry.user),
            "scope": entry.scope,
        }
        if entry.scope == "snsapi_userinfo":
            reply["unionid"] = self.unionid(entry.user)
        return reply

    # -- sns/oauth2/refresh_token ------------------------------------------

    def refresh(self, appid: str, grant_type: str, refresh_token: str) -> dict:
        """Extend (or replace, once expired) the user token (§14.3); raises OAuthError."""
        self._check_app(appid, None)
        if grant_type != "refresh_token":
            raise OAuthError(40002)
        if not refresh_token:
            raise OAuthError(41003)
        entry = self._refresh.get(refresh_token)
        if entry is None or entry.appid != appid:
            raise OAuthError(40030)
        now = self.clock.now()
        if now >= entry.expires_at:
            raise OAuthError(42002)
        current = self._access.get(entry.access_token)
        if current is not None and now < current.expires_at:
            current.expires_at = now + ACCESS_TTL
        else:
            entry.access_token = secrets.token_urlsafe(66)
            self._access[entry.access_token] = _Access(appid, entry.user, entry.scope, now + ACCESS_TTL, refresh_token)
        return {
            "access_token": entry.access_token,
            "expires_in": int(ACCESS_TTL.total_seconds()),
            "refresh_token": refresh_token,
            "openid": self.openid(appid, entry.user),
            "scope": entry.scope,
        }

    # -- sns/userinfo and sns/auth -----------------------------------------

    def check(self, access_token: str, openid: str) -> _Access:
        """The token's grant if it is valid for this openid; raises OAuthError (§14.5)."""
        if not access_token:
            raise OAuthError(41001)
        entry = self._access.get(access_token)
        if entry is None:
            raise OAuthError(40001)
        if self.clock.now() >= entry.expires_at:
            raise OAuthError(42001)
        if not openid:
            raise OAuthError(41009)
        if not hmac.compare_digest(openid.encode(), self.openid(entry.appid, entry.user).encode()):
            raise OAuthError(40003)
        return entry

    def userinfo(self, access_token: str, openid: str, lang: str = "zh_CN") -> dict:
        """The shopper's profile (§14.4); a snsapi_base token gets 48001."""
        entry = self.check(access_token, openid)
        if entry.scope != "snsapi_userinfo":
            raise OAuthError(48001)
        province, city, country = _PLACES.get(lang, _PLACES["zh_CN"])
        return {
            "openid": openid,
            "nickname": entry.user,
            "sex": 0,
            "province": province,
            "city": city,
            "country": country,
            "headimgurl": "",
            "privilege": [],
            "unionid": self.unionid(entry.user),
        }

    # -- upkeep and persistence ---------------------------------------------

    def _prune(self) -> None:
        now = self.clock.now()
        self._codes = {k: v for k, v in self._codes.items() if now - v.issued_at < CODE_TTL + _FORGET_AFTER}
        self._access = {k: v for k, v in self._access.items() if now < v.expires_at + _FORGET_AFTER}
        self._refresh = {k: v for k, v in self._refresh.items() if now < v.expires_at + _FORGET_AFTER}

    def summary(self) -> dict:
        """Counts for the inspection view; never the codes or tokens themselves."""
        now = self.clock.now()
        return {
            "codes_pending": sum(1 for c in self._codes.values() if not c.used and now - c.issued_at < CODE_TTL),
            "user_tokens_valid": sum(1 for a in self._access.values() if now < a.expires_at),
            "refresh_tokens_valid": sum(1 for r in self._refresh.values() if now < r.expires_at),
        }

    def to_json(self) -> dict:
        def dump(table: dict) -> dict:
            return {
                k: {f: (_iso(v) if isinstance(v, datetime) else v) for f, v in asdict(e).items()}
                for k, e in table.items()
            }

        return {
            "seed": self._seed.hex(),
            "codes": dump(self._codes),
            "access": dump(self._access),
            "refresh": dump(self._refresh),
        }

    @classmethod
    def from_json(cls, data: dict, config: SimConfig, clock: Clock) -> "OAuthState":
        state = cls(config, clock, seed=bytes.fromhex(data["seed"]))
        for key, kind, table in (
            ("codes", _Code, state._codes),
            ("access", _Access, state._access),
            ("refresh", _Refresh, state._refresh),
        ):
            for token, fields in data.get(key, {}).items():
                fields = dict(fields)
                for f in ("issued_at", "expires_at"):
                    if f in fields:
                        fields[f] = _dt(fields[f])
                table[token] = kind(**fields)
        return state


def _domains_from(raw: Any) -> dict[str, tuple[str, ...]] | None:
    """``oauth_domains`` in the config extras: a list for every app or a dict by appid."""
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        return {"*": tuple(raw)}
    return {k: tuple(v) for k, v in dict(raw).items()}


def _domain_matches(domain: str, parts) -> bool:
    """WeChat compares the full host (no subdomain wildcard); a port counts only if configured."""
    domain = domain.lower()
    if ":" in domain:
        return domain == (parts.netloc.rpartition("@")[2]).lower()
    return domain == (parts.hostname or "").lower()


# --------------------------------------------------------------------------
# HTTP handlers
# --------------------------------------------------------------------------


def _with_query(url: str, extra: list[tuple[str, str]]) -> str:
    """redirect_uri plus code/state appended to its own query (kept byte for byte), no fragment."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(extra)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em;color:#222}}
.btn{{display:block;text-align:center;padding:.8em;margin:.6em 0;border-radius:4px;text-decoration:none}}
.ok{{background:#07c160;color:#fff}}.no{{background:#f2f2f2;color:#333}}.en{{color:#888;font-size:.9em}}</style>
</head><body>{body}</body></html>"""


class AuthorizeHandler(SimHandler):
    """``connect/oauth2/authorize``: the shopper's browser lands here."""

    ENDPOINT = "connect/oauth2/authorize"
    MUTATES = True

    def get(self) -> None:
        oauth: OAuthState = self.sim.oauth
        appid = self.get_query_argument("appid", "")
        redirect_uri = self.get_query_argument("redirect_uri", "")
        scope = self.get_query_argument("scope", "")
        state = self.get_query_argument("state", "")
        try:
            oauth.check_authorize(appid, redirect_uri, scope)
        except AuthorizeError as err:
            return self._error_page(err)

        user = self.get_query_argument(USER_COOKIE, "")
        if user:
            if not oauth.valid_user(user):
                raise tornado.web.HTTPError(400, reason="sim_user must be 1-64 of [A-Za-z0-9_.-]")
            self.set_cookie(USER_COOKIE, user, httponly=True, samesite="Lax")
        else:
            user = self.get_cookie(USER_COOKIE, "") or ""
            if not oauth.valid_user(user):
                user = oauth.default_user()

        consent = self.get_query_argument("sim_consent", "")
        if scope == "snsapi_userinfo" and consent not in ("approve", "deny"):
            return self._consent_page(appid, user)
        if consent == "deny":
            return self.redirect(_with_query(redirect_uri, [("state", state)]))
        code = oauth.issue_code(appid, user, scope)
        self.redirect(_with_query(redirect_uri, [("code", code), ("state", state)]))

    def _consent_page(self, appid: str, user: str) -> None:
        base = [(k, v) for k, v in parse_qsl(self.request.query, keep_blank_values=True) if k != "sim_consent"]
        approve = "?" + urlencode(base + [("sim_consent", "approve")])
        deny = "?" + urlencode(base + [("sim_consent", "deny")])
        body = (
            f"<h1>授权登录</h1><p>该网页（公众号 {html.escape(appid)}）申请获取你的昵称、头像等公开信息。</p>"
            f'<p class="en">This page asks for your public profile (nickname, avatar).</p>'
            f'<p>当前模拟用户 / simulated user: <b id="sim-user">{html.escape(user)}</b></p>'
            f'<a class="btn ok" id="approve" href="{html.escape(approve)}">允许 / Allow</a>'
            f'<a class="btn no" id="deny" href="{html.escape(deny)}">拒绝 / Deny</a>'
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(_PAGE.format(title="微信授权", body=body))

    def _error_page(self, err: AuthorizeError) -> None:
        body = (
            "<h1>Oops! Something went wrong:(</h1>"
            f'<p>{html.escape(err.message)}，错误码：<span id="errcode">{err.errcode}</span></p>'
            f'<p class="en">WeChat authorization error {err.errcode}.</p>'
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("X-Sim-Errcode", str(err.errcode))
        self.finish(_PAGE.format(title="微信网页授权", body=body))


class AccessTokenHandler(JsonApiHandler):
    ENDPOINT = "sns/oauth2/access_token"
    MUTATES = True

    def get(self) -> None:
        try:
            self.reply(self.sim.oauth.exchange(self.arg("appid"), self.arg("secret"), self.arg("code"), self.arg("grant_type")))
        except OAuthError as err:
            self.reply(err.body())


class RefreshTokenHandler(JsonApiHandler):
    ENDPOINT = "sns/oauth2/refresh_token"
    MUTATES = True

    def get(self) -> None:
        try:
            self.reply(self.sim.oauth.refresh(self.arg("appid"), self.arg("grant_type"), self.arg("refresh_token")))
        except OAuthError as err:
            self.reply(err.body())


class UserInfoHandler(JsonApiHandler):
    ENDPOINT = "sns/userinfo"

    def get(self) -> None:
        try:
            self.reply(self.sim.oauth.userinfo(self.arg("access_token"), self.arg("openid"), self.arg("lang") or "zh_CN"))
        except OAuthError as err:
            self.reply(err.body())


class AuthCheckHandler(JsonApiHandler):
    ENDPOINT = "sns/auth"

    def get(self) -> None:
        try:
            self.sim.oauth.check(self.arg("access_token"), self.arg("openid"))
        except OAuthError as err:
            return self.reply(err.body())
        self.reply({"errcode": 0, "errmsg": "ok"})


def routes(sim: Any) -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    """Paths relative to wherever the simulator is mounted."""
    kw = {"sim": sim}
    return [
        (r"/connect/oauth2/authorize", AuthorizeHandler, kw),
        (r"/sns/oauth2/access_token", AccessTokenHandler, kw),
        (r"/sns/oauth2/refresh_token", RefreshTokenHandler, kw),
        (r"/sns/userinfo", UserInfoHandler, kw),
        (r"/sns/auth", AuthCheckHandler, kw),
    ]
