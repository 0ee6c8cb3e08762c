"""Simulated Official Account tokens: cgi-bin/token, stable_token, jsapi_ticket (§15).

The rules a token cache must survive are the point here: every cgi-bin/token
fetch cuts the previous tokens to a 5-minute overlap, a per-app daily quota
(``SimConfig.token_daily_quota``, counted per China-time day) ends in 45009,
and the stable token lives in a separate space that rotates 5 minutes early.
Other simulated APIs validate a token with ``TokenState.check``.
"""
from __future__ import annotations

import hmac
import json
import secrets
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import tornado.web

from ..timeutil import CHINA_TZ
from .apihandler import JsonApiHandler
from .clock import Clock
from .config import SimConfig

TOKEN_TTL = timedelta(seconds=7200)
TICKET_TTL = timedelta(seconds=7200)
OVERLAP = timedelta(minutes=5)
STABLE_FORCE_PER_DAY = 20
STABLE_FORCE_GAP = timedelta(seconds=30)
TICKET_TYPES = ("jsapi", "wx_card")
_FORGET_AFTER = timedelta(days=1)
_LOG_SIZE = 500

ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40097: "invalid args",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    42001: "access_token expired",
    43002: "require POST method",
    45009: "reach max api daily quota limit",
    47001: "data format error",
}


