"""Guessing the admin password or the merchant API token, in parallel, over
real HTTP: refused (429 + Retry-After), not just delayed.

Each test swaps the app's lockout for one with the same policy on a clock it
can move (the app reads it per request), so expiry needs no waiting.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging

from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from handlers.lockout import admin_lockout, merchant_api_lockout

from .conftest import API_TOKEN, start_server

ADMIN_PASSWORD = "sandbox-admin"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def basic(password: str, user: str = "admin") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def parallel(base: str, path: str, headers: list[dict[str, str]]) -> list[HTTPResponse]:
    """All requests at once, on as many connections as requests."""
    client = AsyncHTTPClient(force_instance=True, max_clients=len(headers))
    try:
        return list(await asyncio.gather(*(
            client.fetch(base + path, headers=h, raise_error=False, request_timeout=30) for h in headers
        )))
    finally:
        client.close()


async def one(base: str, path: str, **headers: str) -> HTTPResponse:
    return (await parallel(base, path, [headers]))[0]


def codes(replies: list[HTTPResponse]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in replies:
        out[r.code] = out.get(r.code, 0) + 1
    return out


async def test_fifty_parallel_wrong_passwords_make_at_most_five_guesses(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="wxpay_server.admin")
    running = await start_server(tmp_path)
    clock = Clock()
    running.app.settings["admin_lockout"] = admin_lockout(clock=clock)
    base = f"http://127.0.0.1:{running.port}"
    try:
        replies = await parallel(base, "/status.json", [{"Authorization": basic(f"guess-{i}")} for i in range(50)])
        evaluated = [rec for rec in caplog.records if "admin login failed" in rec.getMessage()]
        assert codes(replies) == {401: 5, 429: 45}
        assert len(evaluated) == 5  # K = 5 guesses were compared; 45 never were
        refused = [r for r in replies if r.code == 429]
        assert all(r.headers["Retry-After"] == "30" for r in refused)
        body = json.loads(refused[0].body)
        assert body["code"] == "too_many_login_attempts" and body["details"] == {"retry_after_s": 30}
        assert "WWW-Authenticate" not in refused[0].headers
        assert any("locked for 30 s" in rec.getMessage() for rec in caplog.records)

        # Locked: even the real password is not compared (else the lock would be an oracle).
        assert (await one(base, "/status.json", Authorization=basic(ADMIN_PASSWORD))).code == 429
        page = await one(base, "/status", Authorization=basic(ADMIN_PASSWORD))
        assert page.code == 429 and page.headers["Content-Type"].startswith("text/html")
        assert "请等待 30 秒后再试".encode() in page.body and page.headers["Retry-After"] == "30"
        # A request without credentials is no attempt: the usual challenge.
        assert (await one(base, "/status.json")).code == 401

        clock.t += 30  # the lock expires: the real admin gets in
        assert (await one(base, "/status.json", Authorization=basic(ADMIN_PASSWORD))).code == 200
        assert running.app.settings["admin_lockout"].failures("127.0.0.1") == 0
    finally:
        await running.stop(grace=1)


async def test_a_flood_from_many_addresses_cannot_lock_the_admin_out_for_good(tmp_path):
    """Behind a trusted proxy (127.0.0.1), X-Forwarded-For names each source."""
    running = await start_server(tmp_path, **{"server.trusted_proxies": ["127.0.0.1"]})
    clock = Clock()
    lockout = running.app.settings["admin_lockout"] = admin_lockout(clock=clock)
    base = f"http://127.0.0.1:{running.port}"

    def from_(ip: str, password: str) -> dict[str, str]:
        return {"Authorization": basic(password), "X-Forwarded-For": ip}

    try:
        # The admin signed in from the office yesterday.
        assert (await one(base, "/status.json", **from_("203.0.113.5", ADMIN_PASSWORD))).code == 200
        clock.t += 86400
        # 300 addresses, 3 guesses each, all at once.
        flood = [from_(f"198.51.{i // 250}.{i % 250}", f"guess-{i}-{n}") for i in range(300) for n in range(3)]
        replies = await parallel(base, "/status.json", flood)
        assert codes(replies)[401] == 100  # the overall budget: 100 guesses per 10 minutes
        assert codes(replies)[429] == 800 and lockout.overall_locked()
        assert len(lockout) <= 300

        # During the flood: the office (recent success) gets in; a new address waits.
        assert (await one(base, "/status.json", **from_("203.0.113.5", ADMIN_PASSWORD))).code == 200
        away = await one(base, "/status.json", **from_("192.0.2.77", ADMIN_PASSWORD))
        assert away.code == 429 and json.loads(away.body)["message"].startswith("Too many failed admin sign-ins overall")
        # Once the window slides the lock is gone, whoever asks.
        clock.t += int(away.headers["Retry-After"])
        assert (await one(base, "/status.json", **from_("192.0.2.77", ADMIN_PASSWORD))).code == 200
    finally:
        await running.stop(grace=1)


async def test_fifty_parallel_wrong_api_tokens_make_at_most_twenty_guesses(tmp_path):
    running = await start_server(tmp_path, **{"server.trusted_proxies": ["127.0.0.1"]})
    clock = Clock()
    running.app.settings["api_lockout"] = merchant_api_lockout(clock=clock)
    base = f"http://127.0.0.1:{running.port}"
    try:
        # Legitimate parallel traffic is never refused.
        good = await parallel(base, "/api/checkouts", [{"Authorization": f"Bearer {API_TOKEN}"}] * 50)
        assert codes(good) == {200: 50}

        wrong = [{"Authorization": f"Bearer guess-{i}", "X-Forwarded-For": "198.51.100.9"} for i in range(50)]
        replies = await parallel(base, "/api/checkouts", wrong)
        assert codes(replies) == {401: 20, 429: 30}
        refused = next(r for r in replies if r.code == 429)
        assert json.loads(refused.body)["code"] == "too_many_token_attempts" and refused.headers["Retry-After"] == "1"
        # That source waits, even with the right token; other sources do not.
        right = {"Authorization": f"Bearer {API_TOKEN}"}
        assert (await one(base, "/api/checkouts", **right, **{"X-Forwarded-For": "198.51.100.9"})).code == 429
        assert (await one(base, "/api/checkouts", **right)).code == 200
        clock.t += 1
        assert (await one(base, "/api/checkouts", **right, **{"X-Forwarded-For": "198.51.100.9"})).code == 200
        # No token at all is not a guess.
        assert (await one(base, "/api/checkouts", **{"X-Forwarded-For": "198.51.100.10"})).code == 401
    finally:
        await running.stop(grace=1)
