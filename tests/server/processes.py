"""Start real OS processes (servers, a standalone simulator) for multi-process tests."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient
from tornado.testing import bind_unused_port

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    sock, port = bind_unused_port()
    sock.close()
    return port


def spawn(args: list[str], env: dict[str, str] | None = None, log_path: Path | None = None) -> subprocess.Popen:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env={**base_env, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        if log_path:
            out.close()  # the child holds its own descriptor


async def wait_http(url: str, proc: subprocess.Popen, tries: int = 150) -> None:
    """Poll ``url`` until it answers (bounded); fail fast if the process died."""
    client = AsyncHTTPClient()
    for _ in range(tries):
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered")
        try:
            await client.fetch(url, request_timeout=2, raise_error=False)
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
