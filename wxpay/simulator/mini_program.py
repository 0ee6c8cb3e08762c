"""Simulated Mini Program login: ``wx.login`` codes and ``sns/jscode2session``.

Inside a Mini Program, ``wx.login()`` hands the page a one-time code; the
Mini Program's backend trades it at ``sns/jscode2session`` for the shopper's
openid under that Mini Program, a ``session_key`` (the key WeChat encrypts
the shopper's data with) and, when the Mini Program is bound to an Open
platform account, the unionid. No Mini Program runtime runs here, so
``POST /_sim/wx-login`` stands in for ``wx.login()`` and mints a code for a
simulated shopper (never a WeChat path).

WeChat's rules, as the exchange applies them:

* a code lives 5 minutes and is good once: a second exchange gets 40163,
  an unknown or expired code, or one minted for another Mini Program, 40029;
* the appid must be a Mini Program's (40013) and the secret its AppSecret
  (40125); missing parameters get 41002/41004/41008, a grant_type other
  than ``authorization_code`` 40002;
* one shopper may log in at most ``per_minute`` (100) times a minute per
  Mini Program, then 45011 (the code stays unused, good again next minute);
* a code minted with ``risk=high`` plays a shopper WeChat rates high-risk:
  40226, as WeChat blocks such logins.

The openid is the one the OAuth side derives for the same shopper and appid,
so a payment with it passes unifiedorder's appid/openid check, and an openid
made up by a caller does not. Success answers carry no ``errcode``, as
WeChat's do.
"""
from __future__ import annotations

import base64
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import tornado.web

from .apihandler import JsonApiHandler
from .clock import Clock
from .config import SimConfig

CODE_TTL = timedelta(minutes=5)
PER_MINUTE = 100  # logins per shopper per Mini Program per minute
_FORGET_AFTER = timedelta(hours=1)  # used or expired codes still answer 40163/40029 this long
_MAX_CODES = 10_000  # codes remembered at once (the oldest are forgotten first)

ERRMSG = {
    -1: "system error",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "code blocked",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    45011: "api minute-quota reach limit mustslower retry next minute",
}
RISKS = ("", "high")


class LoginError(Exception):
    """A jscode2session answer other than success; carries the WeChat errcode."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.errmsg = ERRMSG.get(errcode, "invalid request")

    def body(self) -> dict:
        return {"errcode": self.errcode, "errmsg": self.errmsg}


@dataclass
class _Code:
    appid: str
    user: str
    issued_at: datetime
    risk: str = ""
    used: bool = False


class MiniProgramLogins:
    """The codes ``wx.login`` handed out, and their exchange for a session."""

    def __init__(
        self,
        config: SimConfig,
        clock: Clock,
        *,
        openid_of: Callable[[str, str], str],
        unionid_of: Callable[[str], str],
    ) -> None:
        self.config = config
        self.clock = clock
        self.openid_of = openid_of
        self.unionid_of = unionid_of
        self.per_minute = PER_MINUTE
        self._codes: dict[str, _Code] = {}
        self._logins: dict[str, int] = {}  # f"{minute}|{appid}|{user}" -> exchanges

    def mini_programs(self) -> list[str]:
        return [a.appid for a in self.config.apps if a.kind == "mini_program"]

    # -- wx.login -------------------------------------------------------------

    def login(self, appid: str, user: str, risk: str = "") -> str:
        """A fresh code for ``user`` in the Mini Program ``appid`` (the caller checked both)."""
        self._prune()
        code = secrets.token_hex(16)
        self._codes[code] = _Code(appid, user, self.clock.now(), risk)
        return code

    # -- sns/jscode2session ---------------------------------------------------

    def exchange(self, appid: str, secret: str, js_code: str, grant_type: str) -> dict[str, Any]:
        """Trade a code for the shopper's session; raises LoginError."""
        if not appid:
            raise LoginError(41002)
        app = self.config.app(appid)
        if app is None or app.kind != "mini_program":
            raise LoginError(40013)
        if not secret:
            raise LoginError(41004)
        if not secrets.compare_digest(secret.encode(), app.secret.encode()):
            raise LoginError(40125)
        if grant_type != "authorization_code":
            raise LoginError(40002)
        if not js_code:
            raise LoginError(41008)
        entry = self._codes.get(js_code)
        now = self.clock.now()
        if entry is None or entry.appid != appid or now - entry.issued_at >= CODE_TTL:
            raise LoginError(40029)
        if entry.used:
            raise LoginError(40163)
        if entry.risk == "high":
            raise LoginError(40226)
        window = f"{now.strftime('%Y%m%d%H%M')}|{appid}|{entry.user}"
        if self._logins.get(window, 0) >= self.per_minute:
            raise LoginError(45011)
        self._logins[window] = self._logins.get(window, 0) + 1
        entry.used = True
        reply = {
            "session_key": base64.b64encode(secrets.token_bytes(16)).decode("ascii"),
            "openid": self.openid_of(appid, entry.user),
        }
        if app.open_platform:
            reply["unionid"] = self.unionid_of(entry.user)
        return reply

    # -- upkeep and persistence -------------------------------------------------

    def _prune(self) -> None:
        now = self.clock.now()
        keep = [(k, c) for k, c in self._codes.items() if now - c.issued_at < CODE_TTL + _FORGET_AFTER]
        self._codes = dict(keep[-(_MAX_CODES - 1):])  # insertion order: the oldest go first
        minute = now.strftime("%Y%m%d%H%M")
        self._logins = {k: n for k, n in self._logins.items() if k.startswith(minute)}

    def summary(self) -> dict[str, int]:
        """Counts for the inspection view; never a code."""
        now = self.clock.now()
        return {"login_codes_pending": sum(1 for c in self._codes.values()
                                           if not c.used and now - c.issued_at < CODE_TTL)}

    def to_json(self) -> dict[str, Any]:
        return {"codes": {k: {**asdict(c), "issued_at": c.issued_at.isoformat()} for k, c in self._codes.items()}}

    def load_json(self, data: dict[str, Any]) -> None:
        self._codes = {
            k: _Code(**{**c, "issued_at": datetime.fromisoformat(c["issued_at"])})
            for k, c in data.get("codes", {}).items()
        }


