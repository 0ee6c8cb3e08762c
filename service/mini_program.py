"""Mini Program sign-in: a ``wx.login`` code traded for the shopper's openid.

A Mini Program pays with the shopper's openid *under the Mini Program's
appid*; the only way to learn it is WeChat's ``sns/jscode2session``, with
the Mini Program's AppSecret, which lives in this server. So the merchant's
backend hands us the code and gets the openid back, ready for
``POST /api/checkouts/{id}/payment``.

The ``session_key`` is returned only when asked (``include_session_key``):
a code is single-use, so a backend that needs the key (to decrypt
``wx.getPhoneNumber`` or other ``encryptedData``) cannot call WeChat again
with the same code; one that does not need it should not hold it. It is
never stored or logged here. Nothing is stored at all: a refused code costs
one call to WeChat and nothing lasting.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from wxpay.errors import (
    LoginBlockedError,
    LoginCodeError,
    LoginCodeUsedError,
    LoginRateLimitedError,
    WxPayError,
)
from wxpay.mini_program import MiniProgramSession

from .errors import Forbidden, InvalidInput, RateLimited, UpstreamError
from .validation import json_object

SESSION_FIELDS = frozenset({"code", "include_session_key"})
CODE_MAX = 128
RETRY_AFTER_S = 60  # WeChat counts a shopper's logins per minute


class LoginApi(Protocol):
    """WeChat's Mini Program login (``wxpay.mini_program.MiniProgramClient``)."""

    async def code_to_session(self, js_code: str) -> MiniProgramSession: ...


@dataclass(frozen=True)
class MiniProgramLogin:
    openid: str
    unionid: str | None = None
    session_key: str | None = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"openid": self.openid, "unionid": self.unionid}
        if self.session_key is not None:
            out["session_key"] = self.session_key
        return out


def _login_code(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > CODE_MAX or not value.isascii() \
            or not value.isprintable() or " " in value:
        raise InvalidInput(
            "invalid_login_code", f"code must be the wx.login code: 1-{CODE_MAX} visible ASCII characters"
        )
    return value


class MiniProgramLogins:
    def __init__(self, client: LoginApi | None) -> None:
        self.client = client  # None: no Mini Program configured

    async def sign_in(self, data: Any) -> MiniProgramLogin:
        """Check ``{"code", "include_session_key"?}`` and trade the code once."""
        data = json_object(data, SESSION_FIELDS)
        code = _login_code(data.get("code"))
        include = data.get("include_session_key", False)
        if not isinstance(include, bool):
            raise InvalidInput("invalid_include_session_key", "include_session_key must be true or false")
        if self.client is None:
            raise InvalidInput(
                "mini_program_not_configured",
                "No Mini Program is configured (wechat.mini_program_appid and wechat.mini_program_secret)",
            )
        try:
            session = await self.client.code_to_session(code)
        except LoginCodeUsedError as exc:
            raise InvalidInput("login_code_already_used",
                               "This wx.login code was already traded (codes are single-use); call wx.login again "
                               "and send the new code") from exc
        except LoginCodeError as exc:
            raise InvalidInput("login_code_rejected",
                               "WeChat does not accept this wx.login code (unknown, older than 5 minutes, or from "
                               "another Mini Program); call wx.login again and send the new code") from exc
        except LoginBlockedError as exc:
            raise Forbidden("login_blocked_by_wechat",
                            "WeChat blocked this shopper's login (it rates the account high-risk); the shopper "
                            "cannot sign in to the Mini Program now") from exc
        except LoginRateLimitedError as exc:
            raise RateLimited("too_many_logins",
                              "This shopper logged in more often this minute than WeChat allows (100); retry in a "
                              "minute", retry_after_s=RETRY_AFTER_S) from exc
        except WxPayError as exc:
            # A wrong appid or AppSecret (40013/40125) is ours to fix, like WeChat being away.
            raise UpstreamError(exc.code, f"WeChat could not sign the shopper in: {exc.message}") from exc
        return MiniProgramLogin(session.openid, session.unionid, session.session_key if include else None)
