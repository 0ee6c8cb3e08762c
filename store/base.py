"""The one small storage interface both backends implement.

A document store with just enough verbs for a payment server: insert with
unique keys, read, filtered listing, count, and a compare-and-set update that
makes every state move race-safe. Leases and the token cache are built on
these verbs (``store/leases.py`` here, the token cache in ``service/tokens.py``), so a backend is only
the translation of this file to its database.

Documents are flat-ish ``dict``s of JSON types plus ``datetime`` (always
timezone-aware UTC; naive datetimes are refused). Every document has a string
``_id``. Field names are plain identifiers: ``[a-z_][a-z0-9_]*``.

Both backends keep datetimes at millisecond precision (BSON's) and return
them in UTC. A field under a sparse unique index is either absent or set:
null there is refused, because MongoDB would index it and SQLite would not.

``find`` may name the top-level ``fields`` to read (a projection): the
documents come back with ``_id`` and those of the fields they have, and the
backend reads no more than that, so a listing of small fields stays cheap
however large the documents are.

An index may carry ``expire_after_s`` (one datetime field): documents whose
field is older than that are deleted, eventually and in bounded batches.
MongoDB does it itself (a TTL index, checked by the server about once a
minute); SQLite has no such thing, so its store prunes from a background
task of its own. ``expire()`` runs one pass now (tests, and stores that have
a pass to run).

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
from collections.abc import Mapping, Sequence
from typing import Any

FIELD = re.compile(r"[a-z_][a-z0-9_]*")
OPERATORS = frozenset({"$in", "$nin", "$ne", "$lt", "$lte", "$gt", "$gte", "$exists"})

Doc = dict[str, Any]
Where = Mapping[str, Any]


class StoreError(Exception):
    """Root of storage errors; ``code`` is stable for API error bodies."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The database cannot be reached or did not answer in time."""

    code = "store_unavailable"


class StoreMisconfigured(StoreUnavailable):
    """The store's settings cannot work, and waiting will not change that: a
    path that is a folder or not a database, a folder that cannot be
    created or written, a URI that does not parse, credentials refused."""

    code = "store_misconfigured"


class DuplicateKey(StoreError):
    """An insert collided with a unique key (``_id`` or a unique index)."""

    code = "duplicate_key"

    def __init__(self, collection: str, field: str | None = None) -> None:
        super().__init__(f"duplicate key in {collection}" + (f" on {field}" if field else ""))
        self.collection = collection
        self.field = field


class InvalidQuery(StoreError):
    code = "invalid_query"


class InvalidDocument(InvalidQuery):
    """A document holds something one of the backends could not keep as is."""

    code = "invalid_document"


@dataclass(frozen=True)
class Index:
    """A secondary index a collection needs (declared once, built by open())."""

    collection: str
    fields: tuple[str, ...]
    unique: bool = False
    # Unique only among documents where every field exists (Mongo's partial
    # index / SQLite's partial index), e.g. idempotency keys that may be absent.
    sparse: bool = False
    # Retention: documents whose (datetime) field is older than this many
    # seconds are deleted (MongoDB: a TTL index; SQLite: the store's pruner).
    expire_after_s: int | None = None

    def __post_init__(self) -> None:
        if self.expire_after_s is not None:
            if len(self.fields) != 1 or self.unique or self.sparse:
                raise InvalidQuery("an expiring index has exactly one field and is neither unique nor sparse")
            if isinstance(self.expire_after_s, bool) or not isinstance(self.expire_after_s, int) or self.expire_after_s < 1:
                raise InvalidQuery("expire_after_s must be a positive whole number of seconds")


class Store(ABC):
    """Async document store. Implementations must never block the event loop."""

    backend: str = "abstract"

    @property
    def location(self) -> str:
        """Where the data lives, for the banner, /healthz and /status: a file
        path, or hosts and database. Never credentials or URI options."""
        return ""

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
        fields: Sequence[str] | None = None,
    ) -> list[Doc]:
        """Matching documents; ``sort`` is ``[(field, 1|-1)]``, ties broken
        by ``_id``; ``limit=0`` means no limit. With ``fields``, each document
        holds only ``_id`` and those of the named top-level fields it has."""

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

    @abstractmethod
    async def expire(self) -> int:
        """One retention pass over the expiring indexes given to ``open``:
        delete, in bounded batches, the documents past their time; returns
        how many this call deleted (0 where the database does it itself)."""


