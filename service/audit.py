"""The audit trail: every notify and every call to WeChat, with its verdict.

What an outsider sends costs storage only once it is proven to come from
WeChat: a verified notify is kept with its raw body (up to ``MAX_RAW``);
anything refused before its proof of origin, and a repeat of a notify
already kept, is recorded by ``record_digest``: its verdict, size, SHA-256
and at most ``PREFIX_CHARS`` printable ASCII characters of its start,
whatever its size. The trail has a retention
period (``audit.retention_days``, enforced by the store: ``store/open.py``).

Audit writes never decide an outcome: if the store cannot take the record,
the failure is logged and the payment flow goes on (its own writes will
fail loudly enough).
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime
from typing import Any, Callable, Sequence

from store.base import Store, StoreError

from .clock import utcnow
from .models import AUDIT

log = logging.getLogger("wxpay_server.audit")

MAX_RAW = 16 * 1024
PREFIX_CHARS = 64
_TO_QUESTION = bytes(b if 0x20 <= b < 0x7F else ord("?") for b in range(256))


def digest_fields(body: bytes) -> dict[str, Any]:
    """Size, SHA-256 and a short printable prefix: what identifies a body
    without keeping it (every byte outside ASCII 0x20-0x7E becomes ``?``)."""
    head = body[:PREFIX_CHARS].translate(_TO_QUESTION).decode("ascii")
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(), "prefix": head}


class Audit:
    def __init__(self, store: Store, *, now: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.now = now

    async def record(self, kind: str, *, verdict: str, raw: bytes | str | None = None, **fields: Any) -> None:
        """A record of something verified or of our own doing; ``raw`` is
        kept up to ``MAX_RAW`` characters."""
        doc = self._doc(kind, verdict)
        if raw is not None:
            body = raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace")
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            doc["size"] = len(body)
            doc["sha256"] = hashlib.sha256(body).hexdigest()
            doc["raw"] = text[:MAX_RAW]
            doc["raw_truncated"] = len(text) > MAX_RAW
        doc.update({k: v for k, v in fields.items() if v is not None})
        await self._insert(doc)

    async def record_digest(self, kind: str, *, verdict: str, body: bytes, verified: bool, **fields: Any) -> None:
        """Verdict, size and digest, never the body: a constant cost whatever
        was sent (a refusal before any proof of origin, or a repeat)."""
        doc = self._doc(kind, verdict)
        doc.update(digest_fields(body))
        doc["verified"] = verified
        doc.update({k: v for k, v in fields.items() if v is not None})
        await self._insert(doc)

    def _doc(self, kind: str, verdict: str) -> dict[str, Any]:
        return {"_id": "a_" + secrets.token_hex(10), "kind": kind, "verdict": verdict, "at": self.now()}

    async def _insert(self, doc: dict[str, Any]) -> None:
        try:
            await self.store.insert(AUDIT, doc)
        except StoreError:
            log.warning("audit record %s/%s not stored: store unavailable", doc["kind"], doc["verdict"])

    async def latest(self, kind: str, limit: int = 20, *, fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The newest records of ``kind``; name ``fields`` to read only those."""
        return await self.store.find(AUDIT, {"kind": kind}, sort=[("at", -1)], limit=limit, fields=fields)
