"""wxpay-server: one Tornado process that takes WeChat payments.

``python server.py`` (or the ``wxpay-server`` script) starts it. With nothing
configured it runs in sandbox mode: an embedded SQLite store and WeChat's
stand-in (wxpay.simulator) mounted at ``/_wechat`` in this same process.
``wxpay-server bills --date YYYY-MM-DD`` reconciles one day's WeChat bill
with the store instead (exit 0: no differences, 1: differences, 2: could
not run).

This module starts, stops and parses the command line; what it starts is
put together in ``wiring/`` (the services container, the app, the sandbox).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

import tornado.netutil
import tornado.web

from config import Settings, SettingsError, load_settings
from edge import log_lines
from edge.http_server import EdgeHTTPServer
from service import pauses
from service.container import Services
from store.base import Store, StoreError
from service.trust import TrustKeeper
from store.leases import Leases, make_holder
from wiring import sandbox
from wiring.gateways import checked
from wiring.services import Built, build, cli_gateway, open_configured_store, store_indexes
from wiring.startup import CannotStart, listen, store_problem, store_setting
from wiring.web import VERSION, http_server, make_app
from wxpay.transport import Transport

log = logging.getLogger("wxpay_server")

__all__ = ["VERSION", "Running", "start", "main", "cli", "public_credentials"]

public_credentials = sandbox.public_credentials  # what live mode refuses (the simulator's demo merchant)


@dataclass
class Running:
    """One started process: its parts, its listener, its background tasks."""

    built: Built
    server: EdgeHTTPServer
    app: tornado.web.Application
    port: int
    stop_event: asyncio.Event
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def services(self) -> Services:
        return self.built.services

    @property
    def settings(self) -> Settings:
        """The settings in force (sandbox defaults filled in)."""
        return self.built.settings

    @property
    def simulator(self) -> Any:
        """The simulated WeChat this process mounts (sandbox), or ``None``."""
        return self.built.sandbox.simulator if self.built.sandbox is not None else None

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish, then close resources."""
        self.stop_event.set()
        self.server.stop()
        inflight = self.app.settings["inflight"]
        if not await inflight.wait_idle(grace):
            log.warning("%d request(s) still running after %.0f s; closing anyway", inflight.count, grace)
        try:
            await asyncio.wait_for(self.server.close_all_connections(), timeout=2)
        except asyncio.TimeoutError:
            pass
        # Background loops watch stop_event: let them finish the step they are
        # in (a webhook POST must be recorded as delivered), then cancel.
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=min(grace, 5.0))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.built.sandbox is not None:
            await self.built.sandbox.stop()
        if self.built.transport is not None:
            self.built.transport.close()
        self.services.notify_limiter.flush()  # the last window's summary line
        self.app.settings["log_budget"].flush()  # likewise for the client-error lines held back
        await self.services.store.close()


async def start(
    settings: Settings,
    *,
    port: int | None = None,
    sockets: list | None = None,
    transport: Transport | None = None,
    store: Store | None = None,
    run_reconciler: bool | None = None,
) -> Running:
    """Bind, build and start serving; used by main() and by the tests."""
    # A test hook (service/pauses.py): refused outside sandbox mode, so a
    # live process can neither pause nor be asked to.
    pauses.configure(os.environ.get("WXPAY_TEST_PAUSES"), sandbox=settings.is_sandbox)
    own_sockets = sockets is None
    if sockets is None:
        sockets = tornado.netutil.bind_sockets(port if port is not None else settings.server.port, settings.server.host)
    bound_port = sockets[0].getsockname()[1]
    try:
        built = await build(settings, port=bound_port, transport=transport, store=store)
    except BaseException:
        if own_sockets:  # the port is free again for whoever fixes the cause and retries
            for sock in sockets:
                sock.close()
        raise
    app = make_app(built.services, built.settings, extra_routes=built.sandbox.routes if built.sandbox else ())
    server = http_server(app, built.settings)
    server.add_sockets(sockets)
    running = Running(built, server, app, bound_port, asyncio.Event())
    if built.sandbox is not None:
        await built.sandbox.start()
    services = built.services
    if services.trust.keeps_state:  # APIv3 platform certificates: what another process saved, then kept fresh
        await services.trust.start()
        running.tasks.append(asyncio.create_task(services.trust.run_forever(running.stop_event)))
    reconcile = built.settings.reconciler.enabled if run_reconciler is None else run_reconciler
    if reconcile:
        running.tasks.append(asyncio.create_task(services.reconciler.run_forever(running.stop_event)))
    if services.webhooks.enabled:
        running.tasks.append(asyncio.create_task(services.webhooks.run_forever(running.stop_event)))
    return running


