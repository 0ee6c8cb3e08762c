"""The services a process runs, built once (wiring/services.py) and handed to the handlers.

Typed, so a handler's ``self.services.refunds`` is a :class:`RefundService`
and a reader can follow every call from a route to the store. Nothing here
holds a key: WeChat's secrets stay in the gateway and the WeChat clients,
which the services reach only through their methods.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from store.base import Store
from wxpay.gateway import PayGateway
from wxpay.gateways import Gateways

from .audit import Audit
from .call_stats import CallStats
from .checkouts import CheckoutService
from .clock import utcnow
from .closing import Closing
from .console import Console
from .jssdk import JssdkService
from .lifecycle import Lifecycle
from .mini_program import MiniProgramLogins
from .notify_limiter import NotifyLimiter
from .notify_stats import NotifyStats
from .oauth import OAuthService
from .order_checks import OrderChecks
from .orders import OrderBook
from .outbox import Outbox
from .payment_notify import PaymentNotifyService
from .payments import Payments
from .prepay import PrepayService
from .reconciler import Reconciler
from .search import CheckoutSearch
from .timeline import Timelines
from .refund_notify import RefundNotifyService
from .refunds import RefundService
from .tokens import TokenService
from .trust import TrustKeeper
from .webhooks import Webhooks


@dataclass(frozen=True)
class Services:
    """Everything a handler may reach, built once per process."""

    store: Store
    audit: Audit
    gateway: PayGateway  # the configured API version's: orders, queries, closes, refunds, bills
    gateways: Gateways  # that one and, when its key is set, the other version's (its notifies)
    lifecycle: Lifecycle
    orders: OrderBook
    checkouts: CheckoutService
    payments: Payments
    order_checks: OrderChecks
    prepay: PrepayService
    payment_notify: PaymentNotifyService
    refunds: RefundService
    refund_notify: RefundNotifyService
    closing: Closing
    reconciler: Reconciler
    outbox: Outbox
    webhooks: Webhooks
    oauth: OAuthService
    tokens: TokenService
    trust: TrustKeeper  # what WeChat rotates, kept in the store (APIv3 platform certificates; nothing for APIv2)
    jssdk: JssdkService
    mini_program: MiniProgramLogins  # wx.login codes traded for openids (no client when none is configured)
    call_stats: CallStats  # fed by the WeChat clients' observer
    notify_limiter: NotifyLimiter  # what unverified notifies may cost, per source
    notify_stats: NotifyStats  # every notify's verdict since start (both notify endpoints count into it)
    console: Console  # the operator's actions in /status (through the use cases above, each audited)
    search: CheckoutSearch  # the console's search box
    timelines: Timelines  # a checkout's whole story, for the console
    public_base: str
    mode: str  # "sandbox" | "live"
    reconciler_enabled: bool
    reconciler_interval_s: float
    sandbox_bridge: str | None = None  # where the in-process simulated WeChat is mounted, when it is
    now: Callable[[], datetime] = utcnow
    started_at: datetime = field(default_factory=utcnow)

    def pay_url(self, checkout_id: str) -> str:
        return f"{self.public_base}/pay/{checkout_id}"

    def h5_with_return(self, h5_url: str, checkout_id: str) -> str:
        """The H5 cashier URL that brings the shopper back to the checkout's result page."""
        return self.gateway.h5_return_url(h5_url, f"{self.public_base}/pay/{checkout_id}/result")
