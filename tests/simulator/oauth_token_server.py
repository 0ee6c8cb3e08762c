"""A real Tornado server on loopback with only the OAuth and token routes.

The stand-in ``sim`` has the attributes the handlers use (.config, .clock,
.oauth, .tokens, .faults), so these tests do not depend on core.py. Routes
are mounted under a prefix to prove handlers never assume one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from wxpay.simulator import oauth, tokens
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.config import SimApp, SimConfig
from wxpay.simulator.faults import Faults

PREFIX = "/_wechat"
# 2026-01-01 15:00 UTC is 23:00 in China: a China day ends an hour in.
START = datetime(2026, 1, 1, 15, 0, tzinfo=timezone.utc)
SECOND_OA_APPID = "wx5a1d0000000000a2"
SECOND_OA_SECRET = "second0official0account0secret02"


def make_config(**kw: Any) -> SimConfig:
    base = SimConfig.demo(**kw)
    extra_app = SimApp(SECOND_OA_APPID, SECOND_OA_SECRET, "official_account")
    return SimConfig(
        apps=base.apps + (extra_app,),
        merchants=base.merchants,
        token_daily_quota=base.token_daily_quota,
        users=base.users,
        extra=base.extra,
    )


@dataclass
class Running:
    sim: Any
    base: str  # http://127.0.0.1:PORT/_wechat
    server: HTTPServer

    @property
    def clock(self) -> FakeClock:
        return self.sim.clock

    async def get(self, path: str, params: dict | None = None, **kw: Any) -> HTTPResponse:
        url = self.base + path + ("?" + urlencode(params) if params else "")
        kw.setdefault("follow_redirects", False)
        return await AsyncHTTPClient().fetch(url, raise_error=False, **kw)

    async def get_json(self, path: str, params: dict | None = None) -> dict:
        resp = await self.get(path, params)
        assert resp.code == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        return json.loads(resp.body)

    async def post_json(self, path: str, body: Any, raw: bytes | None = None) -> dict:
        data = raw if raw is not None else json.dumps(body).encode()
        resp = await AsyncHTTPClient().fetch(self.base + path, method="POST", body=data, raise_error=False)
        assert resp.code == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        return json.loads(resp.body)


def make_sim(config: SimConfig | None = None) -> SimpleNamespace:
    config = config or make_config()
    clock = FakeClock(START)
    sim = SimpleNamespace(
        config=config,
        clock=clock,
        oauth=oauth.OAuthState(config, clock),
        tokens=tokens.TokenState(config, clock),
        faults=Faults(),
        changes=0,
    )

    def changed() -> None:  # the Simulator saves its state file when told
        sim.changes += 1

    sim.changed = changed
    return sim


async def start(sim: SimpleNamespace) -> Running:
    handlers = [(PREFIX + path, cls, kw) for path, cls, kw in oauth.routes(sim) + tokens.routes(sim)]
    app = tornado.web.Application(handlers, xsrf_cookies=True)
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    return Running(sim, f"http://127.0.0.1:{port}{PREFIX}", server)


async def stop(running: Running) -> None:
    running.server.stop()
    await running.server.close_all_connections()


def location_query(resp: HTTPResponse) -> tuple[str, dict[str, list[str]]]:
    """The redirect target without its query, and the parsed query."""
    assert resp.code == 302, resp.body
    parts = urlsplit(resp.headers["Location"])
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query, keep_blank_values=True)