def settle_heap() -> None:
    """Set what start-up built (modules, settings, templates, the route table:
    tens of thousands of objects that live as long as the process) apart from
    the cyclic garbage collector. Otherwise every full collection walks them
    all again: about 40 ms each, a few microseconds per request on average.
    Only the process entry does this: tests start many servers in one process."""
    gc.collect()
    gc.freeze()


def merchant_token_hint(settings: Settings) -> str:
    """The public sandbox default may be shown; a token someone configured is a
    secret and stdout usually ends up in a log (journald, docker logs)."""
    from config import SANDBOX_MERCHANT_TOKEN

    tokens = settings.merchant_api.tokens
    if not tokens:
        return "(none)"
    return tokens[0] if tokens[0] == SANDBOX_MERCHANT_TOKEN else "(configured; not shown)"


def admin_hint(settings: Settings) -> str:
    """Like the token: the public sandbox default is shown, a configured password never."""
    from config import SANDBOX_ADMIN_PASSWORD

    a = settings.admin
    shown = a.password if a.password == SANDBOX_ADMIN_PASSWORD else "(configured; not shown)"
    return f"{a.username} / {shown}"


def banner(running: Running) -> str:
    s = running.settings
    store = running.services.store
    gateways = running.services.gateways
    primary = gateways.primary.describe()
    verified = {"public_key": ", verified with the WeChat Pay public key",
                "platform_cert": ", verified with WeChat's platform certificates",
                "gray": ", verified with the public key and platform certificates (WeChat's switch)",
                }.get(str(primary.get("key_mode")), "")
    others = [v for v in gateways.versions if v != gateways.api_version]
    lines = [
        f"wxpay-server {VERSION} — {s.mode} mode, store: {store.backend} at {store.location}",
        f"  listening on http://{s.server.host}:{running.port}   public URL: {running.services.public_base}",
        f"  WeChat Pay API{gateways.api_version}{verified}"
        + (f"; also reads API{others[0]} notifies (orders from before a move)" if others else ""),
    ]
    if s.is_sandbox:
        lines += [
            "  SANDBOX: WeChat is simulated in this process at " + sandbox.PREFIX + " (no real money, no network).",
            f"  Try it:  open {running.services.public_base}/  (demo shop)",
            f"  Merchant API token: {merchant_token_hint(s)}",
            f"  Admin (/status): {admin_hint(s)}",
            f"  Demo merchant: mch_id={s.wechat.mch_id} appid={s.wechat.appid} "
            "(its V2 and TEST-ONLY V3 keys: python -m wxpay.simulator credentials)",
            "  Switch API version: WXPAY_WECHAT_API_VERSION=v3 (or v2) make run",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wxpay-server", description=__doc__.splitlines()[0],
        epilog="Subcommands: wxpay-server bills --date YYYY-MM-DD [--json] [--config FILE] [--port N | --url URL]; "
        "wxpay-server openapi [--write-docs | --check]",
    )
    parser.add_argument("--config", help="TOML settings file (default: $WXPAY_CONFIG or none)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides server.port)")
    parser.add_argument("--host", help="address to bind (overrides server.host)")
    return parser.parse_args(argv)


