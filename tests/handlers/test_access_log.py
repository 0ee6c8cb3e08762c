"""The access log keeps query names, never their values (OAuth codes, secrets)."""
from __future__ import annotations

import logging

from tornado.httpclient import AsyncHTTPClient
from tornado.testing import bind_unused_port

import server
from config import SANDBOX_MERCHANT_TOKEN, load_settings
from handlers.access_log import redact_uri


def test_redact_uri():
    assert redact_uri("/oauth/callback?code=0a1b2c&state=ff") == "/oauth/callback?code=…&state=…"
    assert redact_uri("/pay/co_1") == "/pay/co_1"
    assert redact_uri("/x?") == "/x"
    assert redact_uri("/x?SECRET%20VALUE&a=1") == "/x??=…&a=…"  # a value passed as a name is hidden too


async def test_a_served_request_logs_no_query_value(tmp_path, caplog):
    sock, port = bind_unused_port()
    settings = load_settings(None, env={}, overrides={"store.sqlite_path": str(tmp_path / "s.sqlite3"),
                                                       "reconciler.enabled": False})
    running = await server.start(settings, sockets=[sock])
    try:
        with caplog.at_level(logging.INFO, logger="tornado.access"):
            await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/oauth/callback?code=CODE4242&state=abc",
                                          raise_error=False)
        lines = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
        assert any("/oauth/callback?code=…&state=…" in line for line in lines), lines
        assert not any("CODE4242" in line for line in lines)
    finally:
        await running.stop(grace=1)


async def test_answered_status_polls_log_at_debug_failed_ones_as_usual(tmp_path, caplog):
    sock, port = bind_unused_port()
    settings = load_settings(None, env={}, overrides={"store.sqlite_path": str(tmp_path / "s.sqlite3"),
                                                       "reconciler.enabled": False})
    running = await server.start(settings, sockets=[sock])
    try:
        checkout, _ = await running.services.checkouts.create({"amount_fen": 100, "description": "poll"})
        client = AsyncHTTPClient()
        with caplog.at_level(logging.INFO, logger="tornado.access"):
            ok = await client.fetch(f"http://127.0.0.1:{port}/pay/{checkout.id}/status")
            missing = await client.fetch(f"http://127.0.0.1:{port}/pay/co_missing/status", raise_error=False)
            page = await client.fetch(f"http://127.0.0.1:{port}/pay/{checkout.id}")
        assert ok.code == 200 and missing.code == 404 and page.code == 200
        lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "tornado.access"]
        assert not any(f"/pay/{checkout.id}/status" in line for _, line in lines), lines
        assert any(level == "WARNING" and "/pay/co_missing/status" in line for level, line in lines), lines
        assert any(level == "INFO" and line.split()[2] == f"/pay/{checkout.id}" for level, line in lines), lines
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tornado.access"):
            await client.fetch(f"http://127.0.0.1:{port}/pay/{checkout.id}/status")
        assert [r.levelname for r in caplog.records if r.name == "tornado.access"] == ["DEBUG"]
    finally:
        await running.stop(grace=1)


def test_banner_hides_a_configured_merchant_token():
    default = load_settings(None, env={}).check()
    assert server.merchant_token_hint(default) == SANDBOX_MERCHANT_TOKEN
    own = load_settings(None, env={}, overrides={"merchant_api.tokens": ["mine-0123456789abcdef"]}).check()
    assert server.merchant_token_hint(own) == "(configured; not shown)"
