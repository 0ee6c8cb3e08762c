"""Routes are tried in order; Tornado put its static-file routes first, the
server moves them last (wiring/web.py). Every static path must still reach
the static handler, and every other route the handler it reached before."""
from __future__ import annotations

from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from handlers.pay import StatusHandler
from handlers.static_files import StaticFiles
from wiring.web import WEB

from .browser import Browser


def target(app, path: str) -> type:
    request = HTTPServerRequest(start_line=RequestStartLine("GET", path, "HTTP/1.1"), headers=HTTPHeaders({"Host": "127.0.0.1"}))
    delegate = app.find_handler(request)
    return delegate.handler_class


async def test_static_paths_still_reach_the_static_handler_and_the_rest_their_own(running, base_url):
    app = running.app  # sandbox: the simulator's routes are mounted too
    rules = app.wildcard_router.rules
    assert [r.target for r in rules[-3:]] == [StaticFiles] * 3
    assert all(r.target is not StaticFiles for r in rules[:-3])
    for path in ("/static/style.css", "/static/pay.js", "/static/x/../style.css", "/favicon.ico", "/robots.txt"):
        assert target(app, path) is StaticFiles, path
    assert target(app, "/pay/co_000000000000000000000000/status") is StatusHandler
    # Served, with the file's bytes, as before.
    browser = Browser(base_url)
    css = await browser.get("/static/style.css")
    assert css.code == 200 and css.body == (WEB / "static" / "style.css").read_bytes()
    assert (await browser.get("/robots.txt")).code == 404  # no such file: the static handler's 404
