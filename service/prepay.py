"""From a stored checkout to something a shopper can pay with.

The amount always comes from the checkout, never from the caller. A still
valid prepay_id for the same checkout, trade type and shopper is reused, and
concurrent requests for one such slot make one unifiedorder call: an
in-process lock per slot, and a store lease across processes.

A new WeChat order is bounded twice before WeChat is asked: per checkout
(``CheckoutService.reserve_order``: at most ``max_orders``, counted in the same
compare-and-set that finds the checkout open and not being closed), and per
source (``SourceQuota``: a client IP across checkouts). After WeChat answers,
the checkout is read again: if a close or a payment came meanwhile, the new
order is handed to the reconciler to close and its prepay_id never leaves.

A checkout read with no order yet (``orders_made`` 0, the first click on a
pay link) skips reading its orders, before and under the lease: the
reserving compare-and-set requires the count still at 0, which proves none
began since; if one did, the orders are read as for any other checkout.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from store.leases import HEARTBEAT_TTL, Leases
from wxpay import payloads
from wxpay.gateway import H5Site, OrderRequest, PayGateway
from wxpay.payloads import AppPayload, BridgePayload, ChooseWXPayPayload, MiniProgramPayload, WxConfig
from wxpay.errors import (
    IdentityMismatchError,
    OpenidMismatchError,
    OrderClosedError,
    OrderPaidError,
    OutTradeNoUsedError,
    ProtocolError,
    SignatureError,
    TransportError,
    WxPayError,
)

from .audit import Audit
from .checkouts import CheckoutService
from .clock import utcnow
from .errors import Conflict, InvalidInput, UpstreamError
from .guard import store_guard
from .keyed_locks import KeyedLocks
from .lifecycle import Lifecycle
from .models import FAILED, OPEN, PAID, PAID_STATUSES, PREPAID, Checkout, Order
from .order_text import order_description
from .orders import OrderBook, new_out_trade_no
from .pauses import pause
from .source_quota import SourceQuota
from .tokens import TokenService
from .validation import OPENID, ip_address_text, json_object, matches

log = logging.getLogger("wxpay_server.prepay")

PREPAY_LIFETIME = timedelta(hours=2)
MWEB_LIFETIME = timedelta(minutes=5)
REUSE_MARGIN = timedelta(minutes=1)  # don't hand out a prepay_id about to expire
PREPAY_LEASE_TTL = HEARTBEAT_TTL  # renewed every 2 s while unifiedorder runs
PREPAY_WAIT_S = 10.0  # how long a concurrent request waits for the leader's prepay_id
PAYABLE_MARGIN = timedelta(minutes=1)  # no new order for a checkout about to expire
MAX_ORDERS = 10  # WeChat orders per checkout (checkout.max_orders)


@dataclass(frozen=True)
class Apps:
    """The appids bound to the merchant, per kind of client."""

    official_account: str
    mini_program: str | None = None
    mobile_app: str | None = None


@dataclass
class PrepayResult:
    """What the page or the app gets: typed payloads, signed by the gateway."""

    out_trade_no: str
    trade_type: str
    expires_at: datetime
    reused: bool
    bridge: BridgePayload | None = None             # WeixinJSBridge getBrandWCPayRequest
    choose_wx_pay: ChooseWXPayPayload | None = None  # wx.chooseWXPay
    wx_config: WxConfig | None = None               # wx.config for the JSSDK pair
    request_payment: MiniProgramPayload | None = None  # Mini Program wx.requestPayment
    app: AppPayload | None = None                   # App SDK PayReq
    code_url: str | None = None
    mweb_url: str | None = None

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value is not None:
                out[name] = value.to_dict() if hasattr(value, "to_dict") else value
        out["expires_at"] = self.expires_at.isoformat()
        return out


OPENID_REJECTED = (
    "WeChat refused the openid: it is not a user of this app (made up, or another app's, such as the Official "
    "Account's). For a Mini Program, get it from the shopper's wx.login code with POST /api/mini-program/sessions"
)

PAYMENT_FIELDS = frozenset({"client", "openid", "client_ip"})
PAYMENT_CLIENTS = {"mini_program": "JSAPI", "app": "APP"}  # client -> trade_type


@dataclass(frozen=True)
class PaymentRequest:
    """A Mini Program or App backend's request for a client payload."""

    client: str
    trade_type: str
    client_ip: str
    openid: str | None = None


