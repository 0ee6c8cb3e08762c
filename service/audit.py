"""The audit trail: every notify and every call to WeChat, with its verdict.

What an outsider sends costs storage only once it is proven to come from
WeChat: a verified notify is kept with its raw body (up to ``MAX_RAW``);
anything refused before its proof of origin, and a repeat of a notify
already kept, is recorded by ``record_digest``: its verdict, size, SHA-256
and at most ``PREFIX_CHARS`` printable ASCII characters of its start,
whatever its size. The trail has a retention
period (``audit.retention_days``, enforced by the store: ``store/open.py``).

Every call to WeChat about one order or refund is recorded too
(:meth:`Audit.wechat_call`: what was asked, how it ended, how long it took),
so a checkout's timeline in the console shows each query, close and refund.

Audit writes never decide an outcome: if the store cannot take the record,
the failure is logged and the payment flow goes on (its own writes will
fail loudly enough). The one exception is an operator's action in the
console (:meth:`Audit.claim`): it is recorded *before* it is done, and not
done when it cannot be recorded, so no action goes unrecorded and a form
submitted twice acts once.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Callable, Sequence

from store.base import DuplicateKey, Store, StoreError
from wxpay import causes
from wxpay.errors import WxPayError

from .clock import utcnow
from .errors import ServiceError
from .guard import store_guard
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


WECHAT_CALL = "wechat_call"
CONSOLE = "console"
CLAIM_STALE = timedelta(minutes=2)  # longer than any console action takes (WeChat's timeouts included)


@dataclass
class Call:
    """One call to WeChat being recorded; the caller may name its result (a trade state, say)."""

    result: str | None = None


def claim_id(key: str) -> str:
    """The record of the console action a form's key names (one per key, whoever submits it)."""
    return "a_console_" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


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

    @asynccontextmanager
    async def wechat_call(self, endpoint: str, **keys: Any) -> AsyncIterator[Call]:
        """Record one call to WeChat made inside the block: ``ok`` (with the
        caller's ``Call.result``) or the error's code and cause, and its
        latency. The error still propagates; the record never blocks it."""
        call = Call()
        started = time.perf_counter()
        try:
            yield call
        except WxPayError as exc:
            await self.record(
                WECHAT_CALL, verdict=exc.code, ok=False, endpoint=endpoint, cause=causes.of(exc),
                err_code=getattr(exc, "err_code", None), latency_ms=_ms_since(started), **keys,
            )
            raise
        except Exception as exc:  # not WeChat's answer (our store, a bug): still a call that did not end well
            await self.record(
                WECHAT_CALL, verdict="error", ok=False, endpoint=endpoint, error=type(exc).__name__,
                latency_ms=_ms_since(started), **keys,
            )
            raise
        await self.record(
            WECHAT_CALL, verdict="ok", ok=True, endpoint=endpoint, result=call.result,
            latency_ms=_ms_since(started), **keys,
        )

    # -- the console's actions ------------------------------------------------------

    async def claim(self, key: str, **fields: Any) -> bool:
        """Record an operator's action before it is done: ``False`` when this
        key's action was recorded already (a second submit of the same form).
        Raises ``Unavailable`` when the store cannot take it: then the action
        must not be done."""
        doc = self._doc(CONSOLE, "started")
        doc["_id"] = claim_id(key)
        doc.update({k: v for k, v in fields.items() if v is not None})
        try:
            with store_guard():
                await self.store.insert(AUDIT, doc)
        except DuplicateKey:
            return await self._take_over(doc)
        return True

    async def _take_over(self, doc: dict[str, Any]) -> bool:
        """A claim left ``started`` for longer than ``CLAIM_STALE`` (its process
        stopped mid-action) may be taken over, once: the actions behind it are
        idempotent by their key, so finishing one twice does it once."""
        with store_guard():
            old = await self.store.get(AUDIT, doc["_id"])
            if old is None or old.get("verdict") != "started" or old.get("at") is None:
                return False
            if self.now() - old["at"] < CLAIM_STALE:
                return False
            changes = {k: v for k, v in doc.items() if k != "_id"}
            changes["taken_over_from"] = old.get("user")
            moved = await self.store.update_if(AUDIT, doc["_id"], {"verdict": "started", "at": old["at"]}, changes)
        return moved is not None

    async def conclude(self, key: str, verdict: str, **fields: Any) -> None:
        """How a claimed action ended (its code, or ``done``)."""
        changes = {k: v for k, v in fields.items() if v is not None}
        changes.update(verdict=verdict, ended_at=self.now())
        try:
            await self.store.update_if(AUDIT, claim_id(key), {"kind": CONSOLE}, changes)
        except StoreError:
            log.error("console action %s ended %s but its record could not be updated", claim_id(key), verdict)

    async def release(self, key: str, verdict: str, **fields: Any) -> None:
        """A claimed action that was refused: its record is kept (under an id
        of its own) and the key freed, so the same form may be sent again
        once the cause is fixed (WeChat back, say)."""
        try:
            with store_guard():
                doc = await self.store.get(AUDIT, claim_id(key))
                if doc is None or doc.get("kind") != CONSOLE:
                    return
                doc.update({k: v for k, v in fields.items() if v is not None})
                doc.update(_id="a_" + secrets.token_hex(10), verdict=verdict, ended_at=self.now(), key_released=True)
                await self.store.insert(AUDIT, doc)
                await self.store.delete_if(AUDIT, claim_id(key), {"kind": CONSOLE})
        except ServiceError:
            log.error("console action %s refused (%s) but its record could not be updated", claim_id(key), verdict)

    async def claimed(self, key: str) -> dict[str, Any] | None:
        """The record of the action ``key`` names, if any."""
        with store_guard():
            doc = await self.store.get(AUDIT, claim_id(key))
        return doc if doc is not None and doc.get("kind") == CONSOLE else None

    # -- reading ------------------------------------------------------------------

    async def about(
        self, *, checkout_id: str, out_trade_nos: Sequence[str] = (), out_refund_nos: Sequence[str] = (),
        limit: int = 500,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Every record about one checkout (by its id, its orders' and its
        refunds' numbers), oldest first, at most ``limit``; and whether
        there were more. Each lookup uses its own index."""
        lookups: list[dict[str, Any]] = [{"checkout_id": checkout_id}]
        if out_trade_nos:
            lookups.append({"out_trade_no": {"$in": list(out_trade_nos)}})
        if out_refund_nos:
            lookups.append({"out_refund_no": {"$in": list(out_refund_nos)}})
        found: dict[str, dict[str, Any]] = {}
        more = False
        with store_guard():
            for where in lookups:
                docs = await self.store.find(AUDIT, where, sort=[("at", 1)], limit=limit + 1)
                more = more or len(docs) > limit
                for doc in docs[:limit]:
                    found.setdefault(doc["_id"], doc)
        records = sorted(found.values(), key=lambda d: (d.get("at") or self.now(), d["_id"]))
        return records[:limit], more or len(records) > limit

    async def latest(self, kind: str, limit: int = 20, *, fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The newest records of ``kind``; name ``fields`` to read only those."""
        return await self.store.find(AUDIT, {"kind": kind}, sort=[("at", -1)], limit=limit, fields=fields)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
