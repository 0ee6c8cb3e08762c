"""Mini Program login: trading a ``wx.login`` code for the shopper's session.

A Mini Program page calls ``wx.login()`` and sends the one-time code to its
backend, which calls ``sns/jscode2session`` with the Mini Program's appid and
AppSecret. WeChat answers with the shopper's openid under that Mini Program
(what a Mini Program payment needs), the ``session_key`` and, when the Mini
Program is bound to an Open platform account, the unionid.

The ``session_key`` is a secret: WeChat encrypts the shopper's data with it
(``wx.getPhoneNumber``, ``encryptedData``), and whoever holds it can forge
what the page signs with it. It is never logged, never part of a ``repr``,
and this module keeps no copy. A code is single-use and lives 5 minutes, so
the call is never retried here: a second try would only earn 40163.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from .err_codes import LOGIN_ERRCODES
from .errors import InvalidArgumentError, ProtocolError
from .oauth import _JsonApi
from .results import json_str

log = logging.getLogger("wxpay.mini_program")

ENDPOINT = "sns/jscode2session"
# wx.login codes are short ASCII tokens (WeChat's are 32 characters); this
# bounds what is sent, without guessing WeChat's exact alphabet.
_CODE = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True)
class MiniProgramSession:
    """What ``jscode2session`` answers for one login."""

    openid: str
    session_key: str = field(repr=False)
    unionid: str | None = None


def check_login_code(code: Any) -> str:
    """The code as sent by ``wx.login``: 1-128 visible ASCII characters."""
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise InvalidArgumentError("The wx.login code must be 1-128 visible ASCII characters")
    return code


class MiniProgramClient(_JsonApi):
    """One Mini Program (its appid and AppSecret)."""

    _log = log

    async def code_to_session(self, js_code: str) -> MiniProgramSession:
        """GET ``sns/jscode2session``: the shopper's openid and session for a ``wx.login`` code.

        Raises :class:`~wxpay.errors.LoginCodeError` (invalid, expired or
        another Mini Program's code), :class:`~wxpay.errors.LoginCodeUsedError`,
        :class:`~wxpay.errors.LoginBlockedError` (a high-risk shopper),
        :class:`~wxpay.errors.LoginRateLimitedError`, or the shared
        errors (a wrong appid or secret is an :class:`~wxpay.errors.ApiError`
        with ``errcode`` 40013/40125)."""
        check_login_code(js_code)
        data = await self._json(
            ENDPOINT, ENDPOINT,
            {"appid": self.appid, "secret": self._secret, "js_code": js_code, "grant_type": "authorization_code"},
            errcodes=LOGIN_ERRCODES,
        )
        session_key = data.get("session_key")
        if not isinstance(session_key, str) or not session_key:
            raise ProtocolError("WeChat's jscode2session reply lacks session_key")
        return MiniProgramSession(
            openid=json_str(data, "openid"),
            session_key=session_key,
            unionid=json_str(data, "unionid", required=False),
        )
