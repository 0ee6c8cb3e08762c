"""The merchant API for Mini Program backends: a ``wx.login`` code in, the shopper's openid out."""
from __future__ import annotations

from .base import ApiHandler


class MiniProgramSessionsHandler(ApiHandler):
    async def post(self) -> None:
        login = await self.services.mini_program.sign_in(self.json_body())
        self.write_json(login.public())


def routes() -> list[tuple[str, type, dict]]:
    return [(r"/api/mini-program/sessions", MiniProgramSessionsHandler, {})]
