"""A real wxpay-server in live mode on loopback (no simulator, real WeChat URLs never called)."""
from __future__ import annotations

from typing import Any

from tornado.testing import bind_unused_port

import server
from config import load_settings


async def start_live(tmp_path, **overrides: Any) -> server.Running:
    values = {
        "mode": "live",
        "store.sqlite_path": str(tmp_path / "live.sqlite3"),
        "reconciler.enabled": False,
        "server.public_url": "https://pay.example.com",
        "server.cookie_secret": "c" * 40,
        "merchant_api.tokens": ["t" * 40],
        "wechat.appid": "wx1234567890abcdef",
        "wechat.app_secret": "s" * 32,
        "wechat.mch_id": "1900000109",
        "wechat.api_key": "k" * 32,
        **overrides,
    }
    sock, _port = bind_unused_port()
    return await server.start(load_settings(None, env={}, overrides=values), sockets=[sock])