# --------------------------------------------------------------------------
# HTTP handlers
# --------------------------------------------------------------------------


class JsCode2SessionHandler(JsonApiHandler):
    ENDPOINT = "sns/jscode2session"
    MUTATES = True

    def get(self) -> None:
        try:
            self.reply(self.sim.mini_program.exchange(
                self.arg("appid"), self.arg("secret"), self.arg("js_code"), self.arg("grant_type")))
        except LoginError as err:
            self.reply(err.body())


class WxLoginHandler(JsonApiHandler):
    """``POST /_sim/wx-login``: what ``wx.login()`` gives a Mini Program page.

    Form or JSON: ``user`` (a simulated shopper, default the first configured),
    ``appid`` (default: the only Mini Program, when there is one), ``risk``
    (``high`` for a shopper WeChat blocks). Answers ``{"code", "errMsg"}``
    like ``wx.login``'s success callback; a refusal is 400 ``login:fail …``.
    """

    MUTATES = True

    def post(self) -> None:
        args = self._args()
        logins: MiniProgramLogins = self.sim.mini_program
        programs = logins.mini_programs()
        appid = str(args.get("appid") or (programs[0] if len(programs) == 1 else ""))
        if appid not in programs:
            known = ", ".join(programs) or "none configured"
            return self._fail(f"appid must be one of the simulator's Mini Programs ({known})")
        user = str(args.get("user") or self.sim.oauth.default_user())
        if not self.sim.oauth.valid_user(user):
            return self._fail("user must be 1-64 characters of [A-Za-z0-9_.-]")
        risk = str(args.get("risk") or "")
        if risk not in RISKS:
            return self._fail("risk must be high, or left out")
        self.set_header("Cache-Control", "no-store")
        self.reply({"code": logins.login(appid, user, risk), "errMsg": "login:ok"})

    def _args(self) -> dict[str, Any]:
        if self.request.headers.get("Content-Type", "").startswith("application/json"):
            import json

            try:
                data = json.loads(self.request.body or b"{}")
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise tornado.web.HTTPError(400, reason="body must be a JSON object")
            return data
        return {k: self.get_body_argument(k) for k in self.request.body_arguments}

    def _fail(self, why: str) -> None:
        self.set_status(400)
        self.reply({"errMsg": f"login:fail {why}"})


def routes(sim: Any) -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    """Paths relative to wherever the simulator is mounted."""
    kw = {"sim": sim}
    return [
        (r"/sns/jscode2session", JsCode2SessionHandler, kw),
        (r"/_sim/wx-login", WxLoginHandler, kw),
    ]
