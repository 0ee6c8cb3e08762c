"""The services container, built once per process in one function.

Order matters only where one service needs another: the WeChat side first
(the gateways, wiring/gateways.py, and the Official Account clients, the
only holders of keys),
then the store's owners (lifecycle, outbox), then each use case given what
it uses in its constructor. Nothing registers itself with anything and
nothing is assigned after construction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from config import Settings
from edge.outbound import TornadoPoster
from service.audit import Audit
from service.call_stats import CallStats
from service.checkouts import CheckoutService
from service.clock import utcnow
from service.closing import Closing
from service.console import Console
from service.container import Services
from service.jssdk import JssdkService
from service.lifecycle import Lifecycle
from service.mini_program import MiniProgramLogins
from service.notify_limiter import NotifyLimiter
from service.notify_stats import NotifyStats
from service.oauth import OAuthService
from service.order_checks import OrderChecks
from service.orders import OrderBook
from service.outbox import Outbox
from service.payment_notify import PaymentNotifyService
from service.payments import Payments
from service.prepay import Apps, PrepayService
from service.reconciler import Reconciler
from service.refund_notify import RefundNotifyService
from service.refunds import RefundService
from service.search import CheckoutSearch
from service.source_quota import SourceQuota
from service.timeline import Timelines
from service.tokens import TokenService
from service.trust import TrustKeeper
from service.webhooks import Webhooks
from store.base import Index, Store
from store.leases import Leases, make_holder
from store.open import indexes, open_store
from wxpay.endpoints import Endpoints
from wxpay.gateway import PayGateway
from wxpay.mini_program import MiniProgramClient
from wxpay.oauth import OAuthClient
from wxpay.official import OfficialAccountClient
from wxpay.transport import TornadoTransport, Transport

from . import sandbox
from .gateways import gateways as gateway_set


@dataclass
class Built:
    """A process's parts: what ``server.py`` starts and stops."""

    settings: Settings  # as used (sandbox defaults filled in)
    services: Services
    sandbox: sandbox.Mounted | None = None
    transport: TornadoTransport | None = None  # the WeChat connections, when we made them


def store_indexes(settings: Settings) -> list[Index]:
    """The store's indexes with the configured audit retention (every process
    and command opening the store passes the same: on MongoDB the last one
    to open sets the TTL)."""
    return indexes(audit_retention_s=settings.audit.retention_days * 86400)


def open_configured_store(settings: Settings) -> Store:
    s = settings.store
    return open_store(s.mongodb_uri, sqlite_path=s.sqlite_path, database=s.mongodb_database)


def configured_endpoints(settings: Settings) -> Endpoints:
    """WeChat's own base URLs, each overridable in ``[wechat]``."""
    w, defaults = settings.wechat, Endpoints()
    return Endpoints(
        pay_base=w.pay_base or defaults.pay_base,
        open_base=w.open_base or defaults.open_base,
        api_base=w.api_base or defaults.api_base,
    )


def cli_gateway(settings: Settings) -> PayGateway:
    """The gateway of a command run outside the server (``wxpay-server bills``): the configured version's."""
    endpoints = sandbox.cli_endpoints(settings) or configured_endpoints(settings)
    return gateway_set(settings, endpoints=endpoints).primary


