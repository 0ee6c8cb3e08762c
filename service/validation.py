"""Checks every merchant request shares, with one error code each.

The one owner of how outside text becomes a value: whole-string patterns
(``fullmatch``, so a trailing newline never passes), ASCII-only integers
(``int()`` also takes Unicode digits such as "١٢", spaces and
underscores), URLs that ``urlsplit`` may refuse by raising, and free text
that must be encodable (no lone surrogates) and shown as one line in the
order it was written (no controls, bidi overrides or line separators).
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .errors import InvalidInput

# C0 and C1 controls, DEL, lone surrogates, the bidi embeddings, overrides and
# isolates (which reorder what the shopper reads), and the line and paragraph
# separators (which break the one line WeChat shows).
UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\u2028\u2029]")
ASCII_DIGITS = re.compile(r"[0-9]{1,9}")
# An openid is 28 characters of [A-Za-z0-9_-] in practice; WeChat's limit is 128.
OPENID = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def json_object(data: Any, allowed: set[str] | frozenset[str]) -> Mapping[str, Any]:
    """A JSON object with no unknown fields: typos must not pass silently."""
    if not isinstance(data, Mapping):
        raise InvalidInput("invalid_body", "The request body must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        names = [printable(name, 64) for name in unknown[:20]]
        raise InvalidInput("unknown_field", f"Unknown field(s): {', '.join(names)}", fields=names)
    return data


def printable(value: str, limit: int) -> str:
    """Outside text to quote back in a message: unencodable and unsafe characters
    escaped (a key may be a lone surrogate), at most ``limit`` characters."""
    if not safe_text(value):
        value = UNSAFE_TEXT.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def matches(pattern: re.Pattern[str], value: Any) -> bool:
    """``value`` is a string the pattern matches whole."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def safe_text(value: Any) -> bool:
    """Text that encodes as UTF-8 and reads as one line in the written order."""
    return isinstance(value, str) and UNSAFE_TEXT.search(value) is None


def utf8_len(value: str) -> int:
    """Bytes in UTF-8; call only on ``safe_text`` (a lone surrogate cannot encode)."""
    return len(value.encode("utf-8"))


def query_int(raw: str | None, *, name: str, code: str, default: int, low: int, high: int) -> int:
    """A query argument that must be ASCII digits, nothing around them, within bounds."""
    if raw is None:
        return default
    if not ASCII_DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidInput(code, f"{name} must be an integer between {low} and {high}")
    return int(raw)


def http_url(value: Any, *, schemes: tuple[str, ...] = ("http", "https"), max_length: int = 1024) -> SplitResult | None:
    """An absolute URL with one of ``schemes``, a host and a valid port; else None.

    ``urlsplit`` raises ValueError on "http://[::1" and ``.port`` on ports
    out of range or not numbers; both are answers here, not exceptions.
    """
    if not isinstance(value, str) or not value or len(value) > max_length:
        return None
    if UNSAFE_TEXT.search(value) or " " in value or "\\" in value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    if parts.scheme not in schemes or not parts.hostname or not value.isascii():
        return None
    return parts


def ip_address_text(value: Any) -> str | None:
    """An IPv4 or IPv6 address written as text: not an integer, no zone (``%eth0``)."""
    if not isinstance(value, str) or not 2 <= len(value) <= 45 or not value.isascii() or "%" in value:
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    return value
