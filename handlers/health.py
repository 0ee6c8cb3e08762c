"""Liveness for load balancers: is the store reachable, and how fast; which store it is.

The store's location (a file path, or MongoDB hosts and database, never
credentials) is for the operator on the machine: it is shown to requests
from loopback (``curl 127.0.0.1:8000/healthz``, or through a trusted proxy
on this machine) and in sandbox mode, and left out for everyone else, who
has no use for the layout of the merchant's network. /status shows it to
admins from anywhere.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from store.base import StoreError

from .base import BaseHandler


class HealthHandler(BaseHandler):
    async def get(self) -> None:
        store = self.services.store
        about: dict[str, Any] = {"store": store.backend}
        if self._may_see_location():
            about["store_location"] = store.location
        try:
            rtt = await store.ping()
        except StoreError as exc:
            self.write_json({"ok": False, **about, "error": exc.code,
                             "code": "store_unavailable", "message": "The order store is unavailable"}, status=503)
            return
        self.write_json({"ok": True, **about, "store_rtt_ms": round(rtt * 1000, 2)})

    def _may_see_location(self) -> bool:
        if self.app_settings.is_sandbox:
            return True
        try:
            return ipaddress.ip_address(self.client_ip()).is_loopback
        except ValueError:
            return False


def routes() -> list[tuple[str, type, dict]]:
    return [(r"/healthz", HealthHandler, {})]