async def bills_main(argv: list[str], *, log_level: Callable[[str], None] | None = None) -> int:
    """``wxpay-server bills --date YYYY-MM-DD [--json] [--config FILE] [--verbose] [--port N | --url URL]``."""
    from service.bills import reconcile_day
    from wxpay import causes
    from wxpay.errors import TransportError, WxPayError

    parser = argparse.ArgumentParser(
        prog="wxpay-server bills",
        description="Compare WeChat's bill of one China-time day with the store. "
        "Exit 0: no differences; 1: differences; 2: could not run (no bill yet, WeChat or store unreachable).",
    )
    parser.add_argument("--date", required=True, help="the bill's day, YYYY-MM-DD (China time)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--config", help="TOML settings file (default: $WXPAY_CONFIG or none)")
    parser.add_argument("--verbose", action="store_true",
                        help="log at server.log_level (default: warnings only; the outcome is on stdout and stderr)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", type=int,
                       help="sandbox: the running server's port on 127.0.0.1, whose simulator serves the bill "
                       "(overrides server.port)")
    where.add_argument("--url", help="sandbox: the running server's address, e.g. http://127.0.0.1:9000 "
                       "(overrides server.public_url)")
    try:
        args = parser.parse_args(argv)
        day = date.fromisoformat(args.date)
    except SystemExit as exc:
        return 2 if exc.code else 0
    except ValueError:
        return _refuse("wxpay-server bills", f"--date must be YYYY-MM-DD, got {args.date!r}")
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["server.port"] = args.port
    if args.url is not None:
        overrides["server.public_url"] = args.url
    try:
        settings = checked(load_settings(args.config, overrides=overrides))
    except SettingsError as exc:
        print(f"wxpay-server bills: cannot run:\n{exc}", file=sys.stderr)
        return 2
    if log_level is not None:
        log_level(settings.server.log_level if args.verbose else "WARNING")
    if settings.is_live and overrides:
        return _refuse("wxpay-server bills", "--port and --url name a sandbox server; in live mode the bill comes from WeChat")
    try:
        settings = sandbox.with_sandbox_defaults(settings, settings.server.port)
        gateway = cli_gateway(settings)
    except SettingsError as exc:
        print(f"wxpay-server bills: cannot run:\n{exc}", file=sys.stderr)
        return 2
    store = open_configured_store(settings)
    if store.backend == "sqlite" and not os.path.exists(store.location):
        return _refuse("wxpay-server bills", f"no store at {store.location} ({store_setting(settings)}): "
                       "run bills in the server's folder or with the server's settings")
    try:
        await store.open(store_indexes(settings))
        if gateway.keeps_trust():  # APIv3 platform certificates the server keeps in the store
            await TrustKeeper(store, Leases(store), gateway, holder=make_holder()).load()
        report = await reconcile_day(day, gateway, store)
    except StoreError as exc:
        return _refuse("wxpay-server bills", f"cannot run: {store_problem(settings, exc)}")
    except WxPayError as exc:
        text = f"could not get the bill of {day}: {exc.message}"
        if isinstance(exc, TransportError) and sandbox.cli_endpoints(settings) is not None:
            text += f" (is the sandbox server running at {settings.server.public_url}? name it with --port or --url)"
        elif causes.hint(exc.cause) and isinstance(exc, TransportError):
            text += f" ({causes.hint(exc.cause)})"
        return _refuse("wxpay-server bills", text)
    finally:
        await store.close()
    print(report.to_json() if args.json else report.text(), flush=True)
    return 0 if report.clean else 1


def _refuse(prog: str, line: str) -> int:
    """One line on stderr, exit status 2: what an operator fixes, never a traceback."""
    print(f"{prog}: {' '.join(line.split())}", file=sys.stderr, flush=True)
    return 2


def openapi_main(argv: list[str]) -> int:
    """``wxpay-server openapi [--write-docs | --check]``: the merchant API's OpenAPI document."""
    from handlers import openapi_markdown
    from handlers.openapi import build_document

    parser = argparse.ArgumentParser(prog="wxpay-server openapi", description=openapi_main.__doc__)
    parser.add_argument("--write-docs", action="store_true", help="write docs/api.md and docs/openapi.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md or docs/openapi.json is stale")
    args = parser.parse_args(argv)
    doc = build_document(load_settings(None, env={}), version=VERSION, server_url=openapi_markdown.DOCS_SERVER_URL)
    if args.check:
        stale = openapi_markdown.stale(doc)
        if stale:
            print(f"stale: {', '.join(stale)} (run: make api-docs)", file=sys.stderr)
        return 1 if stale else 0
    if args.write_docs:
        for path, text in openapi_markdown.rendered(doc).items():
            path.write_text(text, encoding="utf-8")
        return 0
    print(openapi_markdown.json_text(doc), end="")
    return 0


async def main(argv: list[str] | None = None, *, log_level: Callable[[str], None] | None = None) -> int:
    """The server, or one of its commands. ``log_level`` applies ``server.log_level``
    once the settings are read (the entry point's logging; tests leave it alone)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bills"]:
        return await bills_main(argv[1:], log_level=log_level)
    if argv[:1] == ["openapi"]:
        return openapi_main(argv[1:])
    args = parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["server.port"] = args.port
    if args.host:
        overrides["server.host"] = args.host
    try:
        settings = checked(load_settings(args.config, overrides=overrides))
    except SettingsError as exc:
        print(f"wxpay-server: cannot start:\n{exc}", file=sys.stderr)
        return 2
    if log_level is not None:
        log_level(settings.server.log_level)
    try:
        sockets = listen(settings)
    except CannotStart as exc:
        return _refuse("wxpay-server: cannot start", str(exc))
    try:
        running = await start(settings, sockets=sockets)
    except (pauses.PausesRefused, SettingsError) as exc:
        for sock in sockets:
            sock.close()
        print(f"wxpay-server: cannot start:\n{exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        for sock in sockets:
            sock.close()
        return _refuse("wxpay-server: cannot start", store_problem(settings, exc))
    print(banner(running), flush=True)
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("wxpay-server: stopping (finishing in-flight requests)…", flush=True)
    await running.stop()
    return 0


def cli() -> None:
    log_lines.configure(logging.INFO)  # one record, one line: see edge/log_lines.py
    log_lines.lean_records()  # the process's own logging only: not in tests, whose reports name files and lines
    sys.exit(asyncio.run(main(log_level=logging.getLogger().setLevel)))  # then server.log_level


if __name__ == "__main__":
    cli()
