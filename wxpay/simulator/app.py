"""One Tornado application for all of WeChat: pay, OAuth, tokens and /_sim/.

``make_routes(sim, "/_wechat")`` lets the server mount the simulator inside
its own Application; every handler derives its URLs from the request, so any
prefix works.
"""
from __future__ import annotations

from typing import Any

import tornado.web

from . import inspect_api, mini_program, oauth, pay_handlers, shopper, tokens
from .core import Simulator
from .v3 import handlers as v3_handlers


def make_routes(sim: Simulator, prefix: str = "") -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    prefix = prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise ValueError(f"prefix must start with '/', got {prefix!r}")
    out = []
    for module in (pay_handlers, shopper, inspect_api, oauth, mini_program, tokens):
        for path, handler, kwargs in module.routes(sim):
            out.append((prefix + path, handler, kwargs))
    # V3 handlers check signatures over the path less the prefix, so they are told it.
    for path, handler, kwargs in v3_handlers.routes(sim, prefix):
        out.append((prefix + path, handler, kwargs))
    return out


def make_app(sim: Simulator, prefix: str = "", **settings: Any) -> tornado.web.Application:
    return tornado.web.Application(make_routes(sim, prefix), **settings)
