"""wxpay-server: one Tornado process that takes WeChat payments.

``python server.py`` (or the ``wxpay-server`` script) starts it. With nothing
configured it runs in sandbox mode: an embedded SQLite store and WeChat's
stand-in (wxpay.simulator) mounted at ``/_wechat`` in this same process.
``wxpay-server bills --date YYYY-MM-DD`` reconciles one day's WeChat bill
with the store instead (exit 0: no differences, 1: differences, 2: could
not run).
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import tornado.netutil
import tornado.web

from config import PublicCredentials, Settings, SettingsError, load_settings
from edge import log_lines
from edge.log_budget import LineBudget
from edge.connection_cap import LOOPBACK, fit_to_open_files
from edge.headers import header_values, security_headers
from edge.http_server import EdgeHTTPServer, Limits
from handlers import after_payment as after_payment_routes
from handlers import api as api_routes
from handlers import health as health_routes
from handlers import notify as notify_routes
from handlers import openapi as openapi_routes
from handlers import pay as pay_routes
from handlers import shop as shop_routes
from handlers import status as status_routes
from handlers.access_log import AccessLog, access_log
from handlers.lockout import admin_lockout, merchant_api_lockout
from handlers.body_limit import BodyLimit, server_max_body_size
from handlers.inflight import Inflight
from service.audit import Audit
from service.call_stats import CallStats
from service.checkouts import CheckoutService
from service.closing import ClosingService
from service.clock import utcnow
from service.jssdk import JssdkService
from service.metrics import StatusMetrics
from service.notify_limiter import NotifyLimiter
from service.oauth import OAuthService
from service import pauses
from service.orders import OrderBook
from service.payment_notify import PaymentNotifyService
from service.prepay import Apps, PrepayService
from service.reconciler import Reconciler
from service.refund_notify import RefundNotifyService
from service.refunds import RefundService
from service.source_quota import SourceQuota
from service.tokens import TokenService
from service.webhooks import Webhooks
from store.base import Index, Store
from store.leases import Leases, make_holder
from store.open import indexes, open_store
from wxpay import payloads
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.merchant import Merchant
from wxpay.oauth import OAuthClient
from wxpay.official import OfficialAccountClient
from wxpay.simulator import demo
from wxpay.transport import TornadoTransport

log = logging.getLogger("wxpay_server")

VERSION = "0.1.0"
ROOT = Path(__file__).resolve().parent
WEB = ROOT / "web"
SIMULATOR_PREFIX = "/_wechat"
def public_credentials() -> PublicCredentials:
    """What live mode must refuse: the simulator's demo merchant, which
    config/ may not import (it knows nothing of the app)."""
    return PublicCredentials(frozenset(demo.PUBLIC_VALUES), (str(demo.CERT_PATH), str(demo.KEY_PATH)))


@dataclass
class Services:
    """Everything a handler may reach, built once per process."""

    settings: Settings
    store: Store
    audit: Audit
    checkouts: CheckoutService
    orders: OrderBook
    prepay: PrepayService
    payment_notify: PaymentNotifyService
    oauth: OAuthService
    tokens: TokenService
    reconciler: Reconciler
    jssdk: JssdkService
    pay: WxPayClient
    public_base: str
    simulator: Any = None
    simulator_path: str = SIMULATOR_PREFIX
    now: Callable[[], datetime] = utcnow
    started_at: datetime = field(default_factory=utcnow)
    call_stats: CallStats = field(default_factory=CallStats)  # fed by the wxpay clients' observer
    refunds: RefundService | None = None
    refund_notify: RefundNotifyService | None = None
    closing: ClosingService | None = None
    webhooks: Webhooks | None = None
    notify_limiter: NotifyLimiter | None = None  # what unverified notifies may cost, per source
    transport: Any = None  # the WeChat connections, closed at stop() when we made them

    def pay_url(self, checkout_id: str) -> str:
        return f"{self.public_base}/pay/{checkout_id}"

    def mweb_with_return(self, mweb_url: str, checkout_id: str) -> str:
        return payloads.mweb_redirect(mweb_url, f"{self.public_base}/pay/{checkout_id}/result")


def with_sandbox_defaults(settings: Settings, port: int) -> Settings:
    """Fill what sandbox mode may default: demo credentials and a loopback URL."""
    if not settings.is_sandbox:
        return settings
    w = settings.wechat
    wechat = replace(
        w,
        appid=w.appid or demo.OFFICIAL_ACCOUNT_APPID,
        app_secret=w.app_secret or demo.OFFICIAL_ACCOUNT_SECRET,
        mch_id=w.mch_id or demo.MCH_ID,
        api_key=w.api_key or demo.API_KEY,
        mini_program_appid=w.mini_program_appid or demo.MINI_PROGRAM_APPID,
        mini_program_secret=w.mini_program_secret or demo.MINI_PROGRAM_SECRET,
        app_appid=w.app_appid or demo.MOBILE_APP_APPID,
    )
    if not wechat.cert_path and not wechat.key_path:
        wechat = replace(
            wechat,
            cert_path=str(demo.CERT_PATH),
            key_path=str(demo.KEY_PATH),
        )
    server = settings.server
    if not server.public_url:
        server = replace(server, public_url=f"http://127.0.0.1:{port}")
    return replace(settings, wechat=wechat, server=server)


def simulator_config(settings: Settings) -> Any:
    """The simulated WeChat knows exactly the merchant this server is configured as.

    The demo merchant (sandbox's default) has its APIv3 credentials too, the
    TEST-ONLY ones ``python -m wxpay.simulator credentials`` prints, so a V3
    client can be tried against ``/_wechat/v3/`` as the README says."""
    from wxpay.simulator.config import SimApp, SimConfig, SimMerchant, SimV3

    w = settings.wechat
    apps = [SimApp(w.appid, w.app_secret, "official_account")]
    if w.mini_program_appid:
        apps.append(SimApp(w.mini_program_appid, w.mini_program_secret or demo.MINI_PROGRAM_SECRET, "mini_program"))
    if w.app_appid:
        apps.append(SimApp(w.app_appid, demo.MOBILE_APP_SECRET, "mobile_app"))
    v3 = SimV3.demo() if w.mch_id == demo.MCH_ID else None  # its own keys, apart from the V2 API key
    merchant = SimMerchant(w.mch_id, w.api_key, tuple(a.appid for a in apps), v3)
    return SimConfig(
        apps=tuple(apps), merchants=(merchant,), notify_time_scale=settings.simulator.notify_time_scale
    )


def store_indexes(settings: Settings) -> list[Index]:
    """The store's indexes with the configured audit retention (every process
    and command opening the store passes the same: on MongoDB the last one
    to open sets the TTL)."""
    return indexes(audit_retention_s=settings.audit.retention_days * 86400)


def configured_endpoints(w: Any) -> Endpoints:
    """WeChat's own base URLs, each overridable in ``[wechat]``."""
    defaults = Endpoints()
    return Endpoints(
        pay_base=w.pay_base or defaults.pay_base,
        open_base=w.open_base or defaults.open_base,
        api_base=w.api_base or defaults.api_base,
    )