# Names already found valid: every write names the same few dozen fields, so
# the pattern runs once per name, not on every write. Only exact ``str``s are
# kept (a subclass could compare equal and differ), and the set is bounded.
_VALID_FIELDS: set[str] = set()
_VALID_FIELDS_MAX = 4096


def check_field(name: str) -> str:
    if type(name) is str and name in _VALID_FIELDS:
        return name
    if not isinstance(name, str) or not FIELD.fullmatch(name):
        raise InvalidQuery(f"invalid field name {name!r}")
    if type(name) is str and len(name) <= 64 and len(_VALID_FIELDS) < _VALID_FIELDS_MAX:
        _VALID_FIELDS.add(name)
    return name


def check_collection(name: str) -> str:
    """Collection names follow ``FIELD`` too (they become table names), and
    none may start with ``sqlite_`` (reserved by SQLite) on any backend."""
    check_field(name)
    if name.startswith("sqlite_"):
        raise InvalidQuery(f"collection name {name!r} is reserved")
    return name


def check_where(where: Where | None) -> None:
    """Refuse anything outside the filter language above (shared by backends).

    Equality and ``$ne`` take a scalar; ``$in``/``$nin`` a list of scalars;
    ranges a number, string or datetime (never ``None`` or a bool, whose
    ordering differs between databases)."""
    if where is None:
        return
    if not isinstance(where, Mapping):
        raise InvalidQuery("a filter must be a mapping")
    for field, cond in where.items():
        if field != "_id":
            check_field(field)
        if isinstance(cond, Mapping):
            if not cond:
                raise InvalidQuery(f"empty condition on {field}")
            for op, value in cond.items():
                if op not in OPERATORS:
                    raise InvalidQuery(f"operator {op!r} not allowed")
                if op in ("$in", "$nin"):
                    if not isinstance(value, (list, tuple)):
                        raise InvalidQuery(f"{op} needs a list")
                    for item in value:
                        _check_scalar(item)
                elif op == "$exists":
                    if not isinstance(value, bool):
                        raise InvalidQuery("$exists needs a bool")
                else:
                    _check_scalar(value)
                    if op != "$ne" and (value is None or isinstance(value, bool)):
                        raise InvalidQuery(f"{op} needs a number, string or datetime")
        else:
            _check_scalar(cond)


def _check_scalar(value: Any) -> None:
    if isinstance(value, Mapping):
        raise InvalidQuery("filter values must be scalars or lists")
    if isinstance(value, (list, tuple)):
        raise InvalidQuery("a list is only allowed as the value of $in or $nin")
    try:
        _check_stored(value, 0)
    except InvalidDocument as exc:
        raise InvalidQuery(str(exc)) from None


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 32


def check_doc(doc: Mapping[str, Any], *, need_id: bool = True) -> None:
    """Refuse a document either backend would store differently or not at all.

    Top-level names follow ``FIELD`` (plus ``_id``, a non-empty string);
    nested keys are strings without a leading ``$``, a ``.`` or NUL (Mongo's
    rules). Values: ``None``, bool, str, int within int64, finite float,
    aware datetime, lists and dicts of those."""
    if not isinstance(doc, Mapping):
        raise InvalidDocument("a document must be a mapping")
    if need_id:
        _id = doc.get("_id")
        if not isinstance(_id, str) or not _id:
            raise InvalidDocument("a document needs a non-empty string _id")
    for name, value in doc.items():
        if name != "_id" and not (type(name) is str and name in _VALID_FIELDS):
            if not isinstance(name, str) or not FIELD.fullmatch(name):
                raise InvalidDocument(f"invalid field name {name!r}")
            if type(name) is str and len(name) <= 64 and len(_VALID_FIELDS) < _VALID_FIELDS_MAX:
                _VALID_FIELDS.add(name)
        _check_stored(value, 1)


