"""Turn storage failures into the one domain error callers can act on."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from store.base import DuplicateKey, StoreError

from .errors import Unavailable


@contextmanager
def store_guard() -> Iterator[None]:
    """Any store failure but a duplicate key becomes ``Unavailable`` (retry later)."""
    try:
        yield
    except DuplicateKey:
        raise
    except StoreError as exc:
        raise Unavailable("store_unavailable", "The order store is unavailable; retry shortly") from exc