async def build_services(
    settings: Settings,
    *,
    port: int,
    transport: Any = None,
    store: Store | None = None,
    now: Callable[[], datetime] = utcnow,
) -> Services:
    """Open the store and make every service; inside the running loop.

    ``store`` lets tests hand in a store (e.g. MongoDB on the emulator)."""
    settings = with_sandbox_defaults(settings, port)
    w = settings.wechat
    public_base = settings.server.public_url.rstrip("/")
    if store is None:
        store = open_store(
            settings.store.mongodb_uri, sqlite_path=settings.store.sqlite_path, database=settings.store.mongodb_database
        )
    await store.open(store_indexes(settings))
    holder = make_holder()
    leases = Leases(store)
    audit = Audit(store, now=now)

    simulator = None
    external = w.pay_base or w.api_base or w.open_base
    if settings.is_sandbox and not external:
        from wxpay.simulator.core import Simulator

        simulator = Simulator(simulator_config(settings))
        loopback = Endpoints.single(f"http://127.0.0.1:{port}{SIMULATOR_PREFIX}")
        endpoints = replace(loopback, open_base=f"{public_base}{SIMULATOR_PREFIX}")
    else:
        endpoints = configured_endpoints(w)

    call_stats = CallStats()
    observe = call_stats.observe  # every WeChat call feeds /status and /metrics

    owned_transport = None
    if transport is None:  # one client, one pool of kept-alive connections to WeChat
        transport = owned_transport = TornadoTransport()
    merchant = Merchant(w.mch_id, w.api_key, w.appid, w.sign_type, w.cert_path, w.key_path)
    pay = WxPayClient(merchant, transport=transport, endpoints=endpoints, observer=observe)
    official = OfficialAccountClient(w.appid, w.app_secret, transport=transport, endpoints=endpoints, observer=observe)
    oauth_client = OAuthClient(w.appid, w.app_secret, transport=transport, endpoints=endpoints, observer=observe)

    checkouts = CheckoutService(
        store,
        default_expiry_minutes=settings.checkout.default_expiry_minutes,
        min_expiry_minutes=settings.checkout.min_expiry_minutes,
        max_expiry_minutes=settings.checkout.max_expiry_minutes,
        require_https_return=settings.is_live,
        now=now,
    )
    orders = OrderBook(store, audit, now=now)
    tokens = TokenService(
        store, leases, official, appid=w.appid, holder=holder,
        refresh_ahead=timedelta(seconds=settings.tokens.refresh_ahead_s), now=now,
    )
    prepay = PrepayService(
        checkouts, orders, pay, leases, audit,
        apps=Apps(w.appid, w.mini_program_appid, w.app_appid),
        mch_id=w.mch_id, api_key=w.api_key, sign_type=w.sign_type,
        notify_url=w.notify_url or f"{public_base}/notify/pay",
        holder=holder, tokens=tokens,
        query_after=timedelta(seconds=settings.reconciler.query_after_s),
        max_orders=settings.checkout.max_orders,
        source_quota=SourceQuota(
            store, limit=settings.checkout.orders_per_ip,
            window=timedelta(seconds=settings.checkout.orders_per_ip_window_s), now=now,
        ),
        now=now,
    )
    limiter = NotifyLimiter(
        per_source_per_minute=settings.notify.refused_per_minute,
        total_per_minute=settings.notify.refused_per_minute_total,
    )
    notify = PaymentNotifyService(
        orders, pay, audit, api_key=w.api_key, max_bytes=settings.server.max_body_bytes, limiter=limiter, now=now
    )
    oauth = OAuthService(
        store, oauth_client, callback_url=f"{public_base}/oauth/callback", scope=w.oauth_scope,
        quota=SourceQuota(
            store, limit=settings.oauth.sign_ins_per_ip,
            window=timedelta(seconds=settings.oauth.sign_ins_per_ip_window_s), scope="sign_ins", now=now,
        ),
        now=now,
    )
    reconciler = Reconciler(
        store, orders, pay, leases, audit, holder=holder, interval=settings.reconciler.interval_s, now=now
    )
    refunds = RefundService(
        store, orders, checkouts, pay, audit,
        notify_url=w.refund_notify_url or f"{public_base}/notify/refund",
        query_after=timedelta(seconds=settings.reconciler.query_after_s), now=now,
    )
    reconciler.refunds = refunds
    refund_notify = RefundNotifyService(
        refunds, audit, api_key=w.api_key, mch_id=w.mch_id,
        appids=(w.appid, w.mini_program_appid, w.app_appid), max_bytes=settings.server.max_body_bytes,
        limiter=limiter,
    )
    hooks = settings.webhooks
    webhooks = Webhooks(
        store, orders, leases, url=hooks.url, secret=hooks.secret, holder=holder,
        poll_interval=hooks.poll_interval_s, retry_base=hooks.retry_base_s,
        max_attempts=hooks.max_attempts, timeout=hooks.timeout_s, now=now,
    )
    services = Services(
        settings=settings, store=store, audit=audit, checkouts=checkouts, orders=orders, prepay=prepay,
        payment_notify=notify, oauth=oauth, tokens=tokens, reconciler=reconciler, pay=pay, transport=owned_transport,
        jssdk=JssdkService(tokens, w.appid),
        public_base=public_base, simulator=simulator, now=now,
        refunds=refunds, refund_notify=refund_notify,
        closing=ClosingService(store, checkouts, orders, reconciler, audit, now=now),
        webhooks=webhooks, call_stats=call_stats, notify_limiter=limiter,
    )
    return services


