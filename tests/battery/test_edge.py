"""The HTTP edge under slow, greedy and hostile clients: each kind of
stalled connection dropped after its timeout while normal requests are
served, the connection cap holding below the process's open-files limit,
log lines that cannot be forged, and the security headers on every route.

Timeouts are set to 1 s so the figures read plainly; bounds are generous
and nothing asserts speed."""
from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import resource
import signal
import subprocess
import sys

from edge.connection_cap import RESERVED_FDS
from edge.log_lines import configure
from tests.server.edge_probes import codes, crawl, header_problems, log_problems, send_hostile_values
from tests.server.live import start_live
from tests.server.processes import ROOT, free_port, wait_http
from tests.server.raw_http import closed_within, connect, get, request

from .harness import start_server
from .results import record

SECTION = "edge"
TIMEOUT = 1.0
BOUND = 30.0
PER_KIND = 50

HALF_BODY = (b"POST /notify/pay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: 2000\r\n\r\n"
             b"<xml><return_code>SUCCESS</return_code>")


async def _open(port: int, first_bytes: bytes) -> tuple[asyncio.StreamWriter, asyncio.Task]:
    """Connect, send ``first_bytes``, and start timing how long the server keeps it open."""
    reader, writer = await connect(port)
    since = asyncio.get_running_loop().time()
    if first_bytes:
        writer.write(first_bytes)
        await writer.drain()
    return writer, asyncio.create_task(closed_within(reader, BOUND, since))


async def _kept_alive_then_idle(port: int) -> tuple[asyncio.StreamWriter, asyncio.Task]:
    reader, writer = await connect(port)
    status, _, _ = await request(reader, writer, get("/healthz"))
    assert status == 200
    return writer, asyncio.create_task(closed_within(reader, BOUND))


async def test_slow_clients_are_dropped_after_their_timeouts(tmp_path):
    running = await start_server(tmp_path, **{"server.header_timeout_s": TIMEOUT, "server.idle_timeout_s": TIMEOUT,
                                              "server.body_timeout_s": TIMEOUT})
    port = running.port
    kinds = {
        "silent (connects, sends nothing)": lambda: _open(port, b""),
        "half a header line": lambda: _open(port, b"GET /healthz HT"),
        "headers and half a body": lambda: _open(port, HALF_BODY),
        "idle kept-alive connection": lambda: _kept_alive_then_idle(port),
    }
    try:
        opened = {name: await asyncio.gather(*(make() for _ in range(PER_KIND))) for name, make in kinds.items()}
        # Normal clients, on their own connections, while 200 slow ones hang.
        normal_ok = 0
        for _ in range(50):
            reader, writer = await connect(port)
            status, _, _ = await request(reader, writer, get("/healthz", "Connection: close"))
            normal_ok += status == 200
            writer.close()
        dropped = {name: await asyncio.gather(*(watch for _, watch in conns)) for name, conns in opened.items()}
        for conns in opened.values():
            for writer, _ in conns:
                writer.close()
        after_reader, after_writer = await connect(port)
        after, _, _ = await request(after_reader, after_writer, get("/healthz"))
        after_writer.close()
    finally:
        await running.stop(grace=1)
    figures = {"timeouts_s": f"header {TIMEOUT:g}, idle {TIMEOUT:g}, body {TIMEOUT:g}", "per_kind": PER_KIND}
    for name, waits in dropped.items():
        figures[f"{name}: dropped after s (min-max)"] = f"{min(waits):.2f}-{max(waits):.2f}"
    figures["normal requests served meanwhile"] = f"{normal_ok}/50"
    try:
        assert normal_ok == 50 and after == 200
        assert all(w > TIMEOUT / 2 for waits in dropped.values() for w in waits)  # by a timeout, not at once
    except AssertionError as exc:
        record(SECTION, "slow clients dropped after their timeouts", f"FAIL: {exc}", **figures)
        raise
    record(SECTION, "slow clients dropped after their timeouts", "pass", **figures)


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))


