"""SQLite backend: the embedded default, one file, safe across processes.

Layout: one table per collection, ``(_id TEXT PRIMARY KEY, doc TEXT)``, the
document (without ``_id``) as compact JSON, plus one column ``k_<field>`` per
indexed field holding exactly ``json_extract(doc, '$.field')`` (SQLite
computes it from the written JSON in the same statement). Secondary indexes
are on those columns; sparse ones are partial indexes (``WHERE ... IS NOT
NULL``), so a document without the field takes no key. Why columns and not
expression indexes (the layout before, upgraded in place by ``open``): an
update of ``doc`` made SQLite rewrite every expression index of the table,
while an update that sets the changed fields' columns rewrites only the
indexes on them (a payment's move touches 4 of the orders' 8). This store's
writes fill every column it knows; triggers on each table put right a row
any other writer left wrong (a process of the release before, still running
during a rolling upgrade; one opened before another process added a column;
an operator's SQL), so an index never misses a document whoever wrote it.

Datetimes are stored as ``{"$date": "YYYY-MM-DDTHH:MM:SS.mmmZ"}``: fixed
width, UTC, millisecond precision (BSON's, so both backends round-trip the
same value). ``json_extract`` returns such an object as its minified text,
whose constant prefix makes text order equal time order, so a range filter on
a datetime field can still use the field's index. Nested user keys may not
start with ``$`` (``base.check_doc``), so the tag cannot be forged.

Filters become SQL with every value bound as a parameter; field names are
interpolated only after ``base.check_field`` (``[a-z_][a-z0-9_]*``). Each
comparison carries a ``json_type`` guard so, as in MongoDB, strings never
compare with numbers, and ``true`` never equals ``1``.

Concurrency: two connections per store. Every call first runs inline on
the event loop's connection, which never waits: its busy timeout is zero and
a progress budget interrupts a statement that scans. A call that would wait
(another connection or process holds the write lock) or runs long is rolled
back and handed whole to one worker thread whose connection may wait (the
busy timeout, then a few bounded retries, then ``StoreUnavailable``). The
worker also runs the WAL checkpoints, the only place SQLite fsyncs with
``synchronous=NORMAL``, so the loop never waits on the disk. Compare-and-set
verbs run in ``BEGIN IMMEDIATE`` transactions: SQLite's write lock makes them
atomic between connections and processes sharing the file.

Retention (``Index.expire_after_s``): SQLite has no TTL index, so ``open``
starts a background task that calls ``expire`` every ``prune_interval``
seconds. Each pass deletes at most ``prune_batch`` rows per statement, on
the worker thread (never on the loop), through the field's expression
index, and sleeps ``prune_pause`` between statements so other writes take
the lock in between: a backlog of millions is worked off in short steps.
Freed pages are reused by later writes (the file does not shrink).

A projection (``find(fields=...)``) reads each field with ``json_type`` and
``json_extract`` in SQL, so a listing of small fields never decodes the
rest of a large document in Python.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import random
import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Iterator, TypeVar

from store.base import (
    INT64_MAX,
    INT64_MIN,
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

T = TypeVar("T")

_RANGE_SQL = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_INDEX_IN_MESSAGE = re.compile(r"index '([A-Za-z0-9_]+)'")
_COLUMNS_IN_MESSAGE = re.compile(r"\.k_([a-z0-9_]+)")
_MISSING = object()
_SLOW = object()  # update_if: this one needs the read-check-write path
_DEFERRED = object()
_INTERRUPT = 9  # SQLITE_INTERRUPT: our progress budget stopped the statement

# An inline call may run INLINE_SECONDS before it is interrupted and handed
# to the worker thread; the clock is read every INLINE_STEP virtual-machine
# steps (a primary-key read or write takes fewer, so it never reads it).
INLINE_SECONDS = 0.0005
INLINE_STEP = 200
CHECKPOINT_EVERY = 500
BURST = 32

# Retention: a pass every PRUNE_INTERVAL seconds (the first PRUNE_FIRST after
# open), PRUNE_BATCH rows per statement, PRUNE_PAUSE seconds between them.
PRUNE_INTERVAL = 60.0
PRUNE_FIRST = 5.0
PRUNE_BATCH = 500
PRUNE_PAUSE = 0.05

log = logging.getLogger("wxpay_server.store")


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """An IMMEDIATE transaction: takes the file's write lock up front, so
    the read-check-write inside is atomic for every process."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _code(exc: sqlite3.DatabaseError) -> int:
    """SQLite's primary result code (BUSY, LOCKED, INTERRUPT …) of an error."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def _select_one(conn: sqlite3.Connection) -> Any:
    return conn.execute("SELECT 1").fetchone()


# ---- documents <-> JSON ----------------------------------------------------


def _iso(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``; isoformat truncates to milliseconds,
    as the stored precision does."""
    utc = value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _date_json(value: datetime) -> str:
    """The exact text ``json_extract`` returns for a stored datetime."""
    return '{"$date":"' + _iso(value) + '"}'


