"""Turn storage failures into the one domain error callers can act on."""
from __future__ import annotations

from types import TracebackType

from store.base import DuplicateKey, StoreError

from .errors import Unavailable


class _StoreGuard:
    """A plain context manager, not a ``@contextmanager`` generator: it wraps
    every store call of every request, and a generator per use cost more
    than the primary-key read it guarded."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if exc is None or isinstance(exc, DuplicateKey) or not isinstance(exc, StoreError):
            return False
        raise Unavailable("store_unavailable", "The order store is unavailable; retry shortly") from exc


_GUARD = _StoreGuard()


def store_guard() -> _StoreGuard:
    """Any store failure but a duplicate key becomes ``Unavailable`` (retry later)."""
    return _GUARD