class TokenError(Exception):
    """A cgi-bin answer other than success; carries the WeChat errcode."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.errmsg = ERRMSG.get(errcode, "invalid request")

    def body(self) -> dict:
        return {"errcode": self.errcode, "errmsg": self.errmsg}


@dataclass
class _Token:
    appid: str
    kind: str  # "access_token" | "stable_token" | "jsapi_ticket" | "wx_card_ticket"
    issued_at: datetime
    expires_at: datetime
    # Set when a newer token supersedes this one; invalid ("not latest") from then on.
    cut_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return now < self.expires_at and (self.cut_at is None or now < self.cut_at)


def _hint(value: str) -> str:
    return value[:8] + "…"


class TokenState:
    """Every app's basic and stable tokens and tickets, with quotas and a log."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._tokens: dict[str, _Token] = {}  # tokens and tickets by value
        self._current: dict[str, str] = {}  # f"{kind}:{appid}" -> newest value
        self._calls: dict[str, int] = {}  # f"{day}:{appid}" -> cgi-bin/token issues
        self._forced: dict[str, int] = {}  # f"{day}:{appid}" -> stable force refreshes
        self._last_force: dict[str, datetime] = {}  # appid -> last forced stable refresh
        self.log: deque[dict] = deque(maxlen=_LOG_SIZE)

    # -- helpers --------------------------------------------------------------

    def _day(self, now: datetime) -> str:
        return now.astimezone(CHINA_TZ).date().isoformat()

    def _check_app(self, appid: str, secret: str, grant_type: str) -> None:
        if grant_type != "client_credential":
            raise TokenError(40002)
        if not appid:
            raise TokenError(41002)
        app = self.config.app(appid)
        if app is None:
            raise TokenError(40013)
        if not secret:
            raise TokenError(41004)
        if not hmac.compare_digest(secret.encode(), app.secret.encode()):
            raise TokenError(40125)

    def _issue(self, appid: str, kind: str, ttl: timedelta, endpoint: str, now: datetime) -> str:
        value = secrets.token_urlsafe(96)
        self._tokens[value] = _Token(appid, kind, now, now + ttl)
        self._current[f"{kind}:{appid}"] = value
        self._record(now, appid, kind, endpoint, "issued", value)
        return value

    def _record(self, now: datetime, appid: str, kind: str, endpoint: str, outcome: str, value: str = "") -> None:
        entry = {"time": now.isoformat(), "appid": appid, "kind": kind, "endpoint": endpoint, "outcome": outcome}
        if value:
            entry["token"] = _hint(value)
        self.log.append(entry)

    def _live(self, kind: str, appid: str, now: datetime) -> tuple[str, _Token] | None:
        value = self._current.get(f"{kind}:{appid}")
        token = self._tokens.get(value) if value else None
        if token is None or not token.valid_at(now):
            return None
        return value, token

    def _prune(self, now: datetime) -> None:
        self._tokens = {k: t for k, t in self._tokens.items() if now < t.expires_at + _FORGET_AFTER}
        today = self._day(now)
        self._calls = {k: n for k, n in self._calls.items() if k.startswith(today)}
        self._forced = {k: n for k, n in self._forced.items() if k.startswith(today)}

    # -- cgi-bin/token -------------------------------------------------------

    def fetch(self, appid: str, secret: str, grant_type: str) -> dict:
        """A new access_token (§15.1); older ones keep working for 5 more minutes."""
        self._check_app(appid, secret, grant_type)
        now = self.clock.now()
        self._prune(now)
        key = f"{self._day(now)}:{appid}"
        if self._calls.get(key, 0) >= self.config.token_daily_quota:
            self._record(now, appid, "access_token", "cgi-bin/token", "refused 45009")
            raise TokenError(45009)
        self._calls[key] = self._calls.get(key, 0) + 1
        cut = now + OVERLAP
        for token in self._tokens.values():
            if token.appid == appid and token.kind == "access_token" and token.valid_at(now):
                token.cut_at = min(token.cut_at or cut, cut)
        value = self._issue(appid, "access_token", TOKEN_TTL, "cgi-bin/token", now)
        return {"access_token": value, "expires_in": int(TOKEN_TTL.total_seconds())}

    # -- cgi-bin/stable_token ----------------------------------------------

    def stable(self, appid: str, secret: str, grant_type: str, force_refresh: bool = False) -> dict:
        """The stable access_token (§15.2), a token space of its own."""
        self._check_app(appid, secret, grant_type)
        now = self.clock.now()
        self._prune(now)
        endpoint = "cgi-bin/stable_token"
        live = self._live("stable_token", appid, now)
        if force_refresh and self._may_force(appid, now):
            self._forced[f"{self._day(now)}:{appid}"] = self._forced.get(f"{self._day(now)}:{appid}", 0) + 1
            self._last_force[appid] = now
            if live is not None:
                live[1].cut_at = now
            value = self._issue(appid, "stable_token", TOKEN_TTL, endpoint + " force_refresh", now)
            return {"access_token": value, "expires_in": int(TOKEN_TTL.total_seconds())}
        # Normal mode, or a force refresh over its limits ("no refresh").
        if live is not None and now < live[1].expires_at - OVERLAP:
            value, token = live
            self._record(now, appid, "stable_token", endpoint, "reused", value)
            return {"access_token": value, "expires_in": int((token.expires_at - now).total_seconds())}
        # The previous one, if any, lives out its last 5 minutes alongside the new one.
        value = self._issue(appid, "stable_token", TOKEN_TTL, endpoint, now)
        return {"access_token": value, "expires_in": int(TOKEN_TTL.total_seconds())}

    def _may_force(self, appid: str, now: datetime) -> bool:
        if self._forced.get(f"{self._day(now)}:{appid}", 0) >= STABLE_FORCE_PER_DAY:
            return False
        last = self._last_force.get(appid)
        return last is None or now - last >= STABLE_FORCE_GAP

    # -- validation for every other simulated API ------------------------------

    def check(self, access_token: str) -> int:
        """0 if the basic or stable token is valid now, else the errcode WeChat answers."""
        if not access_token:
            return 41001
        token = self._tokens.get(access_token)
        if token is None or token.kind not in ("access_token", "stable_token"):
            return 40001
        now = self.clock.now()
        if now >= token.expires_at:
            return 42001
        if token.cut_at is not None and now >= token.cut_at:
            return 40001  # superseded: "not latest"
        return 0

    def owner(self, access_token: str) -> str | None:
        """The appid a currently valid token belongs to."""
        return self._tokens[access_token].appid if self.check(access_token) == 0 else None

    def ticket_owner(self, ticket: str, type: str = "jsapi") -> str | None:
        """The appid a currently valid ticket belongs to (for JSSDK checks)."""
        token = self._tokens.get(ticket)
        if token is None or token.kind != f"{type}_ticket" or not token.valid_at(self.clock.now()):
            return None
        return token.appid

    # -- cgi-bin/ticket/getticket ---------------------------------------------

    def ticket(self, access_token: str, type: str) -> dict:
        """The app's jsapi (or wx_card) ticket, reused while it has over 5 minutes left."""
        errcode = self.check(access_token)
        if errcode:
            raise TokenError(errcode)
        if type not in TICKET_TYPES:
            raise TokenError(40097)
        appid = self._tokens[access_token].appid
        kind = f"{type}_ticket"
        now = self.clock.now()
        live = self._live(kind, appid, now)
        if live is not None and now < live[1].expires_at - OVERLAP:
            value, token = live
            expires_in = int((token.expires_at - now).total_seconds())
        else:
            value, expires_in = self._issue(appid, kind, TICKET_TTL, "cgi-bin/ticket/getticket", now), int(TICKET_TTL.total_seconds())
        return {"errcode": 0, "errmsg": "ok", "ticket": value, "expires_in": expires_in}

    # -- inspection and persistence --------------------------------------------

    def view(self) -> dict:
        """What /_sim/tokens shows: per-app state and the issuance log (hints only)."""
        now = self.clock.now()
        day = self._day(now)
        apps = {}
        for app in self.config.apps:
            entry: dict[str, Any] = {
                "kind": app.kind,
                "calls_today": self._calls.get(f"{day}:{app.appid}", 0),
                "daily_quota": self.config.token_daily_quota,
                "stable_force_today": self._forced.get(f"{day}:{app.appid}", 0),
            }
            for kind in ("access_token", "stable_token", "jsapi_ticket", "wx_card_ticket"):
                live = self._live(kind, app.appid, now)
                entry[kind] = (
                    {"token": _hint(live[0]), "expires_in": int((live[1].expires_at - now).total_seconds())}
                    if live
                    else None
                )
            apps[app.appid] = entry
        return {"now": now.isoformat(), "china_day": day, "apps": apps, "issued": list(reversed(self.log))}

    def to_json(self) -> dict:
        def token(t: _Token) -> dict:
            return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(t).items()}

        return {
            "tokens": {k: token(t) for k, t in self._tokens.items()},
            "current": dict(self._current),
            "calls": dict(self._calls),
            "forced": dict(self._forced),
            "last_force": {k: v.isoformat() for k, v in self._last_force.items()},
            "log": list(self.log),
        }

    @classmethod
    def from_json(cls, data: dict, config: SimConfig, clock: Clock) -> "TokenState":
        state = cls(config, clock)
        for value, t in data.get("tokens", {}).items():
            state._tokens[value] = _Token(
                t["appid"],
                t["kind"],
                datetime.fromisoformat(t["issued_at"]),
                datetime.fromisoformat(t["expires_at"]),
                datetime.fromisoformat(t["cut_at"]) if t.get("cut_at") else None,
            )
        state._current.update(data.get("current", {}))
        state._calls.update(data.get("calls", {}))
        state._forced.update(data.get("forced", {}))
        state._last_force.update({k: datetime.fromisoformat(v) for k, v in data.get("last_force", {}).items()})
        state.log.extend(data.get("log", []))
        return state