def _json_default(value: Any) -> Any:
    """What JSON has no type for; the C encoder asks only about those, so
    plain values never pass through Python."""
    if isinstance(value, datetime):
        return {"$date": _iso(value)}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot store a {type(value).__name__}")


_encode_str = json.encoder.encode_basestring  # ensure_ascii=False, as _ENCODER
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False, default=_json_default
)


def _from_json_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$date" in obj:
        return datetime.fromisoformat(obj["$date"])  # "...Z" reads as timezone.utc (3.11+)
    return obj


def _stored(value: Any) -> Any:
    """``value`` as it reads back from the stored JSON (UTC, milliseconds,
    lists for tuples), so an update can answer without decoding its write."""
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc)
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    if isinstance(value, Mapping):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stored(v) for v in value]
    return value


def _encode_value(value: Any) -> str:
    """One field's value as JSON (what ``json_set`` takes): the common
    scalars without the encoder's machinery, the rest through it."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is datetime:
        return _date_json(value)
    return _ENCODER.encode(value)


def _encode(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "_id"}
    return _ENCODER.encode(body)


_DECODER = json.JSONDecoder(object_hook=_from_json_object)


def _decode(_id: str, text: str) -> Doc:
    doc = {"_id": _id}
    doc.update(_DECODER.decode(text))
    return doc


def _from_sql(kind: str, value: Any) -> Any:
    """A value ``json_extract`` returned, typed by what ``json_type`` said it is."""
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind == "null":
        return None
    if kind in ("object", "array"):
        return _DECODER.decode(value)  # JSON text; a tagged date becomes a datetime
    return value  # text, integer, real: already the Python value


# ---- filters -> SQL ----------------------------------------------------------


_NO_COLUMNS: frozenset[str] = frozenset()


def _column(field: str) -> str:
    """The column that holds an indexed field's ``json_extract`` value."""
    return f'"k_{field}"'


def _x(field: str, cols: frozenset[str] = _NO_COLUMNS) -> str:
    """A field's value in SQL: its column when it has one (an index is on
    it), else ``json_extract``; both are the same value."""
    if field == "_id":
        return "_id"
    return _column(field) if field in cols else f"json_extract(doc, '$.{field}')"


