"""The ``store`` fixture: every contract test runs once per backend.

- ``sqlite``: a real file in ``tmp_path``;
- ``mongo_emulated``: ``MongoStore`` on the in-process emulator (no MongoDB
  server can be installed on these machines), marked ``emulated_mongo``;
- ``mongo_real``: ``MongoStore`` on the server at ``MONGODB_URI``, marked
  ``real_mongo``, in a throw-away database; only collected when the variable
  is set (``test_mongo.py::test_real_server_run`` says so once otherwise).
"""
from __future__ import annotations

import os
import secrets
from typing import AsyncIterator

import pytest

from store.base import Index, Store
from store.mongo import MongoStore
from store.open import INDEXES
from store.sqlite import SQLiteStore
from tests.store.mongo_emulator import EmulatedMongoClient

MONGODB_URI = os.environ.get("MONGODB_URI")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mongo_emulated", id="mongo_emulated", marks=pytest.mark.emulated_mongo),
] + ([pytest.param("mongo_real", id="mongo_real", marks=pytest.mark.real_mongo)] if MONGODB_URI else [])


async def make_store(
    kind: str, tmp_path: os.PathLike[str], indexes: list[Index] | None = None, **sqlite_options: object
) -> tuple[Store, object]:
    """An opened store of ``kind`` with the app's indexes (or ``indexes``),
    plus a handle the caller passes to :func:`drop_store`."""
    if kind == "sqlite":
        store: Store = SQLiteStore(os.path.join(tmp_path, "store.sqlite3"), **sqlite_options)  # type: ignore[arg-type]
        handle: object = None
    elif kind == "mongo_emulated":
        handle = EmulatedMongoClient()
        store = MongoStore(handle, "wxpay_test")
    else:
        handle = f"wxpay_test_{secrets.token_hex(4)}"
        store = MongoStore(MONGODB_URI, str(handle))
    await store.open(INDEXES if indexes is None else indexes)
    return store, handle


async def drop_store(kind: str, store: Store, handle: object) -> None:
    await store.close()
    if kind == "mongo_real":
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient = AsyncMongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)
        try:
            await client.drop_database(str(handle))
        finally:
            await client.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def store(backend: str, tmp_path: os.PathLike[str]) -> AsyncIterator[Store]:
    opened, handle = await make_store(backend, tmp_path)
    try:
        yield opened
    finally:
        await drop_store(backend, opened, handle)