def payment_request(data: Any, *, peer_ip: str) -> PaymentRequest:
    """Check ``POST /api/checkouts/{id}/payment``; ``peer_ip`` when no ``client_ip`` is given."""
    data = json_object(data, PAYMENT_FIELDS)
    raw_ip = data.get("client_ip")
    client_ip = ip_address_text(peer_ip if raw_ip is None else raw_ip)
    if client_ip is None:
        raise InvalidInput("invalid_client_ip", "client_ip must be the shopper's IPv4 or IPv6 address, as text")
    client = data.get("client")
    if not isinstance(client, str) or client not in PAYMENT_CLIENTS:
        raise InvalidInput("invalid_client", f"client must be one of {', '.join(PAYMENT_CLIENTS)}")
    openid = data.get("openid")
    if client == "mini_program":
        if not matches(OPENID, openid):
            raise InvalidInput(
                "openid_required", "openid (the shopper's Mini Program openid: 1-128 of A-Z a-z 0-9 _ -) is required"
            )
    elif openid is not None:
        raise InvalidInput("invalid_client", "openid is only for client 'mini_program'")
    return PaymentRequest(client, PAYMENT_CLIENTS[client], client_ip, openid)


class PrepayService:
    def __init__(
        self,
        checkouts: CheckoutService,
        orders: OrderBook,
        gateway: PayGateway,
        lifecycle: Lifecycle,
        leases: Leases,
        audit: Audit,
        *,
        apps: Apps,
        notify_url: str,
        holder: str,
        tokens: TokenService | None = None,
        query_after: timedelta = timedelta(seconds=60),
        max_orders: int = MAX_ORDERS,
        source_quota: SourceQuota | None = None,
        shop_name: str = "",
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.checkouts = checkouts
        self.orders = orders
        self.gateway = gateway
        self.lifecycle = lifecycle
        self.leases = leases
        self.audit = audit
        self.apps = apps
        self.notify_url = notify_url
        self.holder = holder
        self.tokens = tokens
        self.query_after = query_after
        self.max_orders = max_orders
        self.source_quota = source_quota
        self.shop_name = shop_name  # what WeChat shows the shopper: service/order_text.py
        self.now = now
        self._locks = KeyedLocks()

    async def prepay(
        self,
        checkout_id: str,
        *,
        trade_type: str,
        client_ip: str,
        openid: str | None = None,
        client: str = "official_account",
        page_url: str | None = None,
        wap_url: str | None = None,
    ) -> PrepayResult:
        """Get (or reuse) a WeChat order for ``checkout_id`` and build its payloads.

        ``client`` picks the appid for JSAPI: the Official Account page or a
        Mini Program; ``page_url`` asks for a signed ``wx.config`` too.
        """
        appid = self._appid_for(trade_type, client)
        if trade_type == "JSAPI" and not openid:
            raise InvalidInput("openid_required", "Paying inside WeChat needs the shopper's openid (sign in first)")
        checkout = await self.checkouts.get(checkout_id)
        self._check_payable(checkout)
        await pause("prepay.after_checkout_check")
        slot = self._slot(checkout.id, trade_type, appid, openid, client_ip if trade_type == "MWEB" else None)
        async with self._locks.hold(slot):
            order, reused = await self._order_for_slot(checkout, slot, trade_type, appid, openid, client_ip, wap_url)
        return await self._payloads(order, reused, client, page_url)

    # -- choosing the order ---------------------------------------------------

    def _appid_for(self, trade_type: str, client: str) -> str:
        if trade_type not in ("JSAPI", "NATIVE", "MWEB", "APP"):
            raise InvalidInput("invalid_trade_type", "trade_type must be JSAPI, NATIVE, MWEB or APP")
        if trade_type == "APP":
            if not self.apps.mobile_app:
                raise InvalidInput("app_not_configured", "No mobile app appid is configured (wechat.app_appid)")
            return self.apps.mobile_app
        if trade_type == "JSAPI" and client == "mini_program":
            if not self.apps.mini_program:
                raise InvalidInput("mini_program_not_configured", "No Mini Program appid is configured (wechat.mini_program_appid)")
            return self.apps.mini_program
        if client not in ("official_account", "mini_program"):
            raise InvalidInput("invalid_client", "client must be official_account or mini_program")
        return self.apps.official_account

    def _check_payable(self, checkout: Checkout) -> None:
        if checkout.status in PAID_STATUSES:
            raise Conflict("checkout_paid", "This checkout is already paid")
        if checkout.status != OPEN or checkout.close_requested_at is not None:
            raise Conflict("checkout_closed", "This checkout is closed and can no longer be paid")
        if checkout.expires_at <= self.now() + PAYABLE_MARGIN:
            raise Conflict("checkout_expired", "This checkout has expired; ask the merchant for a new payment link")

    async def _reserve_first(self, checkout: Checkout, client_ip: str) -> bool:
        """The first order of a checkout read with none (``orders_made`` 0):
        count it against its source, and against its checkout only if the
        count is still 0. ``True`` proves that no order of the checkout began
        since it was read, so there is none to reuse or retire and nothing to
        read (two statements fewer than :meth:`_reserve` after reading the
        orders). ``False``: the caller reads the orders and reserves as usual,
        without counting the source again."""
        await self._count_source(client_ip)
        reserved = await self.checkouts.reserve_order(
            checkout.id, cap=self.max_orders, payable_after=self.now() + PAYABLE_MARGIN, made=0
        )
        return reserved is not None

    async def _count_source(self, client_ip: str) -> None:
        if self.source_quota is not None:
            await self.source_quota.take(client_ip)

    async def _reserve(self, checkout: Checkout, client_ip: str, *, source_counted: bool = False) -> None:
        """Count the order about to be made against its source and its
        checkout, or refuse (nothing is stored, WeChat is not asked)."""
        if not source_counted:
            await self._count_source(client_ip)
        reserved = await self.checkouts.reserve_order(
            checkout.id, cap=self.max_orders, payable_after=self.now() + PAYABLE_MARGIN
        )
        if reserved is not None:
            return
        current = await self.checkouts.get(checkout.id)
        self._check_payable(current)  # closed, being closed, paid or expired since it was read
        raise Conflict(
            "too_many_orders",
            f"This payment link has started {self.max_orders} WeChat Pay orders, the most one checkout may; "
            "ask the merchant for a new payment link",
            max_orders=self.max_orders,
        )

    async def _still_payable(self, order: Order) -> None:
        """After WeChat answered: a close or a payment that began meanwhile
        wins. The new order goes to the reconciler to be closed (as soon as
        WeChat allows) and its prepay_id is not handed out."""
        checkout = await self.checkouts.get(order.checkout_id)
        if checkout.status == OPEN and checkout.close_requested_at is None:
            return
        await self.lifecycle.touch_order(order, close_requested=True, next_check_at=self.now())
        if checkout.status in PAID_STATUSES:
            raise Conflict("checkout_paid", "This checkout was paid meanwhile")
        raise Conflict("checkout_closed", "This checkout was closed meanwhile and can no longer be paid")

    @staticmethod
    def _slot(checkout_id: str, trade_type: str, appid: str, openid: str | None, ip: str | None) -> str:
        who = hashlib.sha256(f"{openid or ''}|{ip or ''}".encode()).hexdigest()[:16]
        return f"{checkout_id}:{trade_type}:{appid}:{who}"

    def _reusable(self, order: Order, slot: str) -> bool:
        return (
            order.state == PREPAID
            and self.gateway.signs(order.sign_type)  # an order of another API version is not signed here
            and not order.close_requested
            and order.extra.get("slot") == slot
            and order.prepay_expires_at is not None
            and order.prepay_expires_at - REUSE_MARGIN > self.now()
        )

    async def _order_for_slot(self, checkout, slot, trade_type, appid, openid, client_ip, wap_url) -> tuple[Order, bool]:
        """Reuse the slot's prepay, or become the one process that asks WeChat.

        The slot's lease is short and renewed while the leader works, so a
        leader killed mid-unifiedorder frees the slot within seconds (with a
        fixed 30 s lease, shoppers were told "being prepared" for 30 s after
        a crash); waiting requests take the lease over once it lapses."""
        name = f"prepay:{slot}"
        waited = 0.0
        first = checkout.orders_made == 0  # read with no order yet: nothing to reuse, confirmed by the count
        while True:
            if not first:
                for order in reversed(await self.orders.for_checkout(checkout.id)):
                    if self._reusable(order, slot):
                        return order, True
            with store_guard():
                async with self.leases.hold(name, self.holder, PREPAY_LEASE_TTL) as lease:
                    if lease is not None:
                        new_order = (checkout, slot, trade_type, appid, openid, client_ip, wap_url)
                        if first and await self._reserve_first(checkout, client_ip):
                            return await self._unified_order(*new_order), False
                        # An order began meanwhile (its source already counted), or another
                        # process may have finished while we took the lease: read them.
                        siblings = await self.orders.for_checkout(checkout.id)
                        for order in reversed(siblings):
                            if self._reusable(order, slot):
                                return order, True
                        await self._retire_unsignable(siblings, slot)
                        await self._reserve(checkout, client_ip, source_counted=first)
                        return await self._unified_order(*new_order), False
            first = False
            if waited >= PREPAY_WAIT_S:
                raise Conflict("prepay_in_progress", "A payment for this checkout is being prepared; retry in a moment")
            await asyncio.sleep(0.05)
            waited += 0.05

    async def _retire_unsignable(self, siblings: list[Order], slot: str) -> None:
        """After a move between API versions, the slot's unpaid order of the other
        version cannot be signed here (APIv3 signs only RSA orders, APIv2 only its
        own): a new order replaces it, and the old one goes to the reconciler,
        which asks WeChat first (the shopper may have paid it: confirmed) and
        otherwise closes it, so a page still holding its payload cannot pay twice."""
        for order in siblings:
            if (order.state == PREPAID and not order.close_requested and order.extra.get("slot") == slot
                    and not self.gateway.signs(order.sign_type)):
                log.info("order %s (sign type %s) cannot be signed by the %s gateway: replaced, and to be closed",
                         order.out_trade_no, order.sign_type, self.gateway.api_version)
                await self.lifecycle.touch_order(order, close_requested=True, next_check_at=self.now())

    async def _unified_order(self, checkout, slot, trade_type, appid, openid, client_ip, wap_url) -> Order:
        """The order, reserved by the caller: stored, then asked of WeChat."""
        now = self.now()
        order = Order(
            out_trade_no=new_out_trade_no(now),
            checkout_id=checkout.id,
            trade_type=trade_type,
            appid=appid,
            mch_id=self.gateway.mch_id,
            sign_type=self.gateway.sign_type,
            total_fee=checkout.amount_fen,
            created_at=now,
            openid=openid,
            client_ip=client_ip,
            next_check_at=now + self.query_after,
            extra={"slot": slot},
        )
        await self.orders.insert(order)
        await pause("prepay.before_unifiedorder")
        request = OrderRequest(
            out_trade_no=order.out_trade_no,
            trade_type=trade_type,
            appid=appid,
            amount_fen=checkout.amount_fen,
            description=order_description(self.shop_name, checkout.description),
            notify_url=self.notify_url,
            client_ip=client_ip,
            expires_at=checkout.expires_at,
            openid=openid if trade_type == "JSAPI" else None,
            product_id=checkout.id if trade_type == "NATIVE" else None,
            attach=checkout.attach,
            h5_site=H5Site(wap_url or self.notify_url, self.shop_name or checkout.description)
            if trade_type == "MWEB" else None,
        )
        try:
            placed = await self.gateway.place_order(request)
        except (TransportError, ProtocolError, SignatureError, IdentityMismatchError) as exc:
            # Outcome unknown (no answer, or one we cannot trust): WeChat may
            # hold the order, so leave it "created"; the reconciler asks and closes.
            raise UpstreamError(exc.code, "WeChat did not answer usably; please try again") from exc
        except (OrderPaidError,) as exc:
            await self.lifecycle.touch_order(order, next_check_at=self.now())
            raise Conflict("checkout_paid", "WeChat says this order is already paid; confirming") from exc
        except (OrderClosedError, OutTradeNoUsedError) as exc:
            await self.lifecycle.move_order(order, FAILED, failure=exc.code, next_check_at=None)
            raise UpstreamError(exc.code, exc.message) from exc
        except OpenidMismatchError as exc:  # the caller's openid, not WeChat failing: theirs to fix
            await self.lifecycle.move_order(order, FAILED, failure=exc.code, next_check_at=None)
            raise InvalidInput("openid_rejected", OPENID_REJECTED) from exc
        except WxPayError as exc:
            await self.lifecycle.move_order(order, FAILED, failure=exc.code, next_check_at=None)
            raise UpstreamError(exc.code, exc.message) from exc
        await pause("prepay.after_unifiedorder")
        lifetime = MWEB_LIFETIME if trade_type == "MWEB" else PREPAY_LIFETIME
        moved = await self.lifecycle.move_order(
            order,
            PREPAID,
            prepay_id=placed.prepay_id,
            prepay_expires_at=min(now + lifetime, checkout.expires_at),
            code_url=placed.code_url,
            mweb_url=placed.h5_url,
        )
        if moved is None:  # a notify raced ahead of this reply: the order is paid already
            current = await self.orders.require(order.out_trade_no)
            raise Conflict("checkout_paid" if current.state == PAID else "order_state", f"Order is {current.state}")
        await self._still_payable(moved)
        return moved

    # -- payloads -------------------------------------------------------------

    async def _payloads(self, order: Order, reused: bool, client: str, page_url: str | None) -> PrepayResult:
        out = PrepayResult(
            out_trade_no=order.out_trade_no,
            trade_type=order.trade_type,
            expires_at=order.prepay_expires_at or self.now(),
            reused=reused,
        )
        prepay_id = order.prepay_id or ""
        if order.trade_type == "JSAPI" and client == "mini_program":
            out.request_payment = self.gateway.mini_program_payload(
                appid=order.appid, prepay_id=prepay_id, sign_type=order.sign_type
            )
        elif order.trade_type == "JSAPI":
            pair = self.gateway.jsapi_payloads(appid=order.appid, prepay_id=prepay_id, sign_type=order.sign_type)
            out.bridge, out.choose_wx_pay = pair.bridge, pair.choose_wx_pay
            if page_url and self.tokens is not None:
                ticket = await self.tokens.jsapi_ticket()
                out.wx_config = payloads.wx_config(order.appid, ticket, page_url)
        elif order.trade_type == "APP":
            out.app = self.gateway.app_payload(appid=order.appid, prepay_id=prepay_id, sign_type=order.sign_type)
        elif order.trade_type == "NATIVE":
            out.code_url = order.code_url
        elif order.trade_type == "MWEB":
            out.mweb_url = order.mweb_url
        return out
