"""Base handlers for the simulator's WeChat JSON APIs and browser pages.

They take the Simulator (or any object with the same attributes) through
``initialize(sim=...)``, keep codes, secrets and tokens out of the access log,
and honour ``sim.faults`` (see faults.py) for the endpoint they serve.
"""
from __future__ import annotations

import json
from typing import Any, Awaitable

import tornado.web

from .faults import V2_MARKS

# WeChat's own (odd) header value; clients must not depend on the charset.
JSON_TYPE = "application/json; encoding=utf-8"


class SimHandler(tornado.web.RequestHandler):
    # The WeChat endpoint name faults are registered under, e.g. "cgi-bin/token";
    # empty for the simulator's own pages, which faults never touch.
    ENDPOINT = ""
    # Endpoints that change simulator state tell ``sim.changed()`` so it gets saved.
    MUTATES = False
    # The reply-shaping fault kinds this endpoint honours (see faults.py).
    FAULT_MARKS: tuple[str, ...] = V2_MARKS

    def initialize(self, sim: Any) -> None:
        self.sim = sim

    def check_xsrf_cookie(self) -> None:
        """WeChat's APIs and pages carry no XSRF token of ours."""

    def _request_summary(self) -> str:
        # Tornado's access log prints this; the query holds codes, secrets and tokens.
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"

    def on_finish(self) -> None:
        changed = getattr(self.sim, "changed", None)
        if self.MUTATES and callable(changed):
            changed()

    def prepare(self) -> Awaitable[bool] | None:
        # Not a coroutine: with no fault for this endpoint (the usual case)
        # there is nothing to await, and Tornado awaits only what it is given.
        calls = getattr(self.sim, "calls", None)
        if self.ENDPOINT and calls is not None:
            calls[self.ENDPOINT] += 1
        faults = getattr(self.sim, "faults", None)
        if self.ENDPOINT and faults is not None and faults.touches(self.ENDPOINT):
            return faults.apply(self.ENDPOINT, self, self.FAULT_MARKS)  # finishing there skips the method
        return None


class JsonApiHandler(SimHandler):
    def arg(self, name: str) -> str:
        return self.get_query_argument(name, "") or ""

    def reply(self, body: dict) -> None:
        """HTTP 200 JSON, errors included, as WeChat answers."""
        faults = getattr(self.sim, "faults", None)
        if self.ENDPOINT and faults is not None:
            faults.write_json(self, body)
        else:
            self.set_header("Content-Type", JSON_TYPE)
            self.write(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
        self.finish()
