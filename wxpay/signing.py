"""Pay V2 signatures (MD5, HMAC-SHA256) and the JSSDK SHA1 signature.

Pure functions: nothing here logs, so neither the key nor the string-to-sign
can leak through a log handler.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from typing import Any, Mapping

from .errors import SignatureError

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)

_NONCE_ALPHABET = string.ascii_letters + string.digits


def make_nonce(length: int = 32) -> str:
    """A nonce from ``secrets`` (WeChat allows at most 32 characters).

    One read of the OS generator per nonce, not one per character (every
    signed request needs a nonce); bytes >= 248 are skipped so each of the
    62 symbols stays equally likely.
    """
    chars: list[str] = []
    while len(chars) < length:
        chars += [_NONCE_ALPHABET[b % 62] for b in secrets.token_bytes(length + 8) if b < 248]
    return "".join(chars[:length])


def _canonical(params: Mapping[str, Any]) -> str:
    """stringA: every non-empty field but ``sign``, ASCII-sorted, raw values."""
    pairs = []
    for name in sorted(params):
        value = params[name]
        if type(value) is not str:  # hot path: skip str() for the usual case
            if value is None:
                continue
            value = str(value)
        if value and name != "sign":
            pairs.append(f"{name}={value}")
    return "&".join(pairs)


def sign(params: Mapping[str, Any], key: str, sign_type: str = MD5) -> str:
    """Sign ``params`` the V2 way; ``sign_type`` decides the hash, not the params.

    If ``params`` carries ``sign_type`` it is signed like any other field, as
    WeChat does, so callers must put the same value there.
    """
    return sign_canonical(_canonical(params), key, sign_type)


def sign_canonical(string_a: str, key: str, sign_type: str = MD5) -> str:
    """Hash an already-built stringA (for callers whose field set is fixed and sorted)."""
    if not key:
        raise SignatureError("No API key configured: cannot sign")
    payload = f"{string_a}&key={key}".encode("utf-8")
    if sign_type == MD5:
        return hashlib.md5(payload).hexdigest().upper()
    if sign_type == HMAC_SHA256:
        return hmac.new(key.encode("utf-8"), payload, hashlib.sha256).hexdigest().upper()
    raise SignatureError(f"Unsupported sign_type {sign_type!r}: use MD5 or HMAC-SHA256")


def resolve_sign_type(params: Mapping[str, Any], expected: str | None) -> str:
    """The sign type a received message must be checked with.

    A message that declares ``sign_type`` must declare the one we expect (the
    order's); one that does not (typical of notifies) is checked with the
    expected type, defaulting to MD5 only when the caller knows nothing.
    """
    declared = params.get("sign_type") or None
    if declared is not None and declared not in SIGN_TYPES:
        raise SignatureError(f"Unknown sign_type {declared!r} in message")
    if expected is not None and expected not in SIGN_TYPES:
        raise SignatureError(f"Unknown expected sign_type {expected!r}")
    if declared and expected and declared != expected:
        raise SignatureError(
            f"Message is signed with {declared} but the order uses {expected}"
        )
    return declared or expected or MD5


def verify(params: Mapping[str, Any], key: str, sign_type: str | None = None) -> str:
    """Raise :class:`SignatureError` unless ``params['sign']`` is right.

    Returns the sign type that verified. Uses a constant-time comparison.
    """
    given = params.get("sign")
    if not given or not isinstance(given, str):
        raise SignatureError("Message carries no signature")
    used = resolve_sign_type(params, sign_type)
    expected_len = 32 if used == MD5 else 64
    if len(given) != expected_len:
        raise SignatureError(
            f"Signature length {len(given)} does not fit {used} (expected {expected_len})"
        )
    good = sign(params, key, used)
    if not hmac.compare_digest(good.encode("ascii"), given.upper().encode("ascii", "replace")):
        raise SignatureError(f"Signature does not verify ({used})")
    return used


def page_url_for_jssdk(url: str) -> str:
    """The URL as JSSDK signs it: everything before ``#``."""
    return url.split("#", 1)[0]


def jssdk_signature(jsapi_ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """SHA1 over lower-case field names and raw values (no key, lower-case hex)."""
    fields = {
        "jsapi_ticket": jsapi_ticket,
        "noncestr": noncestr,
        "timestamp": str(timestamp),
        "url": page_url_for_jssdk(url),
    }
    raw = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()
