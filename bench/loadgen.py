"""Load generation for the bench: wrk (preferred) or a Python fallback, plus a setup client.

Why wrk: on a 2-core machine the load generator competes with the server
for CPU. wrk is C on one thread and spends a few percent of a core at the
rates seen here, so the server keeps nearly both cores; an asyncio client in
Python needs a sizeable share of a core for the same rate and would cap the
bare-Tornado figure (the denominator of every ratio) at its own speed.

Every scenario is a *pool* of requests (one per line: method, path, body and,
optionally, headers of that request alone: an APIv3 notify's signature).
``limit`` > 0 sends each pool entry once (first-time notifies, one prepay per
checkout) and ends the run as soon as the last answer is in; ``limit`` 0
cycles the pool until the duration ends. The same Lua script drives every
scenario, the bare-Tornado one included, so the ratios compare like with like.

Run as a script (``python bench/loadgen.py SPEC.json``) it is the fallback
generator: a separate process with keep-alive asyncio connections.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

# method, path, body ("" for none)[, headers of this request only, added to the run's]
Request = tuple[str, str, str] | tuple[str, str, str, dict[str, str]]
_HEADER_SEP = "\x1f"  # between one request's headers in a pool line (never inside a header value)

# One wrk thread: it is far from saturated at these rates, and it leaves the
# second core to the processes under test. ``delay`` parks a connection once
# the pool is used up; the last answer then interrupts wrk's main thread
# (tgkill to the thread whose id is the pid), so wrk's own clock stops there.
_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[ long syscall(long n, long a, long b, long c); int getpid(void); ]]
local PID = ffi.C.getpid()
local POOL, LIMIT, EXPECT = %(pool)s, %(limit)d, %(expect)d
local HEADERS = %(headers)s
local reqs, i, probed, taken = {}, 0, false, 0
got, sent, bad, sample = 0, 0, 0, ""
init = function(args)
  for line in io.lines(POOL) do
    local m, p, b, h = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if b == "" then b = nil end
    local hs = HEADERS
    if h ~= "" then
      hs = {}
      for k, v in pairs(HEADERS) do hs[k] = v end
      for k, v in h:gmatch("([^\31:]+): ([^\31]*)") do hs[k] = v end
    end
    reqs[#reqs + 1] = wrk.format(m, p, hs, b)
  end
  if LIMIT > #reqs then LIMIT = #reqs end
end
request = function()
  if not probed then probed = true; return reqs[1] end  -- wrk asks once before it starts
  sent = sent + 1
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
delay = function()
  -- wrk asks delay() once before each request(), but another connection's delay() can run in
  -- between: counting here (not in request()) keeps a pool sent once from wrapping around.
  if LIMIT > 0 then
    if taken >= LIMIT then return 3600000 end
    taken = taken + 1
  end
  return 0
end
response = function(status, headers, body)
  got = got + 1
  if status ~= EXPECT then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body or "", 1, 160):gsub("[^%%w%%s_:.,=-]", " ") end
  end
  if LIMIT > 0 and got == LIMIT then ffi.C.syscall(234, PID, PID, 2) end
end
local thread
setup = function(t) thread = t end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nWRKJSON {"requests":%%d,"duration_us":%%d,"got":%%d,"sent":%%d,"bad":%%d,"sample":"%%s",' ..
    '"socket_errors":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d}\n',
    summary.requests, summary.duration, thread:get("got"), thread:get("sent"), thread:get("bad"),
    thread:get("sample"), e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class Result:
    """One scenario run: rate and latency as the load generator saw them."""

    requests: int          # answers received
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    bad: int = 0           # answers with another status than expected
    socket_errors: int = 0
    sample: str = ""       # the first unexpected answer, abridged
    tool: str = "wrk"
    connections: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def errors(self) -> int:
        return self.bad + self.socket_errors


def wrk_path(install: bool = True) -> str | None:
    """Debian's wrk; installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return shutil.which("wrk")
    return None


