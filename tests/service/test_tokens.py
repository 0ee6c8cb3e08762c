"""The token cache against the simulator over real HTTP, on a real SQLite file.

The simulator runs on a fake clock shared with the service, so WeChat's
rules (7200 s lifetime, a new fetch ends the old token after a 5-minute
overlap) can be lived through without waiting.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import tornado.httpserver
from tornado.httpclient import AsyncHTTPClient
from tornado.testing import bind_unused_port

from service.errors import UpstreamError
from service.tokens import TokenService
from store.leases import Leases
from store.open import INDEXES
from store.sqlite import SQLiteStore
from wxpay.endpoints import Endpoints
from wxpay.official import OfficialAccountClient
from wxpay.simulator import demo
from wxpay.simulator.app import make_app
from wxpay.simulator.clock import FakeClock
from wxpay.simulator.core import Simulator


@pytest.fixture
async def world(tmp_path):
    clock = FakeClock()
    sim = Simulator(clock=clock)
    sock, port = bind_unused_port()
    server = tornado.httpserver.HTTPServer(make_app(sim))
    server.add_sockets([sock])
    store = SQLiteStore(tmp_path / "tokens.sqlite3")
    await store.open(INDEXES)
    base = f"http://127.0.0.1:{port}"
    official = OfficialAccountClient(
        demo.OFFICIAL_ACCOUNT_APPID, demo.OFFICIAL_ACCOUNT_SECRET, endpoints=Endpoints.single(base), clock=clock.now
    )

    def service(holder: str = "p1") -> TokenService:
        return TokenService(
            store, Leases(store), official, appid=demo.OFFICIAL_ACCOUNT_APPID, holder=holder,
            refresh_ahead=timedelta(minutes=10), now=clock.now,
        )

    yield clock, sim, service, base
    server.stop()
    await server.close_all_connections()  # the client keeps its connections alive
    await store.close()


def issued(sim, kind):
    return [e for e in sim.tokens.view()["issued"] if e["kind"] == kind and e["outcome"] == "issued"]


async def test_concurrent_needs_share_one_fetch_and_the_cache(world):
    clock, sim, service, _ = world
    tokens = service()
    tickets = await asyncio.gather(*(tokens.jsapi_ticket() for _ in range(30)))
    assert len(set(tickets)) == 1
    assert len(issued(sim, "access_token")) == 1 and len(issued(sim, "jsapi_ticket")) == 1
    # A second service instance on the same store (another process) reuses the cache.
    assert await service("p2").jsapi_ticket() == tickets[0]
    assert tokens.upstream_fetches == 2


async def test_refreshed_ahead_of_expiry(world):
    clock, sim, service, _ = world
    tokens = service()
    first = await tokens.access_token()
    clock.advance(7200 - 9 * 60)  # inside the 10-minute refresh-ahead window
    second = await tokens.access_token()
    assert second != first and len(issued(sim, "access_token")) == 2


async def test_invalid_token_is_refreshed_once_then_the_call_retried(world):
    clock, sim, service, base = world
    tokens = service()
    stale = await tokens.access_token()
    # Someone else fetches a new token; after WeChat's 5-minute overlap ours is dead.
    await AsyncHTTPClient().fetch(
        f"{base}/cgi-bin/token?grant_type=client_credential&appid={demo.OFFICIAL_ACCOUNT_APPID}"
        f"&secret={demo.OFFICIAL_ACCOUNT_SECRET}"
    )
    clock.advance(6 * 60)
    assert sim.tokens.check(stale) != 0
    ticket = await tokens.jsapi_ticket()
    assert ticket
    current = await tokens.access_token()
    assert current != stale and sim.tokens.check(current) == 0
    assert len(issued(sim, "access_token")) == 3  # ours, the other system's, our one refresh


async def test_invalidate_only_drops_the_token_that_failed(world):
    clock, sim, service, _ = world
    tokens = service()
    good = await tokens.access_token()
    assert await tokens.invalidate("access_token", "some-older-token") is False
    assert await tokens.access_token() == good
    assert await tokens.invalidate("access_token", good) is True


async def test_wechat_refusing_is_an_upstream_error_with_its_code(world):
    clock, sim, service, _ = world
    sim.faults.add("cgi-bin/token", "systemerror", count=None)
    with pytest.raises(UpstreamError) as info:
        await service().access_token()
    assert info.value.code == "wechat_busy"


async def test_a_failed_fetch_is_not_repeated_per_request_but_backs_off(world):
    """While WeChat refuses, each need for a token made its own cgi-bin/token
    call (counted against the 2,000-a-day quota); now one per backoff step."""
    from service.tokens import BACKOFF_BASE, BACKOFF_MAX

    clock, sim, service, _ = world
    tokens = service()
    sim.faults.add("cgi-bin/token", "systemerror", count=None)
    asked = lambda: len([e for e in sim.tokens.view()["issued"] if e["kind"] == "access_token"])  # noqa: E731
    before = asked()
    for _ in range(20):
        with pytest.raises(UpstreamError) as info:
            await tokens.access_token()
        assert info.value.code == "wechat_busy"
    assert asked() - before == 1
    clock.advance(BACKOFF_BASE.total_seconds() + 1)
    with pytest.raises(UpstreamError):
        await tokens.access_token()
    assert asked() - before == 2  # one more attempt; the next wait is twice as long
    clock.advance(BACKOFF_BASE.total_seconds() + 1)
    with pytest.raises(UpstreamError):
        await tokens.access_token()
    assert asked() - before == 2
    sim.faults.clear()
    clock.advance(BACKOFF_MAX.total_seconds())
    assert await tokens.access_token()  # WeChat is back: fetched, and the backoff is gone
    assert asked() - before == 3
    assert await tokens.access_token() and asked() - before == 3
