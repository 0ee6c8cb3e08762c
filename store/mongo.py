"""MongoDB backend through PyMongo's native async client (``AsyncMongoClient``).

Motor is end-of-life; PyMongo's async API is its maintained successor.
The client is built with explicit timeouts so a dead server turns into
:class:`StoreUnavailable` within seconds instead of hanging a request.

Compare-and-set is MongoDB's own: ``find_one_and_update`` with the filter
``{_id, **expect}``; ``upsert_if`` is ``replace_one(..., upsert=True)`` where a
duplicate ``_id`` means another writer holds a non-matching document, i.e.
"not written". Filters pass ``base.check_where`` first, so caller data can
never become an operator (``$where``, ``$expr`` ...).

Retention (``Index.expire_after_s``) is a TTL index (``expireAfterSeconds``):
the server deletes expired documents itself, about once a minute, so
``expire`` has nothing to do. A changed retention is applied to the existing
index with ``collMod`` instead of failing on the options conflict.

Datetimes come back timezone-aware in UTC (``tz_aware=True``) at BSON's
millisecond precision, the same precision the SQLite backend keeps.
"""
from __future__ import annotations

import re
import time
import warnings
from datetime import datetime, timezone
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from store.base import (
    Doc,
    DuplicateKey,
    Index,
    InvalidDocument,
    InvalidQuery,
    Store,
    StoreError,
    StoreMisconfigured,
    StoreUnavailable,
    Where,
    check_collection,
    check_doc,
    check_field,
    check_fields,
    check_page,
    check_update,
    check_where,
)

_TYPE_MISMATCH = 14  # server code for e.g. $inc on a string
_INDEX_OPTIONS_CONFLICT = 85  # an index of that name exists with other options (a changed TTL)
_INDEX_IN_MESSAGE = re.compile(r"index: (\S+) dup key")

#: Client options; every wait is bounded. The timeouts are defaults: the
#: same option in the URI's query (``?serverSelectionTimeoutMS=1500``) wins.
#: serverSelectionTimeoutMS also bounds how long start-up waits for the server.
CLIENT_OPTIONS: dict[str, Any] = {
    "tz_aware": True,
    "serverSelectionTimeoutMS": 5_000,
    "connectTimeoutMS": 5_000,
    "socketTimeoutMS": 10_000,
    "appname": "wxpay-server",
}
_URI_MAY_SET = frozenset({"serverselectiontimeoutms", "connecttimeoutms", "sockettimeoutms", "appname"})
_AUTH_FAILED = frozenset({18, 13})  # AuthenticationFailed, Unauthorized


def uri_parts(uri: str) -> tuple[str, str, str, dict[str, str]]:
    """(scheme, hosts, userinfo, options) of a MongoDB URI, without validating it."""
    scheme, _, rest = uri.partition("://")
    netloc, _, tail = rest.partition("/")
    if "?" in netloc:  # mongodb://host?opts, no database
        netloc, _, tail = netloc.partition("?")
        tail = "?" + tail
    userinfo, _, hosts = netloc.rpartition("@")
    try:
        options = {k.lower(): v for k, v in parse_qsl(urlsplit(uri).query)}
    except ValueError:
        options = {}
    return scheme.lower(), hosts, userinfo, options


def mongo_location(uri: str, database: str) -> str:
    """``mongodb://host1:27017,host2/wxpay``: hosts and database, no credentials, no options."""
    scheme, hosts, _userinfo, _options = uri_parts(uri)
    return f"{scheme}://{hosts or '?'}/{database}"


def _scrub(text: str, uri: str) -> str:
    """Driver messages may quote the URI: never let its credentials through."""
    _scheme, _hosts, userinfo, _options = uri_parts(uri)
    if not userinfo:
        return text
    user, _, password = userinfo.partition(":")
    secrets = {userinfo, unquote(userinfo), password, unquote(password)}
    if len(user) >= 4:  # a user name is not a secret, but a long one may be a token
        secrets |= {user, unquote(user)}
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _selection_reason(exc: ServerSelectionTimeoutError) -> str:
    """The first server's error of a selection timeout, without the topology dump."""
    text = str(exc).split(", Timeout:", 1)[0]
    return re.sub(r" \(configured timeouts:[^)]*\)", "", text).strip()