def make_app(services: Services) -> tornado.web.Application:
    """The Tornado application; tests build it with this same factory."""
    settings = services.settings
    routes: list[Any] = []
    # Tornado tries routes in order: the hot ones (WeChat's notifies, the page's
    # polls and prepays) first. No two modules' patterns overlap.
    for module in (notify_routes, pay_routes, api_routes, after_payment_routes, openapi_routes, health_routes, shop_routes,
                   status_routes):
        routes.extend(module.routes())
    if services.simulator is not None:
        from wxpay.simulator.app import make_routes

        routes.extend(make_routes(services.simulator, SIMULATOR_PREFIX))
    trusted = tuple(ipaddress.ip_network(n, strict=False) for n in settings.server.trusted_proxies)
    log_budget = LineBudget("client error (4xx)", logger=access_log)
    app = tornado.web.Application(
        routes,
        services=services,
        inflight=Inflight(),
        version=VERSION,
        admin_lockout=admin_lockout(),
        api_lockout=merchant_api_lockout(),
        metrics=StatusMetrics(),  # its own CollectorRegistry, never the global one
        app_settings=settings,
        template_path=str(WEB / "templates"),
        static_path=str(WEB / "static"),
        static_url_prefix="/static/",
        cookie_secret=settings.server.cookie_secret,
        xsrf_cookies=settings.server.xsrf_cookies,
        xsrf_cookie_kwargs={"httponly": False, "samesite": "Lax", "secure": settings.is_live},
        secure_cookies=settings.is_live,
        api_tokens=tuple(settings.merchant_api.tokens),
        trusted_proxies=trusted,
        debug=settings.server.debug and settings.is_sandbox,
        autoreload=False,
        compress_response=True,
        default_handler_class=shop_routes.NotFoundHandler,
        # No query values (OAuth codes, sandbox secrets) in the access log; client
        # errors within a per-source line budget (shared with the listener's lines).
        log_function=AccessLog(log_budget),
        log_budget=log_budget,
    )
    app.add_transform(security_headers(hsts=settings.is_live))  # on every response, static files included
    return app