# --------------------------------------------------------------------------
# HTTP handlers
# --------------------------------------------------------------------------


class TokenHandler(JsonApiHandler):
    ENDPOINT = "cgi-bin/token"
    MUTATES = True

    def get(self) -> None:
        try:
            self.reply(self.sim.tokens.fetch(self.arg("appid"), self.arg("secret"), self.arg("grant_type")))
        except TokenError as err:
            self.reply(err.body())


class StableTokenHandler(JsonApiHandler):
    ENDPOINT = "cgi-bin/stable_token"
    MUTATES = True

    def get(self) -> None:
        self.reply(TokenError(43002).body())

    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"")
        except ValueError:
            return self.reply(TokenError(47001).body())
        if not isinstance(body, dict):
            return self.reply(TokenError(47001).body())
        force = body.get("force_refresh", False)
        fields = [body.get(k, "") for k in ("appid", "secret", "grant_type")]
        if not isinstance(force, bool) or not all(isinstance(f, str) for f in fields):
            return self.reply(TokenError(40097).body())
        try:
            self.reply(self.sim.tokens.stable(*fields, force_refresh=force))
        except TokenError as err:
            self.reply(err.body())


class TicketHandler(JsonApiHandler):
    ENDPOINT = "cgi-bin/ticket/getticket"
    MUTATES = True

    def get(self) -> None:
        try:
            self.reply(self.sim.tokens.ticket(self.arg("access_token"), self.arg("type")))
        except TokenError as err:
            self.reply(err.body())


class SimTokensHandler(JsonApiHandler):
    """Inspection view: who fetched which token when (never full token values)."""

    def get(self) -> None:
        view = self.sim.tokens.view()
        oauth = getattr(self.sim, "oauth", None)
        if oauth is not None:
            view["oauth"] = oauth.summary()
        logins = getattr(self.sim, "mini_program", None)
        if logins is not None:
            view["mini_program"] = logins.summary()
        self.set_header("Cache-Control", "no-store")
        self.reply(view)


def routes(sim: Any) -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    """Paths relative to wherever the simulator is mounted."""
    kw = {"sim": sim}
    return [
        (r"/cgi-bin/token", TokenHandler, kw),
        (r"/cgi-bin/stable_token", StableTokenHandler, kw),
        (r"/cgi-bin/ticket/getticket", TicketHandler, kw),
        (r"/_sim/tokens", SimTokensHandler, kw),
    ]
