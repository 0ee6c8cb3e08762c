"""Domain errors: what went wrong in merchant terms, never an HTTP status.

Handlers map ``kind`` to a status in one place (handlers/base.py); services
and below never raise HTTP errors.
"""
from __future__ import annotations

from typing import Any

# kind -> meaning; handlers own the status mapping.
INVALID = "invalid"          # the caller sent something wrong
NOT_FOUND = "not_found"
CONFLICT = "conflict"        # the resource's state forbids it
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
UNAVAILABLE = "unavailable"  # our store is down: retry later
UPSTREAM = "upstream"        # WeChat failed or refused
RATE_LIMITED = "rate_limited"  # too many attempts: wait ``retry_after_s`` and retry


class ServiceError(Exception):
    kind = INVALID

    def __init__(self, code: str, message: str, *, kind: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if kind:
            self.kind = kind
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


class InvalidInput(ServiceError):
    kind = INVALID


class NotFound(ServiceError):
    kind = NOT_FOUND


class Conflict(ServiceError):
    kind = CONFLICT


class Unauthorized(ServiceError):
    kind = UNAUTHORIZED


class Forbidden(ServiceError):
    kind = FORBIDDEN


class Unavailable(ServiceError):
    kind = UNAVAILABLE


class UpstreamError(ServiceError):
    kind = UPSTREAM


class RateLimited(ServiceError):
    """Refused before any work: ``details["retry_after_s"]`` (whole, >= 1) says when to try again."""

    kind = RATE_LIMITED

    def __init__(self, code: str, message: str, *, retry_after_s: int) -> None:
        super().__init__(code, message, retry_after_s=max(1, int(retry_after_s)))
