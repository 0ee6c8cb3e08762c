"""What stops a process from starting, said in one line an operator can act on.

A busy port, a folder the SQLite file cannot be created in, a MongoDB that
does not answer: each is a setting to fix or a service to start, not a bug,
so it gets one line naming the setting (and its environment variable) and
what to do, never a traceback.
"""
from __future__ import annotations

import errno
import socket

import tornado.netutil

from config import Settings
from store.base import StoreError, StoreMisconfigured


class CannotStart(Exception):
    """One line: what is wrong, with which setting, and what to do."""


def listen(settings: Settings) -> list[socket.socket]:
    """The listening sockets of ``server.host``:``server.port``, or :class:`CannotStart`."""
    host, port = settings.server.host, settings.server.port
    try:
        return tornado.netutil.bind_sockets(port, host)
    except socket.gaierror as exc:
        raise CannotStart(
            f"server.host {host!r} does not resolve ({exc.strerror}): use an address of this machine, e.g. 127.0.0.1"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CannotStart(
                f"port {port} on {host} is already in use (server.port, WXPAY_SERVER_PORT or --port): "
                "stop the other process or choose another port"
            ) from None
        if exc.errno == errno.EACCES:
            raise CannotStart(
                f"not allowed to listen on port {port} (server.port or --port): ports below 1024 need "
                "privileges; use a higher port behind a reverse proxy"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise CannotStart(
                f"{host} is not an address of this machine (server.host, WXPAY_SERVER_HOST or --host)"
            ) from None
        raise CannotStart(f"cannot listen on {host}:{port} (server.host, server.port): {exc.strerror}") from None


def store_setting(settings: Settings) -> str:
    """The setting (and its environment variables) that chose the store."""
    if settings.store.mongodb_uri:
        return "store.mongodb_uri (WXPAY_STORE_MONGODB_URI or MONGODB_URI)"
    return "store.sqlite_path (WXPAY_STORE_SQLITE_PATH)"


def store_problem(settings: Settings, exc: StoreError) -> str:
    """A store that would not open, as one line naming the setting and what to do."""
    text = str(exc).replace("\n", " ")
    if isinstance(exc, StoreMisconfigured):
        todo = "fix the setting"
    elif settings.store.mongodb_uri:
        todo = "start MongoDB or make it reachable from here, or fix the setting"
    else:
        todo = "check the file and its folder, or fix the setting"
    return f"the store ({store_setting(settings)}): {text}; {todo}"
