"""Official Account basics: access_token, stable_token, jsapi_ticket.

No caching here: each fetch of ``cgi-bin/token`` invalidates the previous
token, so one central refresher (the server, with its store and lease) must
own the cache. A stale token surfaces as :class:`TokenInvalidError`
(40001/40014/42001) so that refresher knows to fetch anew.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from .errors import InvalidArgumentError
from .oauth import _JsonApi
from .results import json_int, json_str

log = logging.getLogger("wxpay.official")

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_in: int
    obtained_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.obtained_at + timedelta(seconds=self.expires_in)


@dataclass(frozen=True)
class JsapiTicket:
    value: str = field(repr=False)
    expires_in: int
    obtained_at: datetime | None = None

    @property
    def expires_at(self) -> datetime | None:
        if self.obtained_at is None:
            return None
        return self.obtained_at + timedelta(seconds=self.expires_in)


class OfficialAccountClient(_JsonApi):
    _log = log

    def __init__(self, appid: str, secret: str, *, clock: Clock = _utcnow, **kw) -> None:
        super().__init__(appid, secret, **kw)
        self._clock = clock

    async def access_token(self) -> AccessToken:
        """GET cgi-bin/token. Each call invalidates the previous token after 5 minutes."""
        obtained = self._clock()
        data = await self._json(
            "cgi-bin/token",
            "cgi-bin/token",
            {"grant_type": "client_credential", "appid": self.appid, "secret": self._secret},
        )
        return AccessToken(json_str(data, "access_token"), json_int(data, "expires_in"), obtained)

    async def stable_token(self, force_refresh: bool = False) -> AccessToken:
        """POST cgi-bin/stable_token: a token space of its own, stable across callers."""
        if not isinstance(force_refresh, bool):
            raise InvalidArgumentError("force_refresh must be a bool")
        obtained = self._clock()
        data = await self._json(
            "cgi-bin/stable_token",
            "cgi-bin/stable_token",
            {},
            json_body={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._secret,
                "force_refresh": force_refresh,
            },
        )
        return AccessToken(json_str(data, "access_token"), json_int(data, "expires_in"), obtained)

    async def jsapi_ticket(self, access_token: str) -> JsapiTicket:
        """GET cgi-bin/ticket/getticket?type=jsapi, for the JSSDK wx.config signature."""
        if not isinstance(access_token, str) or not access_token:
            raise InvalidArgumentError("access_token is required")
        obtained = self._clock()
        data = await self._json(
            "cgi-bin/ticket/getticket",
            "cgi-bin/ticket/getticket",
            {"access_token": access_token, "type": "jsapi"},
        )
        return JsapiTicket(json_str(data, "ticket"), json_int(data, "expires_in"), obtained)