def _lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_pool(pool: Sequence[Request], directory: str) -> str:
    fd, path = tempfile.mkstemp(prefix="pool-", suffix=".tsv", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for method, path_, body, *own in pool:
            head = _HEADER_SEP.join(f"{k}: {v}" for k, v in (own[0] if own else {}).items())
            if any(c in path_ + body + head for c in "\t\n") or _HEADER_SEP in path_ + body:
                raise ValueError("pool entries may not contain tabs or newlines")
            f.write(f"{method}\t{path_}\t{body}\t{head}\n")
    return path


def run_wrk(
    port: int,
    pool: Sequence[Request],
    *,
    headers: dict[str, str] | None = None,
    limit: bool = False,
    duration: float = 10.0,
    connections: int = 32,
    expect: int = 200,
    tmpdir: str | None = None,
    wrk: str = "wrk",
) -> Result:
    """Drive 127.0.0.1:``port`` with wrk over ``pool`` (see the module docstring)."""
    tmpdir = tmpdir or tempfile.gettempdir()
    pool_file = _write_pool(pool, tmpdir)
    head = "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()) + "}"
    script = _LUA % {
        "pool": _lua_string(pool_file), "limit": len(pool) if limit else 0, "expect": expect, "headers": head,
    }
    fd, script_file = tempfile.mkstemp(prefix="wrk-", suffix=".lua", dir=tmpdir)
    with os.fdopen(fd, "w") as f:
        f.write(script)
    try:
        secs = max(1, int(round(duration)))
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{secs}s", "--timeout", "30s", "-s", script_file,
             f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, timeout=secs + 60,
        )
    finally:
        os.unlink(script_file)
        os.unlink(pool_file)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk produced no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    d = json.loads(line[len("WRKJSON "):])
    return Result(
        requests=d["got"], seconds=d["duration_us"] / 1e6,
        p50_ms=d["p50_us"] / 1000, p90_ms=d["p90_us"] / 1000, p99_ms=d["p99_us"] / 1000, max_ms=d["max_us"] / 1000,
        bad=d["bad"], socket_errors=d["socket_errors"], sample=d["sample"], tool="wrk", connections=connections,
    )


def run_python(
    port: int,
    pool: Sequence[Request],
    *,
    headers: dict[str, str] | None = None,
    limit: bool = False,
    duration: float = 10.0,
    connections: int = 32,
    expect: int = 200,
    tmpdir: str | None = None,
) -> Result:
    """The fallback: this module as a separate process (see ``drive``)."""
    spec = {
        "port": port, "pool": list(pool), "headers": headers or {}, "limit": limit,
        "duration": duration, "connections": connections, "expect": expect,
    }
    fd, spec_file = tempfile.mkstemp(prefix="spec-", suffix=".json", dir=tmpdir)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    try:
        out = subprocess.run(
            [sys.executable, __file__, spec_file], capture_output=True, text=True, timeout=duration + 120
        )
    finally:
        os.unlink(spec_file)
    if out.returncode != 0:
        raise RuntimeError(f"python load generator failed: {out.stderr[-800:]}")
    d = json.loads(out.stdout.strip().splitlines()[-1])
    return Result(**d, tool="python", connections=connections)


# ---- a small keep-alive HTTP/1.1 client (setup work and the fallback) --------


class Conn:
    """One keep-alive connection; enough HTTP/1.1 for our own servers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | str = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = body.encode() if isinstance(body, str) else body
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if data or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(data)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        hdrs: dict[str, str] = {}
        for h in header_lines:
            if ":" in h:
                k, v = h.split(":", 1)
                k = k.strip().lower()
                hdrs[k] = (hdrs[k] + "\n" + v.strip()) if k in hdrs else v.strip()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(chunk[:-2])
            payload = b"".join(chunks)
        else:
            payload = await self.reader.readexactly(int(hdrs.get("content-length", "0")))
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def fetch_all(
    port: int, items: Iterable[tuple[str, str, dict[str, str], bytes | str]], concurrency: int = 16
) -> list[tuple[int, dict[str, str], bytes]]:
    """Send every (method, path, headers, body) to 127.0.0.1:``port``; answers in order."""
    todo = list(enumerate(items))
    out: list[Any] = [None] * len(todo)

    async def worker() -> None:
        conn = Conn("127.0.0.1", port)
        try:
            while todo:
                n, (method, path, headers, body) = todo.pop()
                out[n] = await conn.request(method, path, headers, body)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """The fallback generator's loop: same pool semantics as the Lua script."""
    pool = spec["pool"]
    total = len(pool) if spec["limit"] else None
    deadline = time.perf_counter() + spec["duration"]
    latencies: list[float] = []
    state = {"next": 0, "bad": 0, "errors": 0, "sample": ""}

    async def worker() -> None:
        conn = Conn("127.0.0.1", spec["port"])
        while time.perf_counter() < deadline:
            n = state["next"]
            if total is not None and n >= total:
                break
            state["next"] = n + 1
            method, path, body, *own = pool[n % len(pool)]
            t0 = time.perf_counter()
            try:
                status, _, payload = await conn.request(method, path, {**spec["headers"], **(own[0] if own else {})},
                                                        body)
            except (OSError, asyncio.IncompleteReadError):
                state["errors"] += 1
                conn.close()
                continue
            latencies.append(time.perf_counter() - t0)
            if status != spec["expect"]:
                state["bad"] += 1
                state["sample"] = state["sample"] or f"{status} {payload[:160]!r}"
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(spec["connections"])))
    seconds = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "requests": len(latencies), "seconds": seconds, "p50_ms": pct(0.5), "p90_ms": pct(0.9),
        "p99_ms": pct(0.99), "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "bad": state["bad"], "socket_errors": state["errors"], "sample": state["sample"],
    }


if __name__ == "__main__":
    spec_in = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(drive(spec_in))))
