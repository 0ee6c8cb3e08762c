"""A real wxpay-server on loopback: sandbox mode, a real SQLite file, the
simulator mounted in-process, exactly as `python server.py` builds it."""
from __future__ import annotations

from typing import Any, AsyncIterator

import pytest
from tornado.testing import bind_unused_port

import server
from config import load_settings

from .browser import Browser

API_TOKEN = "sandbox-merchant-token"


# The API versions a test runs under when it says so (``@BOTH_VERSIONS``); every
# other test runs the default, APIv2.
API_VERSIONS = ("v2", "v3")
BOTH_VERSIONS = pytest.mark.parametrize("api_version", API_VERSIONS, indirect=True)


def sandbox_settings(tmp_path, **overrides: Any):
    values = {
        "store.sqlite_path": str(tmp_path / "wxpay.sqlite3"),
        "simulator.notify_time_scale": 1000.0,
        "reconciler.enabled": False,
        **overrides,
    }
    return load_settings(None, env={}, overrides=values)


async def start_server(tmp_path, **overrides: Any) -> server.Running:
    sock, _port = bind_unused_port()
    return await server.start(sandbox_settings(tmp_path, **overrides), sockets=[sock])


@pytest.fixture
def api_version(request) -> str:
    """``wechat.api_version`` of the ``running`` server: "v2" unless a test is
    parametrized over both (``@BOTH_VERSIONS``)."""
    return getattr(request, "param", "v2")


@pytest.fixture
async def running(tmp_path, api_version) -> AsyncIterator[server.Running]:
    instance = await start_server(tmp_path, **{"wechat.api_version": api_version})
    try:
        yield instance
    finally:
        await instance.stop(grace=2)


@pytest.fixture
def base_url(running) -> str:
    return f"http://127.0.0.1:{running.port}"


@pytest.fixture
def merchant(base_url) -> Browser:
    b = Browser(base_url)
    b.token_headers = {"Authorization": f"Bearer {API_TOKEN}"}  # type: ignore[attr-defined]
    return b
