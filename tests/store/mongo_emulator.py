"""In-process stand-in for the part of PyMongo's async API ``MongoStore`` uses.

No MongoDB server can be installed here, so the contract suite runs the
Mongo store against this: async methods that yield to the event loop (as
network I/O would, so tasks really interleave) and then delegate to
mongomock's synchronous collection. Errors are PyMongo's own classes.

Made faithful where the store relies on it:
- ``DuplicateKeyError`` carries ``keyPattern``/``keyValue`` and a server-like
  ``errmsg`` (mongomock gives neither);
- ``$inc`` on a non-number raises ``OperationFailure`` code 14 (TypeMismatch)
  instead of mongomock's ``TypeError``;
- unique partial indexes (``partialFilterExpression``) are honoured: mongomock
  4.3 supports them in ``create_index``;
- a TTL index (``expireAfterSeconds``) expires documents: mongomock drops
  them whenever the collection is read (a server's monitor does it about
  once a minute); re-creating an index under its name with other options
  raises ``OperationFailure`` code 85 (IndexOptionsConflict) and ``collMod``
  changes a TTL index's ``expireAfterSeconds``, as on a server;
- ``down = True`` makes every call raise ``ServerSelectionTimeoutError``, and
  ``fault`` (a callable taking the operation name) can raise anything else.

Known gaps (mongomock's, not fixed here): ``True == 1`` in equality matches
and bools sort among numbers (a real server keeps them apart); no sessions or
transactions. The contract suite does not mix bools and numbers in one field.
Updates support ``$set`` and ``$inc`` only, which is all the store sends.
"""
from __future__ import annotations

import asyncio
import copy
from typing import Any, Callable, Mapping

import mongomock
from mongomock import filtering
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure, ServerSelectionTimeoutError


class EmulatedMongoClient:
    """Looks like ``AsyncMongoClient(tz_aware=True)`` to ``MongoStore``."""

    def __init__(self) -> None:
        self._sync = mongomock.MongoClient(tz_aware=True)
        self.down = False
        self.fault: Callable[[str], None] | None = None
        self.calls = 0
        self.closed = False

    def __getitem__(self, name: str) -> EmulatedDatabase:
        return EmulatedDatabase(self, self._sync[name])

    get_database = __getitem__

    async def _gate(self, operation: str) -> None:
        await asyncio.sleep(0)  # a network round trip would let other tasks run
        self.calls += 1
        if self.down:
            raise ServerSelectionTimeoutError(f"emulated: no server reachable for {operation} (down switch on)")
        if self.fault is not None:
            self.fault(operation)

    async def close(self) -> None:
        self.closed = True