async def test_a_connection_flood_past_the_open_files_limit_is_refused_not_fatal(tmp_path):
    """A server process with 300 descriptors and the default cap (1000) meets 400 silent connections.

    Before the cap, accept() failed with EMFILE on every loop turn: ~4.5 MB of
    tracebacks a second in the log and the process unreachable."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}
    env.update({"WXPAY_STORE_SQLITE_PATH": str(tmp_path / "db.sqlite3"), "WXPAY_RECONCILER_ENABLED": "false"})
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "server.py", "--port", str(port)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_low_fd_limit)
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        conns = [await connect(port) for _ in range(400)]

        async def refused(reader: asyncio.StreamReader) -> bool:
            try:
                return (await asyncio.wait_for(reader.read(), 0.5)).startswith(b"HTTP/1.1 503 ")
            except TimeoutError:
                return False  # held open: one of the admitted

        answers = await asyncio.gather(*(refused(r) for r, _ in conns))
        log_size = log_path.stat().st_size
        await asyncio.sleep(2)
        log_growth = log_path.stat().st_size - log_size
        for _, writer in conns[:10]:  # some held connections go away; a new client gets in
            writer.close()
        await asyncio.sleep(1)
        reader, writer = await connect(port)
        status, _, _ = await request(reader, writer, get("/healthz"))
        writer.close()
        alive = proc.poll() is None
    finally:
        for _, writer in conns:
            writer.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = log_path.read_text("utf-8", "replace")
    figures = {
        "open_files_limit": 300, "cap_after_fit": 300 - RESERVED_FDS, "connections_opened": 400,
        "refused_with_503": sum(answers), "held_open": 400 - sum(answers),
        "log_bytes_in_2s_under_flood": log_growth, "healthz_after": status,
        "capped_warning_logged": f"capped at {300 - RESERVED_FDS}" in log,
    }
    try:
        assert alive and status == 200
        assert sum(answers) == 400 - (300 - RESERVED_FDS), figures
        assert "Too many open files" not in log and log_growth < 2000, figures
        assert figures["capped_warning_logged"], log[:2000]
    except AssertionError as exc:
        record(SECTION, "connection flood past the open-files limit", f"FAIL: {str(exc)[:200]}", **figures)
        raise
    record(SECTION, "connection flood past the open-files limit", "pass", **figures)


async def test_the_cap_refuses_the_connection_over_it_and_serves_the_open_ones(tmp_path):
    cap = 50
    running = await start_server(tmp_path, **{"server.max_connections": cap, "server.max_connections_per_ip": cap})
    try:
        held = [await connect(running.port) for _ in range(cap)]
        extra = [await connect(running.port) for _ in range(20)]
        refusals = await asyncio.gather(*(asyncio.wait_for(r.read(), BOUND) for r, _ in extra))
        served = 0
        for reader, writer in held[:10]:
            status, _, _ = await request(reader, writer, get("/healthz"))
            served += status == 200
        for _, writer in (*held, *extra):
            writer.close()
    finally:
        await running.stop(grace=1)
    refused = sum(r.startswith(b"HTTP/1.1 503 ") for r in refusals)
    figures = {"max_connections": cap, "held": cap, "extra": 20, "extra_refused_with_503": refused,
               "held_then_served": f"{served}/10"}
    outcome = "pass" if refused == 20 and served == 10 else "FAIL: a refusal missing or a held connection hurt"
    record(SECTION, f"connection cap: connection {cap + 1} and later refused", outcome, **figures)
    assert outcome == "pass", figures


async def test_no_log_line_is_forged_by_hostile_values(tmp_path):
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure(logging.DEBUG, out)
    try:
        running = await start_server(tmp_path, **{"server.trusted_proxies": ["127.0.0.1"]})
        try:
            settings = running.settings
            await send_hostile_values(running.port, settings.merchant_api.tokens[0], settings.wechat.api_key)
        finally:
            await running.stop(grace=1)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = out.getvalue()
    problems = log_problems(text)
    reached = sorted(set(re.findall(r"FORGED-([A-Z]+)", text)))
    figures = {"log_lines": text.count("\n"), "hostile_values_that_reached_the_log": " ".join(reached),
               "forged_or_raw_lines": len(problems)}
    ok = not problems and {"JSON", "NOTIFY", "PATH"} <= set(reached)
    record(SECTION, "hostile values in paths, queries, headers, JSON and notify bodies: no forged log line",
           "pass" if ok else f"FAIL: {problems[:3]} (reached: {reached})", **figures)
    assert ok, (problems, reached)


async def test_every_route_answers_with_the_security_headers(tmp_path):
    figures: dict[str, object] = {}
    problems: list[str] = []
    for mode, start in (("sandbox", start_server), ("live", start_live)):
        running = await start(tmp_path / mode)
        try:
            responses = await crawl(running)
        finally:
            await running.stop(grace=1)
        problems += header_problems(responses, hsts=mode == "live")
        figures[f"{mode}_responses"] = len(responses)
        figures[f"{mode}_statuses"] = " ".join(map(str, sorted(codes(responses))))
    figures["without nosniff, with Server, with a version, or HSTS wrong"] = len(problems)
    record(SECTION, "every route, static file and error: nosniff, no Server header, HSTS in live mode",
           "pass" if not problems else f"FAIL: {problems[:3]}", **figures)
    assert problems == []


async def test_every_html_error_is_the_error_page_under_the_pages_csp(tmp_path):
    """Crawled in sandbox and live mode: every HTML error this server (not its simulated WeChat)
    answers is web/templates/error.html with the pages' CSP, no script or inline style, the code
    small. Before, a static file's 404 was Tornado's bare page, and a handler that is not a page
    (the sandbox bridge's, in live mode) sent none of the page's CSP."""
    from handlers.base import PAGE_CSP

    figures: dict[str, object] = {}
    problems: list[str] = []
    for mode, start in (("sandbox", start_server), ("live", start_live)):
        running = await start(tmp_path / f"pages-{mode}")
        try:
            responses = await crawl(running)
        finally:
            await running.stop(grace=1)
        pages = [(what, r) for what, r in responses
                 if r.code >= 400 and r.headers.get("Content-Type", "").startswith("text/html")
                 and not what.split(" ", 1)[1].startswith("/_wechat/")]
        for what, r in pages:
            text = r.body.decode("utf-8", "replace")
            if r.headers.get("Content-Security-Policy") != PAGE_CSP:
                problems.append(f"{what} ({r.code}): CSP {r.headers.get('Content-Security-Policy')!r}")
            if what.startswith("HEAD "):
                continue
            if '<code id="error-code">' not in text or '<h1 id="error-title">' not in text:
                problems.append(f"{what} ({r.code}): not the error page: {text[:80]!r}")
            if "<script" in text or "style=" in text or "<style" in text:
                problems.append(f"{what} ({r.code}): a script or an inline style")
        figures[f"{mode}_html_errors"] = len(pages)
        figures[f"{mode}_statuses"] = " ".join(map(str, sorted({r.code for _, r in pages})))
    figures["problems"] = len(problems)
    record(SECTION, "every HTML error: the error page, under the pages' CSP, no script or inline style",
           "pass" if not problems else f"FAIL: {problems[:3]}", **figures)
    assert problems == []
