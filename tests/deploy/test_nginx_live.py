"""A live-mode server behind deploy/nginx-site.conf: the security headers reach the client,
once each, on the server's answers and on nginx's own (a refused body, a server that is down)."""
from __future__ import annotations

import pytest

from tests.server.browser import as_json
from tests.server.live import start_live

from .clients import Via
from .nginx import MISSING, Nginx, nginx_available

pytestmark = [pytest.mark.deploy, pytest.mark.skipif(not nginx_available(), reason=MISSING)]

HSTS = "max-age=31536000"


def security_headers_once(response) -> None:
    assert response.headers.get_list("Strict-Transport-Security") == [HSTS]
    assert response.headers.get_list("X-Content-Type-Options") == ["nosniff"]
    assert response.headers.get_list("Server") == ["nginx"]  # server_tokens off: no version


async def test_security_headers_reach_the_client_through_nginx(tmp_path):
    running = await start_live(tmp_path, **{"server.trusted_proxies": ["127.0.0.1/32"]})
    nginx = Nginx(running.port).start()
    try:
        client = Via(nginx.base, ca=nginx.cert, source="127.0.0.8")
        for path in ("/healthz", "/no-such-page", "/api/openapi.json"):
            r = await client.get(path)
            assert r.code in (200, 404), (path, r.code)
            security_headers_once(r)

        too_large = await client.post("/api/checkouts", body=b"{" + b" " * 70000 + b"}",
                                      headers={"Content-Type": "application/json"})
        assert too_large.code == 413 and as_json(too_large)["code"] == "body_too_large"
        security_headers_once(too_large)

        await running.stop(grace=2)
        running = None
        down = await client.get("/healthz")
        assert down.code == 502 and as_json(down)["code"] == "server_unavailable"
        security_headers_once(down)
        assert down.headers["Retry-After"] == "5"
    finally:
        nginx.stop()
        if running is not None:
            await running.stop(grace=2)
