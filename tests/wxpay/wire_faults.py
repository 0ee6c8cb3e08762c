"""Real sockets on 127.0.0.1 that fail the way a WeChat connection can fail.

Each is an asyncio server (or a plain listening socket) in the test's own
loop: a closed port, a server that accepts and never answers, one that
answers 502, one that resets the connection (SO_LINGER 0), one that closes
without a word, a TLS server with a self-signed certificate, one that
demands a client certificate, and a listener whose accept queue is full
(the kernel drops further SYNs: a connect timeout without any network).
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from tests.deploy.tls import self_signed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(30)  # the test ends (and closes us) long before


async def bad_gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    body = b"<html><body>502 Bad Gateway</body></html>"
    writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # closed with linger 0: the peer gets an RST


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    await writer.drain()
    writer.close()


async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Serve ``handler`` on a free loopback port; yields the port."""
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(Exception):
            await handler(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@contextlib.contextmanager
def full_backlog() -> "contextlib.AbstractContextManager[int]":
    """A listener that never accepts and whose accept queue is full: the kernel
    drops every further SYN, so a connect times out (no network needed)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()


@contextlib.contextmanager
def tls_server(context: ssl.SSLContext) -> "contextlib.AbstractContextManager[int]":
    """A TLS server on a thread with blocking sockets: unlike asyncio's, the
    ``ssl`` module sends the handshake's alerts (certificate required, unknown
    CA) before it closes, as a real server does. Answers "ok" once through."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stopping = threading.Event()

    def run() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(2)
            tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            try:
                tls.do_handshake()
                _read_whole_request(tls)  # whole: answering and closing before the body is read resets the connection
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except OSError:  # the handshake the test wants to fail: its alert is sent;
                _drain(tls)  # read what the client still sends, so closing sends no RST over the alert
            finally:
                tls.close()

    thread = threading.Thread(target=run, name="tls-server", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(5)
        listener.close()


def _read_whole_request(tls: ssl.SSLSocket) -> bytes:
    """The request's head and its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    return data


def _drain(tls: ssl.SSLSocket) -> None:
    with contextlib.suppress(OSError):
        while socket.socket.recv(tls, 65536):  # the raw bytes, under the failed TLS layer
            pass


def tls_context(folder: Path, *, require_client_cert: bool = False) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate (valid for 127.0.0.1);
    returns it and the certificate, which a client may choose to trust."""
    cert, key = self_signed(folder, "wechat.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cert)  # trusts only itself: no merchant certificate will do
    return context, cert