def http_server(app: tornado.web.Application, settings: Settings) -> EdgeHTTPServer:
    """The listener: timeouts and connection caps from ``[server]``.

    Trusted proxies carry everyone's traffic, so the per-source cap leaves
    them out; so does sandbox mode for loopback, where the in-process
    simulator's calls and every local client share 127.0.0.1."""
    s = settings.server
    limits = Limits(
        header_timeout_s=s.header_timeout_s, idle_timeout_s=s.idle_timeout_s, body_timeout_s=s.body_timeout_s,
        write_timeout_s=s.write_timeout_s, max_connections=fit_to_open_files(s.max_connections), max_connections_per_ip=s.max_connections_per_ip,
    )
    exempt = [ipaddress.ip_network(n, strict=False) for n in s.trusted_proxies]
    if settings.is_sandbox:
        exempt += LOOPBACK
    # The documented body limit is the real one (handlers/body_limit.py answers it in JSON).
    budget = app.settings["log_budget"]  # one budget for the access log, the body limit and Tornado's own lines
    return EdgeHTTPServer(
        BodyLimit(app, s.max_body_bytes, header_values(hsts=settings.is_live), log_budget=budget), limits=limits,
        exempt=exempt, log_budget=budget, max_body_size=server_max_body_size(s.max_body_bytes), xheaders=False,
    )


@dataclass
class Running:
    services: Services
    server: EdgeHTTPServer
    app: tornado.web.Application
    port: int
    stop_event: asyncio.Event
    tasks: list[asyncio.Task] = field(default_factory=list)

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
        if self.services.simulator is not None:
            await self.services.simulator.stop()
        if self.services.transport is not None:
            self.services.transport.close()
        if self.services.notify_limiter is not None:
            self.services.notify_limiter.flush()  # the last window's summary line
        self.app.settings["log_budget"].flush()  # likewise for the client-error lines held back
        await self.services.store.close()


async def start(
    settings: Settings,
    *,
    port: int | None = None,
    sockets: list | None = None,
    transport: Any = None,
    store: Store | None = None,
    run_reconciler: bool | None = None,
) -> Running:
    """Bind, build and start serving; used by main() and by the tests."""
    # A test hook (service/pauses.py): refused outside sandbox mode, so a
    # live process can neither pause nor be asked to.
    pauses.configure(os.environ.get("WXPAY_TEST_PAUSES"), sandbox=settings.is_sandbox)
    if sockets is None:
        sockets = tornado.netutil.bind_sockets(port if port is not None else settings.server.port, settings.server.host)
    bound_port = sockets[0].getsockname()[1]
    services = await build_services(settings, port=bound_port, transport=transport, store=store)
    app = make_app(services)
    server = http_server(app, services.settings)
    server.add_sockets(sockets)
    running = Running(services, server, app, bound_port, asyncio.Event())
    if services.simulator is not None:
        await services.simulator.start()
    reconcile = services.settings.reconciler.enabled if run_reconciler is None else run_reconciler
    if reconcile:
        running.tasks.append(asyncio.create_task(services.reconciler.run_forever(running.stop_event)))
    if services.webhooks is not None and services.webhooks.enabled:
        running.tasks.append(asyncio.create_task(services.webhooks.run_forever(running.stop_event)))
    return running


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
    s = running.services.settings
    lines = [
        f"wxpay-server {VERSION} — {s.mode} mode, store: {running.services.store.backend}",
        f"  listening on http://{s.server.host}:{running.port}   public URL: {running.services.public_base}",
    ]
    if s.is_sandbox:
        lines += [
            "  SANDBOX: WeChat is simulated in this process at " + SIMULATOR_PREFIX + " (no real money, no network).",
            f"  Try it:  open {running.services.public_base}/  (demo shop)",
            f"  Merchant API token: {merchant_token_hint(s)}",
            f"  Admin (/status): {admin_hint(s)}",
            f"  Demo merchant: mch_id={s.wechat.mch_id} appid={s.wechat.appid} "
            "(its V2 and TEST-ONLY V3 keys: python -m wxpay.simulator credentials)",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wxpay-server", description=__doc__.splitlines()[0],
        epilog="Subcommands: wxpay-server bills --date YYYY-MM-DD [--json] [--config FILE] [--port N]; "
        "wxpay-server openapi [--write-docs | --check]",
    )
    parser.add_argument("--config", help="TOML settings file (default: $WXPAY_CONFIG or none)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides server.port)")
    parser.add_argument("--host", help="address to bind (overrides server.host)")
    return parser.parse_args(argv)