def _index_name(index: Index) -> str:
    return (
        "ix_" + "__".join(index.fields) + ("__u" if index.unique else "") + ("__s" if index.sparse else "")
        + ("__ttl" if index.expire_after_s is not None else "")
    )


def _utc(value: Any) -> Any:
    """Returned datetimes carry bson's UTC tzinfo; give callers the stdlib one."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    if isinstance(value, dict):
        return {k: _utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utc(v) for v in value]
    return value


def _no_id(expect: Where | None) -> None:
    if expect and "_id" in expect:
        raise InvalidQuery("the _id is given separately; leave it out of expect")


class MongoStore(Store):
    """Document store on MongoDB; give it a URI or a ready client (tests pass
    the emulator). A client passed in is not closed by :meth:`close`."""

    backend = "mongo"

    def __init__(self, client_or_uri: Any, database: str = "wxpay", **client_options: Any) -> None:
        if isinstance(client_or_uri, str):
            self._uri: str | None = client_or_uri
            self._client: Any = None
            self._owns_client = True
            in_uri = uri_parts(client_or_uri)[3]
            defaults = {k: v for k, v in CLIENT_OPTIONS.items() if k.lower() not in _URI_MAY_SET & set(in_uri)}
        else:
            self._uri = None
            self._client = client_or_uri
            self._owns_client = False
            defaults = dict(CLIENT_OPTIONS)
        self._client_options = {**defaults, **client_options}
        self.database = database
        self._db: Any = None
        self._index_fields: dict[tuple[str, str], tuple[str, ...]] = {}
        self._sparse: dict[str, set[str]] = {}

    # ---- plumbing ----------------------------------------------------------

    def _coll(self, collection: str) -> Any:
        check_collection(collection)
        if self._db is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._db[collection]

    def _error(self, collection: str, exc: PyMongoError) -> StoreError:
        """One mapping from driver errors to store errors."""
        if isinstance(exc, DuplicateKeyError):
            return DuplicateKey(collection, self._dup_field(collection, exc))
        if isinstance(exc, ConnectionFailure) or getattr(exc, "timeout", False):
            return StoreUnavailable(f"MongoDB unavailable: {type(exc).__name__}")
        if isinstance(exc, OperationFailure) and exc.code == _TYPE_MISMATCH:
            return InvalidQuery(f"MongoDB refused the update: {exc.details.get('errmsg') if exc.details else exc}")
        return StoreError(f"MongoDB error: {type(exc).__name__}: {exc}")

    def _dup_field(self, collection: str, exc: DuplicateKeyError) -> str | None:
        details = exc.details or {}
        pattern = details.get("keyPattern")
        if isinstance(pattern, Mapping) and pattern:
            return ",".join(pattern)
        found = _INDEX_IN_MESSAGE.search(str(details.get("errmsg") or exc))
        if found:
            if found.group(1) == "_id_":
                return "_id"
            fields = self._index_fields.get((collection, found.group(1)))
            return ",".join(fields) if fields else None
        return None

    def _check_sparse(self, collection: str, doc: Mapping[str, Any]) -> None:
        for field in self._sparse.get(collection, ()):
            if field in doc and doc[field] is None:
                raise InvalidDocument(f"{field} has a sparse unique index: leave it out instead of null")

    # ---- lifecycle -----------------------------------------------------------

    @property
    def location(self) -> str:
        if self._uri is None:
            return f"(a client given by the caller)/{self.database}"
        return mongo_location(self._uri, self.database)

    @property
    def selection_timeout_s(self) -> float:
        """How long an operation (and so start-up) waits for a server to answer."""
        uri_value = uri_parts(self._uri)[3].get("serverselectiontimeoutms") if self._uri else None
        value = self._client_options.get("serverSelectionTimeoutMS", uri_value)
        try:
            return float(value) / 1000
        except (TypeError, ValueError):
            return CLIENT_OPTIONS["serverSelectionTimeoutMS"] / 1000

    async def open(self, indexes: list[Index]) -> None:
        if self._client is None:
            self._client = await self._new_client()
        self._db = self._client[self.database]
        try:
            await self.ping()
        except StoreError as exc:
            raise self._open_error(exc.__cause__, exc) from None
        for index in indexes:
            await self._create_index(index)

    async def _new_client(self) -> Any:
        """The driver's client, or one clear error: a URI that does not parse
        (ValueError for a bad port, InvalidURI, an unknown or mistyped option,
        which the driver only warns about) is refused before any connection."""
        uri = self._uri or ""
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                client = AsyncMongoClient(uri, **self._client_options)
        except (PyMongoError, ValueError, TypeError) as exc:
            raise StoreMisconfigured(f"not a usable MongoDB URI ({_scrub(str(exc), uri)})") from None
        if caught:
            await client.close()
            named = ", ".join(sorted(uri_parts(uri)[3]))
            words = _scrub(str(caught[0].message), uri) + (f"; the URI's options: {named}" if named else "")
            raise StoreMisconfigured(f"not a usable MongoDB URI ({words})")
        return client

    def _open_error(self, driver_exc: BaseException | None, exc: StoreError) -> StoreError:
        uri = self._uri or ""
        where = self.location
        if isinstance(driver_exc, ServerSelectionTimeoutError):
            reason = _scrub(_selection_reason(driver_exc), uri)
            return StoreUnavailable(
                f"no MongoDB server answered at {where} within {self.selection_timeout_s:g} s "
                f"(serverSelectionTimeoutMS): {reason}"
            )
        if isinstance(driver_exc, ConfigurationError):  # mongodb+srv:// whose DNS records are missing, say
            return StoreMisconfigured(f"cannot use the MongoDB at {where}: {_scrub(str(driver_exc), uri)}")
        if isinstance(driver_exc, OperationFailure) and driver_exc.code in _AUTH_FAILED:
            return StoreMisconfigured(f"MongoDB at {where} refused the credentials (authentication failed)")
        return exc

    async def _create_index(self, index: Index) -> None:
        if not index.fields:
            raise InvalidQuery("an index needs at least one field")
        coll = self._coll(index.collection)
        name = _index_name(index)
        options: dict[str, Any] = {"name": name}
        if index.unique:
            options["unique"] = True
        if index.sparse:
            # partial rather than sparse: applies to compound keys field by field
            options["partialFilterExpression"] = {check_field(f): {"$exists": True} for f in index.fields}
        self._index_fields[(index.collection, name)] = index.fields
        if index.expire_after_s is not None:
            options["expireAfterSeconds"] = index.expire_after_s
        if index.sparse and index.unique:
            self._sparse.setdefault(index.collection, set()).update(index.fields)
        try:
            await coll.create_index([(check_field(f), 1) for f in index.fields], **options)
        except OperationFailure as exc:
            if exc.code != _INDEX_OPTIONS_CONFLICT or index.expire_after_s is None:
                raise self._error(index.collection, exc) from exc
            await self._retention_changed(index, name)
        except PyMongoError as exc:
            raise self._error(index.collection, exc) from exc

    async def _retention_changed(self, index: Index, name: str) -> None:
        """The TTL index exists with another retention: change it in place."""
        command = {"collMod": index.collection, "index": {"name": name, "expireAfterSeconds": index.expire_after_s}}
        try:
            await self._db.command(command)
        except PyMongoError as exc:
            raise self._error(index.collection, exc) from exc

    async def expire(self) -> int:
        """Nothing to do: the server's TTL monitor deletes expired documents."""
        return 0

    async def close(self) -> None:
        client, self._db = self._client, None
        if client is not None and self._owns_client:
            self._client = None
            await client.close()

    async def ping(self) -> float:
        if self._db is None:
            raise StoreUnavailable("the MongoDB store is not open")
        start = time.perf_counter()
        try:
            await self._db.command("ping")
        except PyMongoError as exc:
            raise self._error("", exc) from exc
        return time.perf_counter() - start

    # ---- verbs ------------------------------------------------------------------

    async def insert(self, collection: str, doc: Doc) -> None:
        check_doc(doc)
        self._check_sparse(collection, doc)
        coll = self._coll(collection)
        try:
            await coll.insert_one(dict(doc))
        except PyMongoError as exc:
            raise self._error(collection, exc) from exc

    async def get(self, collection: str, _id: str) -> Doc | None:
        coll = self._coll(collection)
        if not isinstance(_id, str):
            return None
        try:
            doc = await coll.find_one({"_id": _id})
        except PyMongoError as exc:
            raise self._error(collection, exc) from exc
        return _utc(doc) if doc is not None else None

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
        check_where(where)
        check_page(sort, limit, skip)
        projection = check_fields(fields)
        coll = self._coll(collection)
        order = [(f, d) for f, d in (sort or [])]
        if not any(f == "_id" for f, _ in order):
            order.append(("_id", 1))  # a stable order makes skip/limit pages well defined
        try:
            if projection is None:
                cursor = coll.find(dict(where or {}), sort=order, skip=skip, limit=limit)
            else:
                shown = {f: 1 for f in projection} or {"_id": 1}
                cursor = coll.find(dict(where or {}), shown, sort=order, skip=skip, limit=limit)
            docs = await cursor.to_list(None)
        except PyMongoError as exc:
            raise self._error(collection, exc) from exc
        return [_utc(d) for d in docs]

    async def count(self, collection: str, where: Where | None = None) -> int:
        check_where(where)
        coll = self._coll(collection)
        try:
            return int(await coll.count_documents(dict(where or {})))
        except PyMongoError as exc:
            raise self._error(collection, exc) from exc

    async def update_if(
        self,
        collection: str,
        _id: str,
        expect: Where,
        changes: Mapping[str, Any],
        *,
        inc: Mapping[str, int] | None = None,
    ) -> Doc | None:
        check_where(expect)
        _no_id(expect)
        check_update(changes, inc)
        self._check_sparse(collection, changes)
        coll = self._coll(collection)
        if not isinstance(_id, str):
            return None
        query = {"_id": _id, **expect}
        update: dict[str, Any] = {}
        if changes:
            update["$set"] = dict(changes)
        if inc:
            update["$inc"] = dict(inc)
        try:
            if update:
                doc = await coll.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
            else:
                doc = await coll.find_one(query)
        except PyMongoError as exc:
            raise self._error(collection, exc) from exc
        return _utc(doc) if doc is not None else None

    async def upsert_if(self, collection: str, _id: str, expect: Where, doc: Doc) -> bool:
        check_where(expect)
        _no_id(expect)
        if doc.get("_id", _id) != _id:
            raise InvalidQuery("doc _id differs from the _id argument")
        full = {**doc, "_id": _id}
        check_doc(full)
        self._check_sparse(collection, full)
        coll = self._coll(collection)
        try:
            await coll.replace_one({"_id": _id, **expect}, full, upsert=True)
        except DuplicateKeyError as exc:
            # No document matched, so MongoDB tried to insert; a clash on _id
            # means one exists that does not match expect: not written.
            if self._dup_field(collection, exc) == "_id":
                return False
            raise self._error(collection, exc) from exc
        except PyMongoError as exc:
            raise self._error(collection, exc) from exc
        return True

    async def delete_if(self, collection: str, _id: str, expect: Where | None = None) -> bool:
        check_where(expect)
        _no_id(expect)
        coll = self._coll(collection)
        if not isinstance(_id, str):
            return False
        try:
            result = await coll.delete_one({"_id": _id, **(expect or {})})
        except PyMongoError as exc:
            raise self._error(collection, exc) from exc
        return result.deleted_count > 0
