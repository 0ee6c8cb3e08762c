"""The access log, without secrets in query strings.

Tornado's default line carries the full URI, and some URIs carry secrets:
``/oauth/callback?code=…`` (a shopper's single-use OAuth code) and, in
sandbox mode, the simulated WeChat's ``sns/oauth2/access_token?secret=…``.
Query values are replaced by ``…``; names stay, which is what debugging needs.

The checkout page polls its status every couple of seconds per shopper; an
answered poll is logged at DEBUG, or those lines would be most of the log
(and most of a poll's cost). A failed poll is logged like anything else.

Like every record, these lines go through the process's formatter
(edge/log_lines.py), which escapes whatever control characters a path
could carry.

A handler whose failures are summed up elsewhere (``access_log_summarized``:
the notify endpoints, for notifies that did not prove their origin) logs
them at DEBUG, so a flood does not write a line per request.

Every other client error (4xx) is held to a :class:`edge.log_budget.LineBudget`
per source: a source's first lines a minute are written, the rest are
counted and summed up in one WARNING line a minute. An error line names the
error's code (``-> too_many_token_attempts``), so the refusal is one line,
not the access line plus the handler's own.
"""
from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from edge.log_budget import LineBudget
from edge.sources import source_of

access_log = logging.getLogger("tornado.access")
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,40}")  # a parameter name, not a value passed as one


def redact_uri(uri: str) -> str:
    path, sep, query = uri.partition("?")
    if not sep:
        return path
    names = [name if _NAME.fullmatch(name) else "?" for name, _ in parse_qsl(query, keep_blank_values=True)]
    return f"{path}?{'&'.join(f'{n}=…' for n in names)}" if names else path


class AccessLog:
    """The application's ``log_function``: one line per request, client
    errors within the budget."""

    def __init__(self, budget: LineBudget | None = None) -> None:
        self.budget = budget or LineBudget("client error (4xx) access log", logger=access_log)

    def __call__(self, handler: Any) -> None:
        status = handler.get_status()
        if status < 400:
            if getattr(handler, "quiet_access_log", False):
                if not access_log.isEnabledFor(logging.DEBUG):
                    return
                log = access_log.debug
            else:
                log = access_log.info
        elif status < 500:
            if getattr(handler, "access_log_summarized", False):
                if not access_log.isEnabledFor(logging.DEBUG):
                    return
                log = access_log.debug
            elif not self.budget.allow(_source(handler), str(status)):
                return
            else:
                log = access_log.warning
        else:
            log = access_log.error
        request = handler.request
        code = getattr(handler, "error_code", None)
        log("%d %s %s (%s) %.2fms%s", status, request.method, redact_uri(request.uri or ""), request.remote_ip,
            1000.0 * request.request_time(), f" -> {code}" if code else "")


def _source(handler: Any) -> str:
    client_source = getattr(handler, "client_source", None)
    return client_source() if client_source is not None else source_of(handler.request.remote_ip or "")
