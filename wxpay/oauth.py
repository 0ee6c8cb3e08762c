"""Official Account web OAuth: the authorize URL and the code → openid exchange.

The secret and the one-time ``code`` travel only in query strings that are
never logged (the transport's request repr drops queries; logs name the
endpoint, the latency and the outcome).
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote, urlencode, urlsplit

from .endpoints import Endpoints
from .errors import ConfigError, InvalidArgumentError, TokenInvalidError, WxPayError
from .results import json_int, json_str, parse_json_reply
from .transport import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    HttpRequest,
    Observer,
    as_transport,
    observe,
    raise_for_status,
)

log = logging.getLogger("wxpay.oauth")

SCOPES = ("snsapi_base", "snsapi_userinfo")
LANGS = ("zh_CN", "zh_TW", "en")
_STATE = re.compile(r"[A-Za-z0-9]{1,128}")


@dataclass(frozen=True)
class OAuthToken:
    """A user-level OAuth token (distinct from the account's access_token)."""

    openid: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: int
    scope: str
    unionid: str | None = None
    is_snapshotuser: bool = False
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s for s in self.scope.split(",") if s)


@dataclass(frozen=True)
class UserInfo:
    openid: str
    nickname: str | None
    sex: int | None
    province: str | None
    city: str | None
    country: str | None
    headimgurl: str | None
    privilege: list[str]
    unionid: str | None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


class _JsonApi:
    """The shared GET/POST-JSON call with observation; no retries (callers decide)."""

    _log = log

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        transport: Any = None,
        endpoints: Endpoints | None = None,
        observer: Observer | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        if not isinstance(appid, str) or not appid.strip():
            raise ConfigError("appid is required")
        if not isinstance(secret, str) or not secret.strip():
            raise ConfigError("AppSecret is required")
        self.appid = appid
        self._secret = secret
        self.transport = as_transport(transport)
        self.endpoints = endpoints or Endpoints()
        self.observer = observer
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(appid={self.appid!r}, secret='***')"

    async def _json(self, endpoint: str, path: str, query: dict[str, Any], *, json_body: Any = None,
                    errcodes: Mapping[int, Any] | None = None) -> dict:
        url = self.endpoints.api(path)
        if query:
            url = f"{url}?{urlencode(query)}"
        if json_body is None:
            request = HttpRequest(
                "GET", url, {"Accept": "application/json"}, None,
                connect_timeout=self.connect_timeout, request_timeout=self.request_timeout,
            )
        else:
            request = HttpRequest(
                "POST", url, {"Content-Type": "application/json; charset=utf-8"},
                _json_dumps(json_body),
                connect_timeout=self.connect_timeout, request_timeout=self.request_timeout,
            )
        started = time.monotonic()
        try:
            response = await self.transport.send(request)
            raise_for_status(response, url)
            data = parse_json_reply(response.body, errcodes=errcodes)
        except Exception as exc:
            observe(self.observer, self._log, endpoint, started, exc)
            raise
        observe(self.observer, self._log, endpoint, started, None)
        return data


def _json_dumps(value: Any) -> bytes:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _token(data: dict) -> OAuthToken:
    snapshot = data.get("is_snapshotuser")
    return OAuthToken(
        openid=json_str(data, "openid"),
        access_token=json_str(data, "access_token"),
        refresh_token=json_str(data, "refresh_token", required=False),
        expires_in=json_int(data, "expires_in"),
        scope=json_str(data, "scope", required=False) or "",
        unionid=json_str(data, "unionid", required=False),
        is_snapshotuser=snapshot in (1, "1", True),
        raw=data,
    )


def check_state(state: Any) -> str:
    if not isinstance(state, str) or not _STATE.fullmatch(state):
        raise InvalidArgumentError("OAuth state must be 1..128 ASCII letters or digits")
    return state


class OAuthClient(_JsonApi):
    """Web authorization for one Official Account (appid + AppSecret)."""

    def authorize_url(self, redirect_uri: str, scope: str = "snsapi_base", state: str = "", *, force_popup: bool = False) -> str:
        """The URL to send the shopper's browser to; WeChat returns to redirect_uri?code&state."""
        if scope not in SCOPES:
            raise InvalidArgumentError(f"scope must be one of {', '.join(SCOPES)} (got {scope!r})")
        check_state(state)
        parts = urlsplit(redirect_uri if isinstance(redirect_uri, str) else "")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise InvalidArgumentError("redirect_uri must be an absolute http(s) URL without a fragment")
        query = [
            ("appid", self.appid),
            ("redirect_uri", redirect_uri),
            ("response_type", "code"),
            ("scope", scope),
            ("state", state),
        ]
        if force_popup:
            query.append(("forcePopup", "true"))
        encoded = urlencode(query, quote_via=quote, safe="")
        return f"{self.endpoints.open('connect/oauth2/authorize')}?{encoded}#wechat_redirect"

    async def exchange_code(self, code: str) -> OAuthToken:
        """Trade the single-use code (5 minutes) for the openid and a user token."""
        if not isinstance(code, str) or not code or len(code) > 512:
            raise InvalidArgumentError("OAuth code is missing or malformed")
        data = await self._json(
            "sns/oauth2/access_token",
            "sns/oauth2/access_token",
            {"appid": self.appid, "secret": self._secret, "code": code, "grant_type": "authorization_code"},
        )
        return _token(data)

    async def refresh(self, refresh_token: str) -> OAuthToken:
        if not isinstance(refresh_token, str) or not refresh_token:
            raise InvalidArgumentError("refresh_token is required")
        data = await self._json(
            "sns/oauth2/refresh_token",
            "sns/oauth2/refresh_token",
            {"appid": self.appid, "grant_type": "refresh_token", "refresh_token": refresh_token},
        )
        return _token(data)

    async def userinfo(self, access_token: str, openid: str, lang: str = "zh_CN") -> UserInfo:
        """Profile for a snsapi_userinfo token (a snsapi_base token gets errcode 48001)."""
        if lang not in LANGS:
            raise InvalidArgumentError(f"lang must be one of {', '.join(LANGS)}")
        data = await self._json(
            "sns/userinfo", "sns/userinfo", {"access_token": access_token, "openid": openid, "lang": lang}
        )
        privilege = data.get("privilege") or []
        if not isinstance(privilege, list):
            privilege = []
        return UserInfo(
            openid=json_str(data, "openid"),
            nickname=json_str(data, "nickname", required=False),
            sex=json_int(data, "sex", required=False),
            province=json_str(data, "province", required=False),
            city=json_str(data, "city", required=False),
            country=json_str(data, "country", required=False),
            headimgurl=json_str(data, "headimgurl", required=False),
            privilege=[str(p) for p in privilege],
            unionid=json_str(data, "unionid", required=False),
            raw=data,
        )

    async def check(self, access_token: str, openid: str) -> bool:
        """True while the user token is valid for this openid; other failures raise."""
        try:
            await self._json("sns/auth", "sns/auth", {"access_token": access_token, "openid": openid})
        except TokenInvalidError:
            return False
        except WxPayError as exc:
            if exc.errcode == 40003:
                return False
            raise
        return True
