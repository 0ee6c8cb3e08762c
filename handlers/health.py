"""Liveness for load balancers: is the store reachable, and how fast."""
from __future__ import annotations

from store.base import StoreError

from .base import BaseHandler


class HealthHandler(BaseHandler):
    async def get(self) -> None:
        try:
            rtt = await self.services.store.ping()
        except StoreError as exc:
            self.write_json({"ok": False, "store": self.services.store.backend, "error": exc.code,
                             "code": "store_unavailable", "message": "The order store is unavailable"}, status=503)
            return
        self.write_json({"ok": True, "store": self.services.store.backend, "store_rtt_ms": round(rtt * 1000, 2)})


def routes() -> list[tuple[str, type, dict]]:
    return [(r"/healthz", HealthHandler, {})]
