"""The one small storage interface both backends implement.

A document store with just enough verbs for a payment server: insert with
unique keys, read, filtered listing, count, and a compare-and-set update that
makes every state move race-safe. Leases and the token cache are built on
these verbs (``store/leases.py``, ``store/tokens.py``), so a backend is only
the translation of this file to its database.

Documents are flat-ish ``dict``s of JSON types plus ``datetime`` (always
timezone-aware UTC; naive datetimes are refused). Every document has a string
``_id``. Field names are plain identifiers: ``[a-z_][a-z0-9_]*``.

Filters (``where``) are ``{field: value}`` for equality, or
``{field: {op: value}}`` with ``op`` one of ``$in $nin $ne $lt $lte $gt $gte
$exists``. Nothing else is accepted, so no caller input can become an
operator or SQL.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")
OPERATORS = frozenset({"$in", "$nin", "$ne", "$lt", "$lte", "$gt", "$gte", "$exists"})

Doc = dict[str, Any]
Where = Mapping[str, Any]


class StoreError(Exception):
    """Root of storage errors; ``code`` is stable for API error bodies."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The database cannot be reached or did not answer in time."""

    code = "store_unavailable"


class DuplicateKey(StoreError):
    """An insert collided with a unique key (``_id`` or a unique index)."""

    code = "duplicate_key"

    def __init__(self, collection: str, field: str | None = None) -> None:
        super().__init__(f"duplicate key in {collection}" + (f" on {field}" if field else ""))
        self.collection = collection
        self.field = field


class InvalidQuery(StoreError):
    code = "invalid_query"


@dataclass(frozen=True)
class Index:
    """A secondary index a collection needs (declared once, built by open())."""

    collection: str
    fields: tuple[str, ...]
    unique: bool = False
    # Unique only among documents where every field exists (Mongo's partial
    # index / SQLite's partial index), e.g. idempotency keys that may be absent.
    sparse: bool = False


class Store(ABC):
    """Async document store. Implementations must never block the event loop."""

    backend: str = "abstract"

    @abstractmethod
    async def open(self, indexes: list[Index]) -> None:
        """Connect and make sure the given indexes exist."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> float:
        """Round-trip time in seconds; raises :class:`StoreUnavailable`."""

    @abstractmethod
    async def insert(self, collection: str, doc: Doc) -> None:
        """Insert; raises :class:`DuplicateKey` on ``_id`` or a unique index."""

    @abstractmethod
    async def get(self, collection: str, _id: str) -> Doc | None: ...

    @abstractmethod
    async def find(
        self,
        collection: str,
        where: Where | None = None,
        *,
        sort: list[tuple[str, int]] | None = None,
        limit: int = 100,
        skip: int = 0,
    ) -> list[Doc]:
        """Matching documents; ``sort`` is ``[(field, 1|-1)]``."""

    @abstractmethod
    async def count(self, collection: str, where: Where | None = None) -> int: ...

    @abstractmethod
    async def update_if(
        self,
        collection: str,
        _id: str,
        expect: Where,
        changes: Mapping[str, Any],
        *,
        inc: Mapping[str, int] | None = None,
    ) -> Doc | None:
        """Compare-and-set: apply ``changes`` (set) and ``inc`` (add) to the
        document with ``_id`` only if it also matches ``expect``; return the
        updated document, or ``None`` when nothing matched. Atomic."""

    @abstractmethod
    async def upsert_if(
        self, collection: str, _id: str, expect: Where, doc: Doc
    ) -> bool:
        """Write ``doc`` at ``_id`` if none exists or the existing one matches
        ``expect``; ``True`` if written. Atomic (leases rest on this)."""

    @abstractmethod
    async def delete_if(self, collection: str, _id: str, expect: Where | None = None) -> bool: ...


def check_field(name: str) -> str:
    if not isinstance(name, str) or not FIELD.match(name):
        raise InvalidQuery(f"invalid field name {name!r}")
    return name


def check_where(where: Where | None) -> None:
    """Refuse anything outside the filter language above (shared by backends)."""
    for field, cond in (where or {}).items():
        if field != "_id":
            check_field(field)
        if isinstance(cond, Mapping):
            if not cond:
                raise InvalidQuery(f"empty condition on {field}")
            for op, value in cond.items():
                if op not in OPERATORS:
                    raise InvalidQuery(f"operator {op!r} not allowed")
                if op in ("$in", "$nin") and not isinstance(value, (list, tuple)):
                    raise InvalidQuery(f"{op} needs a list")
                if op == "$exists" and not isinstance(value, bool):
                    raise InvalidQuery("$exists needs a bool")
                _check_value(value)
        else:
            _check_value(cond)


def _check_value(value: Any) -> None:
    if isinstance(value, datetime) and value.tzinfo is None:
        raise InvalidQuery("naive datetime: use timezone-aware UTC")
    if isinstance(value, Mapping):
        raise InvalidQuery("filter values must be scalars or lists")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(item)