def _check_stored(value: Any, depth: int) -> None:
    kind = type(value)
    if value is None or kind is bool:
        return
    if kind is str and value.isascii():  # the common case, surely valid
        return
    if kind is int and INT64_MIN <= value <= INT64_MAX:
        return
    if kind is datetime and value.tzinfo is not None and value.utcoffset() is not None:
        return
    if isinstance(value, bool):
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidDocument("strings must be valid Unicode (no lone surrogates)") from None
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidDocument("integers must fit in 64 bits")
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidDocument("floats must be finite")
        return
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidDocument("naive datetime: use timezone-aware UTC")
        return
    if depth > MAX_DEPTH:
        raise InvalidDocument("document nested too deeply")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_stored(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key or key.startswith("$") or "." in key or "\0" in key:
                raise InvalidDocument(f"invalid nested key {key!r}")
            _check_stored(item, depth + 1)
        return
    raise InvalidDocument(f"cannot store a {type(value).__name__}")


def check_update(changes: Mapping[str, Any], inc: Mapping[str, int] | None) -> None:
    """Validate an ``update_if`` change set: plain fields, storable values,
    integer increments, no field both set and incremented, never ``_id``."""
    if not isinstance(changes, Mapping):
        raise InvalidQuery("changes must be a mapping")
    for name, value in changes.items():
        if name == "_id":
            raise InvalidQuery("_id cannot change")
        check_field(name)
        try:
            _check_stored(value, 1)
        except InvalidDocument as exc:
            raise InvalidQuery(str(exc)) from None
    for name, amount in (inc or {}).items():
        if name == "_id":
            raise InvalidQuery("_id cannot change")
        check_field(name)
        if not isinstance(amount, int) or isinstance(amount, bool) or not INT64_MIN <= amount <= INT64_MAX:
            raise InvalidQuery(f"inc on {name} needs a 64-bit integer")
        if name in changes:
            raise InvalidQuery(f"{name} is both set and incremented")


def check_fields(fields: Sequence[str] | None) -> tuple[str, ...] | None:
    """A projection: top-level field names, at least one; ``_id`` always comes."""
    if fields is None:
        return None
    if isinstance(fields, str) or not isinstance(fields, Sequence) or not fields:
        raise InvalidQuery("fields must be a non-empty list of field names")
    return tuple(dict.fromkeys(check_field(f) for f in fields if f != "_id"))


def check_page(sort: list[tuple[str, int]] | None, limit: int, skip: int) -> None:
    """``sort`` is ``[(field, 1|-1)]``; ``limit`` 0 means no limit."""
    for item in sort or ():
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise InvalidQuery("sort items are (field, 1|-1)")
        field, direction = item
        if field != "_id":
            check_field(field)
        if direction not in (1, -1) or isinstance(direction, bool):
            raise InvalidQuery("sort direction must be 1 or -1")
    for name, value in (("limit", limit), ("skip", skip)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidQuery(f"{name} must be a non-negative integer")


#: Page size of :func:`find_every`.
PAGE = 200


async def find_every(
    store: Store, collection: str, where: Where | None = None, *, sort: list[tuple[str, int]] | None = None,
    page: int = PAGE,
) -> list[Doc]:
    """Every matching document, read ``page`` at a time, for lists a caller
    must see whole (a checkout's orders, its refunds): a limit there would
    silently drop the rest. A document inserted meanwhile may shift a page
    and be read twice; it is kept once (documents are not deleted there)."""
    out: list[Doc] = []
    seen: set[str] = set()
    skip = 0
    while True:
        docs = await store.find(collection, where, sort=sort, limit=page, skip=skip)
        for doc in docs:
            if doc["_id"] not in seen:
                seen.add(doc["_id"])
                out.append(doc)
        if len(docs) < page:
            return out
        skip += page
