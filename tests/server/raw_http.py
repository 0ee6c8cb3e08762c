"""HTTP/1.1 over a bare socket, for clients no library would be: silent, slow, half-sent."""
from __future__ import annotations

import asyncio


async def connect(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to 127.0.0.1:port from the loopback address ``source``."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_within(reader: asyncio.StreamReader, bound: float, since: float | None = None) -> float:
    """Seconds until the server closes (EOF or reset), counted from ``since``
    (the loop's clock; default now); fails if it is still open after ``bound``."""
    loop = asyncio.get_running_loop()
    started = loop.time() if since is None else since
    try:
        async with asyncio.timeout(bound):
            while await reader.read(65536):
                pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for more than {bound} s") from None
    except ConnectionResetError:
        pass
    return loop.time() - started


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes,
                  timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` and read one response with a Content-Length (or up to the close)."""
    writer.write(raw)
    await writer.drain()
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
    return int(status_line.split()[1]), headers, body


def get(path: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode("latin-1")
