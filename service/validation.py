"""Checks every merchant request body shares, with one error code each."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput


def json_object(data: Any, allowed: set[str] | frozenset[str]) -> Mapping[str, Any]:
    """A JSON object with no unknown fields: typos must not pass silently."""
    if not isinstance(data, Mapping):
        raise InvalidInput("invalid_body", "The request body must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidInput("unknown_field", f"Unknown field(s): {', '.join(map(str, unknown))}", fields=unknown)
    return data
