"""The audit trail: every notify and every call to WeChat, with its verdict.

Audit writes never decide an outcome: if the store cannot take the record,
the failure is logged and the payment flow goes on (its own writes will
fail loudly enough).
"""
from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any, Callable

from store.base import Store, StoreError

from .clock import utcnow
from .models import AUDIT

log = logging.getLogger("wxpay_server.audit")

MAX_RAW = 16 * 1024


class Audit:
    def __init__(self, store: Store, *, now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.now = now

    async def record(self, kind: str, *, verdict: str, raw: bytes | str | None = None, **fields: Any) -> None:
        doc: dict[str, Any] = {
            "_id": "a_" + secrets.token_hex(10),
            "kind": kind,
            "verdict": verdict,
            "at": self.now(),
        }
        if raw is not None:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            doc["raw"] = text[:MAX_RAW]
            doc["raw_truncated"] = len(text) > MAX_RAW
        doc.update({k: v for k, v in fields.items() if v is not None})
        try:
            await self.store.insert(AUDIT, doc)
        except StoreError:
            log.warning("audit record %s/%s not stored: store unavailable", kind, verdict)

    async def latest(self, kind: str, limit: int = 20) -> list[dict[str, Any]]:
        return await self.store.find(AUDIT, {"kind": kind}, sort=[("at", -1)], limit=limit)