async def build(
    settings: Settings,
    *,
    port: int,
    transport: Transport | None = None,
    store: Store | None = None,
    now: Callable[[], datetime] = utcnow,
) -> Built:
    """Open the store and make every service; inside the running loop.

    ``store`` lets tests hand in a store (e.g. MongoDB on the emulator)."""
    settings = sandbox.with_sandbox_defaults(settings, port)
    w = settings.wechat
    public_base = settings.server.public_url.rstrip("/")
    mounted = sandbox.mount(settings, port=port, public_base=public_base) if sandbox.in_process(settings) else None
    endpoints = mounted.endpoints if mounted is not None else configured_endpoints(settings)
    call_stats = CallStats()
    observe = call_stats.observe  # every WeChat call feeds /status and /metrics
    # WeChat: the only objects holding the merchant's keys and the AppSecret. The
    # configured API version's gateway does everything; the other version's, when
    # its key is set, reads that version's notifies (orders placed before a move).
    # Built first: unusable keys are refused (SettingsError) before anything opens.
    owned = None
    if transport is None:  # one pool of kept-alive connections to WeChat
        transport = owned = TornadoTransport()
    try:
        gateways = gateway_set(settings, endpoints=endpoints, transport=transport, observer=observe)
    except Exception:
        if owned is not None:
            owned.close()
        raise
    gateway = gateways.primary

    if store is None:
        store = open_configured_store(settings)
    await store.open(store_indexes(settings))

    official = OfficialAccountClient(w.appid, w.app_secret, transport=transport, endpoints=endpoints, observer=observe)
    oauth_client = OAuthClient(w.appid, w.app_secret, transport=transport, endpoints=endpoints, observer=observe)
    mini_program_client = (
        MiniProgramClient(w.mini_program_appid, w.mini_program_secret, transport=transport, endpoints=endpoints,
                          observer=observe)
        if w.mini_program_appid and w.mini_program_secret else None
    )

    holder = make_holder()
    leases = Leases(store)
    audit = Audit(store, now=now)
    hooks = settings.webhooks
    webhooks_on = bool(hooks.url and hooks.secret)
    lifecycle = Lifecycle(store, announce=webhooks_on, now=now)
    outbox = Outbox(store, lifecycle, enabled=webhooks_on, now=now)
    orders = OrderBook(store)
    query_after = timedelta(seconds=settings.reconciler.query_after_s)
    checkouts = CheckoutService(
        store, lifecycle, orders,
        default_expiry_minutes=settings.checkout.default_expiry_minutes,
        min_expiry_minutes=settings.checkout.min_expiry_minutes,
        max_expiry_minutes=settings.checkout.max_expiry_minutes,
        require_https_return=settings.is_live,
        now=now,
    )
    tokens = TokenService(
        store, leases, official, appid=w.appid, holder=holder,
        refresh_ahead=timedelta(seconds=settings.tokens.refresh_ahead_s), now=now,
    )
    refunds = RefundService(
        store, orders, checkouts, gateway, lifecycle, outbox, audit,
        notify_url=w.refund_notify_url or f"{public_base}/notify/refund", query_after=query_after, now=now,
    )
    payments = Payments(gateway, orders, lifecycle, outbox, audit, double_payments=refunds, now=now)
    order_checks = OrderChecks(gateway, payments, lifecycle, audit, now=now)
    closing = Closing(checkouts, orders, order_checks, lifecycle, outbox, audit, now=now)
    prepay = PrepayService(
        checkouts, orders, gateway, lifecycle, leases, audit,
        apps=Apps(w.appid, w.mini_program_appid, w.app_appid),
        notify_url=w.notify_url or f"{public_base}/notify/pay",
        holder=holder, tokens=tokens, query_after=query_after,
        max_orders=settings.checkout.max_orders,
        source_quota=SourceQuota(
            store, limit=settings.checkout.orders_per_ip,
            window=timedelta(seconds=settings.checkout.orders_per_ip_window_s), now=now,
        ),
        shop_name=settings.shop.name,
        now=now,
    )
    limiter = NotifyLimiter(
        per_source_per_minute=settings.notify.refused_per_minute,
        total_per_minute=settings.notify.refused_per_minute_total,
    )
    notify_stats = NotifyStats()
    max_bytes = settings.server.max_body_bytes
    payment_notify = PaymentNotifyService(
        orders, payments, gateways, audit, max_bytes=max_bytes, limiter=limiter, stats=notify_stats,
        confirm_timeout=settings.notify.confirm_timeout_s,
    )
    refund_notify = RefundNotifyService(
        refunds, gateways, audit, max_bytes=max_bytes, limiter=limiter, stats=notify_stats,
    )
    # Platform certificates are APIv3's (primary, or reading notifies beside APIv2).
    trusted = gateways.get("v3") or gateway
    reconciler = Reconciler(
        store, orders, order_checks, payments, closing, refunds, leases,
        holder=holder, interval=settings.reconciler.interval_s, now=now,
    )
    webhooks = Webhooks(
        store, outbox, leases, TornadoPoster(), url=hooks.url, secret=hooks.secret, holder=holder,
        poll_interval=hooks.poll_interval_s, retry_base=hooks.retry_base_s,
        max_attempts=hooks.max_attempts, timeout=hooks.timeout_s, now=now,
    )
    oauth = OAuthService(
        store, oauth_client, callback_url=f"{public_base}/oauth/callback", scope=w.oauth_scope,
        quota=SourceQuota(
            store, limit=settings.oauth.sign_ins_per_ip,
            window=timedelta(seconds=settings.oauth.sign_ins_per_ip_window_s), scope="sign_ins", now=now,
        ),
        now=now,
    )
    services = Services(
        store=store, audit=audit, gateway=gateway, gateways=gateways, lifecycle=lifecycle, orders=orders, checkouts=checkouts,
        payments=payments, order_checks=order_checks, prepay=prepay, payment_notify=payment_notify,
        refunds=refunds, refund_notify=refund_notify, closing=closing, reconciler=reconciler, outbox=outbox,
        webhooks=webhooks, oauth=oauth, tokens=tokens, trust=TrustKeeper(store, leases, trusted, holder=holder, now=now),
        jssdk=JssdkService(tokens, w.appid), mini_program=MiniProgramLogins(mini_program_client),
        call_stats=call_stats, notify_limiter=limiter, notify_stats=notify_stats,
        console=Console(audit, refunds, closing, webhooks, now=now), search=CheckoutSearch(store),
        timelines=Timelines(store, checkouts, orders, refunds, audit),
        public_base=public_base, mode=settings.mode,
        reconciler_enabled=settings.reconciler.enabled, reconciler_interval_s=settings.reconciler.interval_s,
        sandbox_bridge=sandbox.PREFIX if mounted is not None else None, now=now,
    )
    return Built(settings, services, mounted, owned)