def _type_guard(field: str, value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"json_type(doc, '$.{field}') IN ('integer', 'real')"
    if isinstance(value, str):
        return f"json_type(doc, '$.{field}') = 'text'"
    # datetime: the field must be a tagged date, not any object
    return f"json_type(doc, '$.{field}.\"$date\"') = 'text'"


def _param(value: Any) -> Any:
    return _date_json(value) if isinstance(value, datetime) else value


def _eq(field: str, value: Any, params: list[Any], cols: frozenset[str] = _NO_COLUMNS) -> str:
    if field == "_id":
        if not isinstance(value, str):
            return "0"
        params.append(value)
        return "_id = ?"
    if value is None:  # null or missing, as in MongoDB
        return f"{_x(field, cols)} IS NULL"
    if isinstance(value, bool):
        return f"json_type(doc, '$.{field}') = '{'true' if value else 'false'}'"
    params.append(_param(value))
    return f"({_x(field, cols)} = ? AND {_type_guard(field, value)})"


def _range(field: str, op: str, value: Any, params: list[Any], cols: frozenset[str] = _NO_COLUMNS) -> str:
    if field == "_id":
        if not isinstance(value, str):
            return "0"
        params.append(value)
        return f"_id {_RANGE_SQL[op]} ?"
    params.append(_param(value))
    return f"({_x(field, cols)} {_RANGE_SQL[op]} ? AND {_type_guard(field, value)})"


def _any_of(field: str, values: Any, params: list[Any], cols: frozenset[str] = _NO_COLUMNS) -> str:
    if not values:
        return "0"
    return "(" + " OR ".join(_eq(field, v, params, cols) for v in values) + ")"


def _where_sql(where: Where | None, params: list[Any], cols: frozenset[str] = _NO_COLUMNS) -> str:
    """Translate a checked filter; ``(expr) IS NOT 1`` negates with SQL NULL
    (a missing field) counting as "not equal", like MongoDB's $ne/$nin."""
    terms: list[str] = []
    for field, cond in (where or {}).items():
        if not isinstance(cond, Mapping):
            terms.append(_eq(field, cond, params, cols))
            continue
        for op, value in cond.items():
            if op in _RANGE_SQL:
                terms.append(_range(field, op, value, params, cols))
            elif op == "$ne":
                terms.append(f"({_eq(field, value, params, cols)}) IS NOT 1")
            elif op == "$in":
                terms.append(_any_of(field, value, params, cols))
            elif op == "$nin":
                terms.append(f"({_any_of(field, value, params, cols)}) IS NOT 1")
            elif op == "$exists":
                if field == "_id":
                    terms.append("1" if value else "0")
                else:
                    terms.append(f"json_type(doc, '$.{field}') IS {'NOT ' if value else ''}NULL")
            else:  # pragma: no cover - check_where refuses anything else
                raise InvalidQuery(f"operator {op!r} not allowed")
    return " AND ".join(terms) or "1"


_TABLES: dict[str, str] = {}


def _table(collection: str) -> str:
    """The quoted table name of a (checked) collection; the few names in use are kept."""
    if type(collection) is str:
        table = _TABLES.get(collection)
        if table is not None:
            return table
    table = f'"{check_collection(collection)}"'
    if type(collection) is str and len(_TABLES) < 1024:
        _TABLES[collection] = table
    return table


def _index_name(index: Index) -> str:
    return "ix_" + index.collection + "__" + "__".join(index.fields) + ("__u" if index.unique else "") + (
        "__s" if index.sparse else ""
    )


def _fields_from_name(collection: str, name: str) -> tuple[str, ...]:
    """Fields of an index this process did not declare (made by another run)."""
    prefix = f"ix_{collection}__"
    if not name.startswith(prefix):
        return ()
    rest = name[len(prefix):]
    for suffix in ("__s", "__u"):
        rest = rest.removesuffix(suffix)
    return tuple(rest.split("__"))


def _trigger_names(collection: str) -> set[str]:
    return {f"kx_{collection}__insert", f"kx_{collection}__update"}


def _no_id(expect: Where | None) -> None:
    if expect and "_id" in expect:
        raise InvalidQuery("the _id is given separately; leave it out of expect")


class SQLiteStore(Store):
    """Document store in one SQLite file (WAL); see the module docstring."""

    backend = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        busy_retries: int = 3,
        inline: bool = True,
        prune_interval: float = PRUNE_INTERVAL,
        prune_batch: int = PRUNE_BATCH,
        prune_pause: float = PRUNE_PAUSE,
    ) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = busy_timeout
        self.busy_retries = busy_retries
        self.inline = inline
        self.prune_interval = prune_interval
        self.prune_batch = prune_batch
        self.prune_pause = prune_pause
        self.pruned = 0  # rows the retention passes deleted since open
        self._expiring: dict[tuple[str, str], int] = {}  # (collection, field) -> seconds
        self._pruner: asyncio.Task[None] | None = None
        self.deferred = 0  # calls the loop's connection handed to the worker (busy or long)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # the worker thread's
        self._fast: sqlite3.Connection | None = None  # the event loop's (inline)
        self._deadline = 0.0
        self._burst = 0
        self._writes_since_checkpoint = 0
        self._checkpointing = False
        self.last_checkpoint: tuple[int, ...] | None = None  # (busy, WAL frames, frames copied)
        self._tables: set[str] = set()
        # Indexed fields that have a column, per collection (as read at open,
        # or when the collection was first used): see _refresh_columns.
        self._columns: dict[str, frozenset[str]] = {}
        self._index_fields: dict[str, tuple[str, ...]] = {}
        self._sparse: dict[str, set[str]] = {}

    # ---- plumbing: inline first, the worker thread when that would wait ----

    async def _run(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        if self._executor is None:
            raise StoreUnavailable("the SQLite store is not open")
        fast = self._fast
        if write and self._writes_since_checkpoint >= 2 * CHECKPOINT_EVERY:
            fast = None  # a checkpoint is overdue: queue behind it, do not grow the WAL
        if fast is not None:
            await self._take_turn()
            result = self._inline(fast, fn, args, math.inf if write else INLINE_SECONDS)
            if result is not _DEFERRED:
                if write:
                    self._count_write()
                return result
            self.deferred += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._retrying, fn, *args))

    async def _take_turn(self) -> None:
        """Inline statements do not yield; so that a long run of them (a
        sweep, a batch) cannot hold the loop, every ``BURST``-th one in the
        same loop iteration first lets the loop run everything else."""
        self._burst += 1
        if self._burst == 1:
            asyncio.get_running_loop().call_soon(self._end_burst)
        elif self._burst > BURST:
            await asyncio.sleep(0)

    def _end_burst(self) -> None:
        self._burst = 0

    def _inline(self, conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...], seconds: float) -> Any:
        """Run on the event loop's own connection, or return ``_DEFERRED``.

        Handing a statement to the worker thread costs several times what a
        primary-key read or write on a warm page cache does, so statements
        run here first. Nothing here may wait: the connection's busy timeout
        is zero, so a write lock held elsewhere answers BUSY at once, before
        anything is written; and a read that turns out to scan is interrupted
        after ``seconds``. Either way the whole call goes to the worker
        thread, which may wait. Writes get no time limit: an interrupt can
        land after SQLite committed, and a retry would then apply it twice;
        they are all by ``_id``, so they never scan. Checkpoints (the fsyncs)
        run on the worker too.
        """
        self._deadline = time.perf_counter() + seconds
        try:
            return fn(conn, *args)
        except sqlite3.DatabaseError as exc:
            if _code(exc) in _BUSY_CODES or _code(exc) == _INTERRUPT:
                return _DEFERRED
            raise self._store_error(exc) from exc

    def _over_budget(self) -> bool:
        return time.perf_counter() > self._deadline

    def _count_write(self) -> None:
        """Checkpoint on the worker every ``CHECKPOINT_EVERY`` inline writes
        (the loop's connection never checkpoints: that is where SQLite fsyncs).
        A PASSIVE pass first copies the bulk of the WAL into the database and
        fsyncs it while the loop keeps writing inline; then RESTART holds
        writers off only while it copies what arrived meanwhile, so it always
        finishes and the next write starts the WAL file over instead of growing
        it; writes in that short window find the lock taken and queue on the
        worker behind it. (RESTART alone held them off for the whole copy and
        its fsyncs: under load every request in flight queued behind it.) One
        that has not even started after as many writes again (a busy loop
        starves the worker of the GIL) gets every write queued behind it."""
        self._writes_since_checkpoint += 1
        if self._writes_since_checkpoint < CHECKPOINT_EVERY or self._checkpointing or self._executor is None:
            return
        self._checkpointing = True
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint_sync)
        future.add_done_callback(self._checkpointed)

    def _checkpoint_sync(self) -> None:
        conn = self._conn
        if conn is not None:
            # Read the schema first: a connection that had never read it
            # (opened without indexes, tables made by the loop's connection)
            # waited out the whole busy timeout in RESTART for itself.
            conn.execute("PRAGMA schema_version").fetchone()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.last_checkpoint = tuple(conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone())

    def _checkpointed(self, future: "asyncio.Future[None]") -> None:
        self._checkpointing = False
        self._writes_since_checkpoint = 0
        if not future.cancelled() and future.exception() is not None:
            log.warning("SQLite checkpoint of %s failed: %s", self.path, future.exception())

    def _retrying(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs on the worker: retry a busy database a few times, map errors."""
        conn = self._conn
        if conn is None and fn != self._open_sync:
            raise StoreUnavailable("the SQLite store is not open")
        attempt = 0
        while True:
            try:
                return fn(conn, *args)
            except sqlite3.DatabaseError as exc:
                if _code(exc) in _BUSY_CODES and attempt < self.busy_retries:
                    attempt += 1
                    time.sleep(0.02 * attempt * (1 + random.random()))
                    continue
                raise self._store_error(exc) from exc

    def _store_error(self, exc: sqlite3.DatabaseError) -> StoreError:
        """The one mapping of SQLite's errors to the store's, for both connections."""
        if isinstance(exc, sqlite3.IntegrityError):
            return StoreError(f"sqlite integrity error: {exc}")
        if isinstance(exc, sqlite3.OperationalError):
            return StoreUnavailable(f"SQLite database {self.path} unavailable: {exc}")
        return StoreError(f"SQLite database {self.path} failed: {exc}")

    def _ensure(self, conn: sqlite3.Connection, collection: str) -> str:
        table = _table(collection)
        if collection not in self._tables:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (_id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
            # Known only once its columns are: a write must never run without them.
            self._refresh_columns(conn, collection)
            self._tables.add(collection)
        return table

    def _duplicate(self, collection: str, exc: sqlite3.IntegrityError) -> DuplicateKey:
        message = str(exc)
        if message.endswith("._id"):
            return DuplicateKey(collection, "_id")
        columns = _COLUMNS_IN_MESSAGE.findall(message)
        if columns:  # an index on columns names them: "UNIQUE constraint failed: orders.k_a, orders.k_b"
            return DuplicateKey(collection, ",".join(columns))
        found = _INDEX_IN_MESSAGE.search(message)
        if not found:
            return DuplicateKey(collection)
        fields = self._index_fields.get(found.group(1)) or _fields_from_name(collection, found.group(1))
        return DuplicateKey(collection, ",".join(fields) if fields else None)

    def _check_sparse(self, collection: str, doc: Mapping[str, Any]) -> None:
        for field in self._sparse.get(collection, ()):
            if field in doc and doc[field] is None:
                raise InvalidDocument(f"{field} has a sparse unique index: leave it out instead of null")

    # ---- lifecycle ------------------------------------------------------------

    async def open(self, indexes: list[Index]) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(self._retrying, self._open_sync, list(indexes))
            )
            if self._fast is None and self.inline and self.path != ":memory:":
                self._fast = self._connect_inline()
        except BaseException:
            await self.close()
            raise
        for index in indexes:
            if index.expire_after_s is not None:
                self._expiring[(index.collection, index.fields[0])] = index.expire_after_s
        if self._expiring and self._pruner is None:
            self._pruner = asyncio.create_task(self._prune_forever(), name=f"sqlite-retention {self.path}")

    async def _prune_forever(self) -> None:
        """The retention task: never raises, never runs a statement on the loop."""
        delay = min(PRUNE_FIRST, self.prune_interval)
        while True:
            await asyncio.sleep(delay)
            delay = self.prune_interval
            try:
                await self.expire()
            except StoreError as exc:
                log.warning("SQLite retention pass on %s failed (next in %.0f s): %s", self.path, delay, exc)

    async def expire(self) -> int:
        deleted = 0
        for (collection, field), seconds in list(self._expiring.items()):
            before = datetime.now(timezone.utc) - timedelta(seconds=seconds)
            cutoff = _date_json(before)
            table = _table(collection)
            guard = _type_guard(field, before)
            sql = (
                f"DELETE FROM {table} WHERE _id IN (SELECT _id FROM {table} "
                f"WHERE {_x(field, self._cols(collection))} < ? AND {guard} LIMIT ?)"
            )
            while True:
                if self._executor is None:
                    return deleted
                loop = asyncio.get_running_loop()
                count = await loop.run_in_executor(
                    self._executor, functools.partial(self._retrying, self._prune_sync, collection, sql, cutoff)
                )
                deleted += count
                self.pruned += count
                if count < self.prune_batch:
                    break
                await asyncio.sleep(self.prune_pause)
        return deleted

    def _prune_sync(self, conn: sqlite3.Connection, collection: str, sql: str, cutoff: str) -> int:
        self._ensure(conn, collection)
        return conn.execute(sql, (cutoff, self.prune_batch)).rowcount

    @property
    def location(self) -> str:
        return self.path if self.path == ":memory:" else os.path.abspath(self.path)

    def _check_path(self) -> None:
        """Say plainly what SQLite would only call "unable to open database file"."""
        where = self.location
        if os.path.isdir(where):
            raise StoreMisconfigured(f"{where} is a folder; name a file in it")
        folder = os.path.dirname(where)
        if os.path.isdir(folder):
            return
        existing = folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise StoreMisconfigured(f"cannot create the folder {folder} for {where}: {existing} is a file")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise StoreMisconfigured(f"cannot create the folder {folder} for {where}: {exc.strerror}") from None

    def _open_error(self, exc: sqlite3.DatabaseError) -> StoreError:
        where, text = self.location, str(exc)
        if "not a database" in text:
            return StoreMisconfigured(f"{where} is not an SQLite database")
        if "unable to open" in text:
            return StoreMisconfigured(f"cannot open or create {where}: can this user write to {os.path.dirname(where)}?")
        if "readonly" in text or "read-only" in text:
            return StoreMisconfigured(f"{where} is read-only for this user")
        if _code(exc) in _BUSY_CODES:
            return StoreUnavailable(f"SQLite database {where} stayed locked by another connection: {text}")
        return StoreMisconfigured(f"cannot use {where}: {text}")

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            self._check_path()
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise self._open_error(exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = self._into_wal(conn)
            if mode.lower() != "wal" and self.path != ":memory:":
                raise StoreError(f"SQLite refused WAL mode for {self.path} (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            if self.path != ":memory:":  # a file we can read but not write fails here, not at the first payment
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._open_error(exc) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _into_wal(self, conn: sqlite3.Connection) -> str:
        """``PRAGMA journal_mode = WAL``, retried for up to the busy timeout:
        a file another process is making or switching at the same moment
        answers "database is locked" at once, without the busy handler (two
        instances started together on a new file: one refused to start)."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _connect_inline(self) -> sqlite3.Connection:
        """The event loop's connection: never waits, never checkpoints."""
        try:
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"SQLite database {self.path} unavailable: {exc}") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreUnavailable(f"SQLite database {self.path} unavailable: {exc}") from exc
        conn.set_progress_handler(self._over_budget, INLINE_STEP)
        return conn

    def _open_sync(self, conn: sqlite3.Connection | None, indexes: list[Index]) -> None:
        if conn is None:
            conn = self._conn = self._connect()
        fields: dict[str, set[str]] = {}
        for index in indexes:
            if not index.fields:
                raise InvalidQuery("an index needs at least one field")
            fields.setdefault(index.collection, set()).update(check_field(f) for f in index.fields)
        for collection, names in fields.items():
            self._add_columns(conn, collection, names)
        upgraded = False
        for index in indexes:
            upgraded |= self._create_index(conn, index)
        self._refresh_columns(conn)
        if upgraded:
            # Only a file of the layout before (an expression index swapped): the
            # upgrade wrote about the tables' size into the WAL, which regular
            # checkpoints reuse but never shrink. Give the disk back once, if no
            # other process is in the way (a new file, or a busy one, is left be).
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.OperationalError as exc:
                log.info("SQLite %s: the WAL left by the layout upgrade stays until a later checkpoint (%s)",
                         self.path, exc)

    def _add_columns(self, conn: sqlite3.Connection, collection: str, fields: set[str]) -> None:
        """The columns of a collection's indexed fields, filled from the
        documents, and the triggers that keep them right: one transaction
        and one pass over the table, however many columns are new."""
        table = self._ensure(conn, collection)
        present, missing = self._layout_left(conn, collection, fields)
        if present is None:
            return
        with _write(conn):
            # Again under the write lock: another process starting beside this
            # one (two instances restarted together) may have added them since.
            present, missing = self._layout_left(conn, collection, fields)
            if present is None:
                return
            for field in missing:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {_column(field)}")
            if missing:
                fill = ", ".join(f"{_column(f)} = json_extract(doc, '$.{f}')" for f in missing)
                conn.execute(f"UPDATE {table} SET {fill}")
            self._keep_columns(conn, collection, sorted(present | {f"k_{f}" for f in missing}))

    @staticmethod
    def _layout_left(
        conn: sqlite3.Connection, collection: str, fields: set[str]
    ) -> tuple[set[str] | None, list[str]]:
        """The table's columns and the indexed fields still without one;
        ``(None, [])`` when nothing is left to do (columns and triggers there)."""
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({_table(collection)})")}
        missing = sorted(f for f in fields if f"k_{f}" not in present)
        triggers = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (collection,))}
        if not missing and _trigger_names(collection) <= triggers:
            return None, []
        return present, missing

    def _create_index(self, conn: sqlite3.Connection, index: Index) -> bool:
        """The index on its fields' columns (``_add_columns`` made them), if
        missing. A file made before the columns has expression indexes of
        the same names: each is replaced in one transaction, so another
        process sees either the old index or the new one."""
        fields = tuple(index.fields)
        table = self._ensure(conn, index.collection)
        name = _index_name(index)
        cols = frozenset(fields)
        keys = ", ".join(_x(f, cols) for f in fields)
        sql = f'CREATE {"UNIQUE " if index.unique else ""}INDEX IF NOT EXISTS "{name}" ON {table} ({keys})'
        if index.sparse:
            sql += " WHERE " + " AND ".join(f"{_x(f, cols)} IS NOT NULL" for f in fields)
        self._index_fields[name] = index.fields
        if index.sparse and index.unique:
            self._sparse.setdefault(index.collection, set()).update(index.fields)
        if self._index_done(conn, name):
            return False  # made by this layout already
        try:
            with _write(conn):
                if self._index_done(conn, name):  # by another process starting beside this one
                    return False
                rebuilt = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                                       (name,)).fetchone() is not None
                if rebuilt:
                    conn.execute(f'DROP INDEX "{name}"')
                conn.execute(sql)
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(index.collection, exc) from exc
        return rebuilt

    @staticmethod
    def _index_done(conn: sqlite3.Connection, name: str) -> bool:
        """An index of this name on columns (not an expression index of the layout before)."""
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone()
        return row is not None and "json_extract" not in (row[0] or "")

    @staticmethod
    def _keep_columns(conn: sqlite3.Connection, collection: str, names: list[str]) -> None:
        """Triggers that put right the columns of a row any writer left
        wrong: a process of a release from before the columns (during a
        rolling upgrade), one that opened before a column was added, an
        operator's own SQL. This store's writes set them right, so for them
        the triggers only compare (a few microseconds a write)."""
        table = _table(collection)
        fields = [n[2:] for n in names if n.startswith("k_")]
        stale = " OR ".join(f"NEW.{_column(f)} IS NOT json_extract(NEW.doc, '$.{f}')" for f in fields)
        fix = ", ".join(f"{_column(f)} = json_extract(doc, '$.{f}')" for f in fields)
        insert_name, update_name = sorted(_trigger_names(collection))
        for trigger in (insert_name, update_name):
            conn.execute(f'DROP TRIGGER IF EXISTS "{trigger}"')
        if not fields:
            return
        body = f"BEGIN UPDATE {table} SET {fix} WHERE rowid = NEW.rowid; END"
        conn.execute(f'CREATE TRIGGER "{insert_name}" AFTER INSERT ON {table} WHEN {stale} {body}')
        conn.execute(f'CREATE TRIGGER "{update_name}" AFTER UPDATE OF doc ON {table} WHEN {stale} {body}')

    def _refresh_columns(self, conn: sqlite3.Connection, new: str | None = None) -> None:
        """Read which indexed fields have a column, for every table this
        store has touched. Writes set these; a column added later by another
        process (a newer release declaring a new index) is kept right by the
        table's triggers until this store reads it (``_keep_columns``)."""
        for collection in {*self._tables, *([new] if new else [])}:
            names = (row[1] for row in conn.execute(f"PRAGMA table_info({_table(collection)})"))
            # One key at a time: the worker thread and the loop may both be here.
            self._columns[collection] = frozenset(n[2:] for n in names if n.startswith("k_"))

    def _cols(self, collection: str) -> frozenset[str]:
        return self._columns.get(collection, _NO_COLUMNS)


    async def close(self) -> None:
        pruner, self._pruner = self._pruner, None
        if pruner is not None:
            pruner.cancel()
            await asyncio.gather(pruner, return_exceptions=True)
        self._expiring.clear()
        executor, self._executor = self._executor, None
        if executor is None:
            return
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)
        self._tables.clear()

    async def ping(self) -> float:
        start = time.perf_counter()
        await self._run(_select_one)
        return time.perf_counter() - start

    # ---- verbs ------------------------------------------------------------------

    async def insert(self, collection: str, doc: Doc) -> None:
        check_doc(doc)
        self._check_sparse(collection, doc)
        _table(collection)
        await self._run(self._insert_sync, collection, doc["_id"], _encode(doc), write=True)

    def _insert_sync(self, conn: sqlite3.Connection, collection: str, _id: str, text: str) -> None:
        table = self._ensure(conn, collection)
        cols = sorted(self._cols(collection))
        names = "".join(", " + _column(f) for f in cols)
        values = "".join(f", json_extract(?2, '$.{f}')" for f in cols)
        try:
            conn.execute(f"INSERT INTO {table} (_id, doc{names}) VALUES (?1, ?2{values})", (_id, text))
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(collection, exc) from exc

    async def get(self, collection: str, _id: str) -> Doc | None:
        _table(collection)
        if not isinstance(_id, str):
            return None
        return await self._run(self._get_sync, collection, _id)

    def _get_sync(self, conn: sqlite3.Connection, collection: str, _id: str) -> Doc | None:
        table = self._ensure(conn, collection)
        row = conn.execute(f"SELECT doc FROM {table} WHERE _id = ?", (_id,)).fetchone()
        return _decode(_id, row[0]) if row else None

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
        table = _table(collection)
        params: list[Any] = []
        if projection is None:
            columns = "doc"
        else:
            columns = ", ".join(f"json_type(doc, '$.{f}'), json_extract(doc, '$.{f}')" for f in projection) or "NULL"
        cols = self._cols(collection)
        sql = f"SELECT _id, {columns} FROM {table} WHERE {_where_sql(where, params, cols)}"
        order = [f"{_x(f, cols)} {'ASC' if d == 1 else 'DESC'}" for f, d in (sort or [])]
        if not any(f == "_id" for f, _ in (sort or [])):
            order.append("_id ASC")  # a stable order makes skip/limit pages well defined
        sql += " ORDER BY " + ", ".join(order) + " LIMIT ? OFFSET ?"
        params += [limit or -1, skip]
        if projection is None:
            return await self._run(self._find_sync, collection, sql, params)
        return await self._run(self._find_fields_sync, collection, sql, params, projection)

    def _find_sync(self, conn: sqlite3.Connection, collection: str, sql: str, params: list[Any]) -> list[Doc]:
        self._ensure(conn, collection)
        return [_decode(_id, text) for _id, text in conn.execute(sql, params)]

    def _find_fields_sync(
        self, conn: sqlite3.Connection, collection: str, sql: str, params: list[Any], fields: tuple[str, ...]
    ) -> list[Doc]:
        self._ensure(conn, collection)
        docs = []
        for row in conn.execute(sql, params):
            doc: Doc = {"_id": row[0]}
            for i, field in enumerate(fields):
                kind, value = row[1 + 2 * i], row[2 + 2 * i]
                if kind is not None:  # NULL: the document has no such field
                    doc[field] = _from_sql(kind, value)
            docs.append(doc)
        return docs

    async def count(self, collection: str, where: Where | None = None) -> int:
        check_where(where)
        table = _table(collection)
        params: list[Any] = []
        sql = f"SELECT COUNT(*) FROM {table} WHERE {_where_sql(where, params, self._cols(collection))}"
        return await self._run(self._count_sync, collection, sql, params)

    def _count_sync(self, conn: sqlite3.Connection, collection: str, sql: str, params: list[Any]) -> int:
        self._ensure(conn, collection)
        return int(conn.execute(sql, params).fetchone()[0])

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
        table = _table(collection)
        if not isinstance(_id, str):
            return None
        if changes or inc:
            # One statement: SQLite patches the stored JSON in place, atomic
            # on its own, with no read-decode-encode round in Python.
            encoded = [(field, _encode_value(value)) for field, value in changes.items()]
            patched = await self._run(
                self._patch_sync, collection, _id, encoded, expect, list((inc or {}).items()), write=True
            )
            if patched is not _SLOW:
                return patched
        cols = self._cols(collection)
        params: list[Any] = [_id]
        sql = f"SELECT doc FROM {table} WHERE _id = ? AND {_where_sql(expect, params, cols)}"
        return await self._run(
            self._update_sync, collection, _id, sql, params, dict(changes), dict(inc or {}), write=True
        )

    def _patch_sync(
        self, conn: sqlite3.Connection, collection: str, _id: str, encoded: list[tuple[str, str]], expect: Where,
        inc: list[tuple[str, int]],
    ) -> Any:
        """``json_set`` the changes, and set the columns of the changed fields
        that have one: SQLite then rewrites only the indexes on those.

        An increment is done here only on a field that is missing or an
        integer, when the sum stays an integer (SQLite turns an overflowing
        sum into a float); anything else returns ``_SLOW`` for the
        read-check-write path to apply or refuse exactly (a float field, a
        string, an overflow), as it does when the document did not match."""
        table = self._ensure(conn, collection)
        cols = self._cols(collection)
        params: list[Any] = []
        pairs = []
        for field, text in encoded:
            pairs.append(f"'$.{field}', json(?)")
            params.append(text)
        for field, amount in inc:
            pairs.append(f"'$.{field}', COALESCE(json_extract(doc, '$.{field}'), 0) + ?")
            params.append(amount)
        sets = ""
        for field, text in encoded:
            if field in cols:
                sets += f", {_column(field)} = json_extract(?, '$')"
                params.append(text)
        for field, amount in inc:
            if field in cols:
                sets += f", {_column(field)} = COALESCE(json_extract(doc, '$.{field}'), 0) + ?"
                params.append(amount)
        params.append(_id)
        where = _where_sql(expect, params, cols)
        for field, amount in inc:
            where += (
                f" AND (json_type(doc, '$.{field}') IS NULL OR json_type(doc, '$.{field}') = 'integer')"
                f" AND typeof(COALESCE(json_extract(doc, '$.{field}'), 0) + ?) = 'integer'"
            )
            params.append(amount)
        sql = (
            f"UPDATE {table} SET doc = json_set(doc, {', '.join(pairs)}){sets} "
            f"WHERE _id = ? AND {where} RETURNING doc"
        )
        try:
            rows = conn.execute(sql, params).fetchall()  # to the end: the statement commits
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(collection, exc) from exc
        if rows:
            return _decode(_id, rows[0][0])
        return _SLOW if inc else None  # no such document, or it did not match

    def _update_sync(
        self, conn: sqlite3.Connection, collection: str, _id: str, sql: str, params: list[Any], changes: Doc, inc: dict[str, int]
    ) -> Doc | None:
        table = self._ensure(conn, collection)
        with _write(conn):
            row = conn.execute(sql, params).fetchone()
            if row is None:
                return None
            doc = _decode(_id, row[0])
            doc.update({k: _stored(v) for k, v in changes.items()})
            for field, amount in inc.items():
                current = doc.get(field, _MISSING)
                if current is _MISSING:
                    current = 0
                if isinstance(current, bool) or not isinstance(current, (int, float)):
                    raise InvalidQuery(f"cannot inc {field}: it is not a number")
                new = current + amount
                if isinstance(new, int) and not INT64_MIN <= new <= INT64_MAX:
                    raise InvalidQuery(f"inc on {field} overflows 64 bits")
                doc[field] = new
            text = _encode(doc)
            cols = self._cols(collection)
            sets = "".join(f", {_column(f)} = json_extract(?1, '$.{f}')" for f in (*changes, *inc) if f in cols)
            try:
                conn.execute(f"UPDATE {table} SET doc = ?1{sets} WHERE _id = ?2", (text, _id))
            except sqlite3.IntegrityError as exc:
                raise self._duplicate(collection, exc) from exc
        return doc  # already what reading ``text`` back would give (``_stored``)

    async def upsert_if(self, collection: str, _id: str, expect: Where, doc: Doc) -> bool:
        check_where(expect)
        _no_id(expect)
        if doc.get("_id", _id) != _id:
            raise InvalidQuery("doc _id differs from the _id argument")
        full = {**doc, "_id": _id}
        check_doc(full)
        self._check_sparse(collection, full)
        table = _table(collection)
        return await self._run(self._upsert_sync, collection, _id, expect, _encode(full), write=True)

    def _upsert_sync(self, conn: sqlite3.Connection, collection: str, _id: str, expect: Where, text: str) -> bool:
        """One statement: insert, or on the ``_id`` (checked before any other
        unique index) replace the existing document if it matches ``expect``."""
        table = self._ensure(conn, collection)
        cols = sorted(self._cols(collection))
        names = "".join(", " + _column(f) for f in cols)
        values = "".join(f", json_extract(?2, '$.{f}')" for f in cols)
        sets = "".join(f", {_column(f)} = excluded.{_column(f)}" for f in cols)
        params: list[Any] = [_id, text]
        where = _where_sql(expect, params, frozenset(cols))
        sql = (
            f"INSERT INTO {table} (_id, doc{names}) SELECT ?1, ?2{values} WHERE 1 "  # WHERE: SQLite's upsert grammar
            f"ON CONFLICT(_id) DO UPDATE SET doc = excluded.doc{sets} WHERE {where}"
        )
        try:
            return conn.execute(sql, params).rowcount > 0  # 0: there, and not matching
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(collection, exc) from exc

    async def delete_if(self, collection: str, _id: str, expect: Where | None = None) -> bool:
        check_where(expect)
        _no_id(expect)
        table = _table(collection)
        if not isinstance(_id, str):
            return False
        params: list[Any] = [_id]
        sql = f"DELETE FROM {table} WHERE _id = ? AND {_where_sql(expect, params, self._cols(collection))}"
        return await self._run(self._delete_sync, collection, sql, params, write=True)

    def _delete_sync(self, conn: sqlite3.Connection, collection: str, sql: str, params: list[Any]) -> bool:
        self._ensure(conn, collection)
        return conn.execute(sql, params).rowcount > 0