class EmulatedDatabase:
    def __init__(self, client: EmulatedMongoClient, sync: Any) -> None:
        self.client = client
        self._sync = sync

    def __getitem__(self, name: str) -> EmulatedCollection:
        return EmulatedCollection(self.client, self._sync[name])

    get_collection = __getitem__

    async def command(self, command: str | Mapping[str, Any]) -> dict[str, Any]:
        await self.client._gate("command")
        name = command if isinstance(command, str) else next(iter(command))
        if name == "collMod" and isinstance(command, Mapping):
            return self._coll_mod(command)
        if name != "ping":
            raise NotImplementedError(f"emulator: command {name!r}")
        return {"ok": 1.0}

    def _coll_mod(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Only what the store sends: change a TTL index's expireAfterSeconds."""
        spec = dict(command["index"])
        store = self._sync[command["collMod"]]._store
        current = store.indexes.get(spec["name"])
        if current is None or set(spec) != {"name", "expireAfterSeconds"}:
            raise OperationFailure(f"emulator: collMod {spec!r} not supported", 27, {"code": 27, "codeName": "IndexNotFound"})
        store.create_index(spec["name"], {**current, "expireAfterSeconds": spec["expireAfterSeconds"]})
        return {"ok": 1.0}


class EmulatedCursor:
    def __init__(self, client: EmulatedMongoClient, make: Callable[[], list[dict[str, Any]]]) -> None:
        self._client = client
        self._make = make

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        await self._client._gate("find")
        docs = self._make()
        return docs if length is None else docs[:length]

    def __aiter__(self) -> Any:
        return self._iterate()

    async def _iterate(self) -> Any:
        for doc in await self.to_list(None):
            yield doc


class EmulatedCollection:
    def __init__(self, client: EmulatedMongoClient, sync: Any) -> None:
        self.client = client
        self._sync = sync

    # ---- indexes ------------------------------------------------------------

    async def create_index(self, keys: Any, **options: Any) -> str:
        await self.client._gate("create_index")
        try:
            return self._sync.create_index(keys, **options)
        except OperationFailure as exc:
            if "already exists with different options" not in str(exc):
                raise
            details = {"ok": 0.0, "errmsg": str(exc), "code": 85, "codeName": "IndexOptionsConflict"}
            raise OperationFailure(str(exc), 85, details) from None

    async def index_information(self) -> dict[str, Any]:
        await self.client._gate("index_information")
        return self._sync.index_information()

    # ---- reads ----------------------------------------------------------------

    async def find_one(self, filter: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        await self.client._gate("find_one")
        return self._sync.find_one(dict(filter or {}))

    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        *,
        sort: Any = None,
        skip: int = 0,
        limit: int = 0,
    ) -> EmulatedCursor:
        def make() -> list[dict[str, Any]]:
            cursor = self._sync.find(dict(filter or {}), dict(projection) if projection else None)
            if sort:
                cursor = cursor.sort(list(sort))
            return list(cursor.skip(skip).limit(limit))

        return EmulatedCursor(self.client, make)

    async def count_documents(self, filter: Mapping[str, Any]) -> int:
        await self.client._gate("count_documents")
        return self._sync.count_documents(dict(filter))

    # ---- writes -----------------------------------------------------------------

    async def insert_one(self, document: Mapping[str, Any]) -> Any:
        await self.client._gate("insert_one")
        doc = copy.deepcopy(dict(document))
        try:
            return self._sync.insert_one(doc)
        except DuplicateKeyError:
            raise self._duplicate(doc, check_id=True) from None

    async def replace_one(self, filter: Mapping[str, Any], replacement: Mapping[str, Any], upsert: bool = False) -> Any:
        await self.client._gate("replace_one")
        doc = copy.deepcopy(dict(replacement))
        matched = self._sync.find_one(dict(filter))
        try:
            return self._sync.replace_one(dict(filter), doc, upsert=upsert)
        except DuplicateKeyError:
            if matched is None:  # the upsert inserted: _id comes from the filter if absent
                doc.setdefault("_id", filter.get("_id"))
                raise self._duplicate(doc, check_id=True) from None
            raise self._duplicate({**doc, "_id": matched["_id"]}, check_id=False) from None

    async def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        return_document: bool = ReturnDocument.BEFORE,
    ) -> dict[str, Any] | None:
        await self.client._gate("find_one_and_update")
        unknown = set(update) - {"$set", "$inc"}
        if unknown:
            raise NotImplementedError(f"emulator: update operators {sorted(unknown)}")
        current = self._sync.find_one(dict(filter))
        if current is None:
            return None
        for field, amount in update.get("$inc", {}).items():
            value = current.get(field, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                message = f"Cannot apply $inc to a value of non-numeric type. {{_id: {current['_id']!r}}} has the field '{field}' of non-numeric type {type(value).__name__}"
                raise OperationFailure(message, 14, {"ok": 0.0, "errmsg": message, "code": 14, "codeName": "TypeMismatch"})
        try:
            return self._sync.find_one_and_update(
                dict(filter), copy.deepcopy(dict(update)), return_document=return_document
            )
        except DuplicateKeyError:
            after = dict(current)
            after.update(update.get("$set", {}))
            for field, amount in update.get("$inc", {}).items():
                after[field] = after.get(field, 0) + amount
            raise self._duplicate(after, check_id=False) from None

    async def delete_one(self, filter: Mapping[str, Any]) -> Any:
        await self.client._gate("delete_one")
        return self._sync.delete_one(dict(filter))

    # ---- a server-like duplicate key error --------------------------------------

    def _duplicate(self, doc: Mapping[str, Any], *, check_id: bool) -> DuplicateKeyError:
        """Which unique index ``doc`` collides with, told the way a server does."""
        if check_id and self._sync.find_one({"_id": doc["_id"]}) is not None:
            return self._dup_error("_id_", {"_id": 1}, {"_id": doc["_id"]})
        for name, info in self._sync.index_information().items():
            if not info.get("unique") or name == "_id_":
                continue
            partial = info.get("partialFilterExpression")
            if partial and not filtering.filter_applies(partial, doc):
                continue
            key_value = {field: doc.get(field) for field, _ in info["key"]}
            query: dict[str, Any] = {"$and": [key_value, {"_id": {"$ne": doc["_id"]}}] + ([partial] if partial else [])}
            if self._sync.find_one(query) is not None:
                return self._dup_error(name, {field: 1 for field in key_value}, key_value)
        return DuplicateKeyError("E11000 duplicate key error (emulator could not tell which index)", 11000)

    def _dup_error(self, index: str, pattern: dict[str, int], value: dict[str, Any]) -> DuplicateKeyError:
        message = f"E11000 duplicate key error collection: {self._sync.full_name} index: {index} dup key: {value}"
        details = {"index": 0, "code": 11000, "errmsg": message, "keyPattern": pattern, "keyValue": value}
        return DuplicateKeyError(message, 11000, details)