def pay_client_for_cli(settings: Settings) -> WxPayClient:
    """A Pay client outside the server process: in sandbox, the running
    server's simulator (``public_url`` + ``/_wechat``) unless an external one
    is configured."""
    w = settings.wechat
    if settings.is_sandbox and not w.pay_base:
        endpoints = Endpoints.single(settings.server.public_url.rstrip("/") + SIMULATOR_PREFIX)
    else:
        endpoints = configured_endpoints(w)
    merchant = Merchant(w.mch_id, w.api_key, w.appid, w.sign_type, w.cert_path, w.key_path)
    return WxPayClient(merchant, endpoints=endpoints)


async def bills_main(argv: list[str]) -> int:
    """``wxpay-server bills --date YYYY-MM-DD [--json] [--config FILE]``."""
    from service.bills import reconcile_day
    from wxpay.errors import WxPayError

    parser = argparse.ArgumentParser(
        prog="wxpay-server bills",
        description="Compare WeChat's bill of one China-time day with the store. "
        "Exit 0: no differences; 1: differences; 2: could not run (no bill yet, WeChat or store unreachable).",
    )
    parser.add_argument("--date", required=True, help="the bill's day, YYYY-MM-DD (China time)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--config", help="TOML settings file (default: $WXPAY_CONFIG or none)")
    parser.add_argument("--port", type=int,
                        help="the running sandbox server's port, whose simulator serves the bill (overrides server.port)")
    try:
        args = parser.parse_args(argv)
        day = date.fromisoformat(args.date)
    except SystemExit as exc:
        return 2 if exc.code else 0
    except ValueError:
        print(f"wxpay-server bills: --date must be YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return 2
    try:
        overrides = {"server.port": args.port} if args.port is not None else {}
        settings = load_settings(args.config, overrides=overrides).check(public_credentials())
    except SettingsError as exc:
        print(f"wxpay-server bills: cannot run:\n{exc}", file=sys.stderr)
        return 2
    settings = with_sandbox_defaults(settings, settings.server.port)
    store = open_store(
        settings.store.mongodb_uri, sqlite_path=settings.store.sqlite_path, database=settings.store.mongodb_database
    )
    try:
        await store.open(store_indexes(settings))
        report = await reconcile_day(day, pay_client_for_cli(settings), store)
    except WxPayError as exc:
        print(f"wxpay-server bills: could not get the bill of {day}: {exc.message}", file=sys.stderr)
        return 2
    except Exception as exc:  # the store and the like
        print(f"wxpay-server bills: could not run: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    print(report.to_json() if args.json else report.text(), flush=True)
    return 0 if report.clean else 1


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


async def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bills"]:
        return await bills_main(argv[1:])
    if argv[:1] == ["openapi"]:
        return openapi_main(argv[1:])
    args = parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["server.port"] = args.port
    if args.host:
        overrides["server.host"] = args.host
    try:
        settings = load_settings(args.config, overrides=overrides).check(public_credentials())
    except SettingsError as exc:
        print(f"wxpay-server: cannot start:\n{exc}", file=sys.stderr)
        return 2
    if settings.store.backend == "sqlite":
        Path(settings.store.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        running = await start(settings)
    except pauses.PausesRefused as exc:
        print(f"wxpay-server: cannot start:\n{exc}", file=sys.stderr)
        return 2
    print(banner(running), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("wxpay-server: stopping (finishing in-flight requests)…", flush=True)
    await running.stop()
    return 0


def cli() -> None:
    log_lines.configure(os.environ.get("WXPAY_LOG_LEVEL", "INFO"))  # one record, one line: see edge/log_lines.py
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    cli()
