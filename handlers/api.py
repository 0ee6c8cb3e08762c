"""The merchant API: create, read and list checkouts; app/mini-program payloads."""
from __future__ import annotations

import ipaddress
from typing import Any

from service.errors import InvalidInput

from .base import ApiHandler


class CheckoutsHandler(ApiHandler):
    async def post(self) -> None:
        key = self.request.headers.get("Idempotency-Key")
        checkout, created = await self.services.checkouts.create(self.json_body(), idempotency_key=key)
        self.write_json(self._view(checkout), status=201 if created else 200)

    async def get(self) -> None:
        limit = self._int_arg("limit", 20)
        offset = self._int_arg("offset", 0)
        items = await self.services.checkouts.list(
            status=self.get_query_argument("status", None),
            merchant_reference=self.get_query_argument("merchant_reference", None),
            limit=limit,
            offset=offset,
        )
        self.write_json({"items": [self._view(c) for c in items], "limit": limit, "offset": offset})

    def _int_arg(self, name: str, default: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        if not raw.isdigit() or len(raw) > 6:
            raise InvalidInput(f"invalid_{name}", f"{name} must be a non-negative integer")
        return int(raw)

    def _view(self, checkout: Any) -> dict[str, Any]:
        out = checkout.public()
        out["pay_url"] = self.services.pay_url(checkout.id)
        return out


class CheckoutHandler(CheckoutsHandler):
    async def get(self, checkout_id: str) -> None:  # type: ignore[override]
        checkout = await self.services.checkouts.get(checkout_id)
        view = self._view(checkout)
        view["orders"] = [o.public() for o in await self.services.orders.for_checkout(checkout.id)]
        view["refunds"] = [r.public() for r in await self.services.refunds.for_checkout(checkout.id)]
        self.write_json(view)

    async def post(self, checkout_id: str) -> None:  # type: ignore[override]
        self.send_error(405)


class CheckoutPaymentHandler(ApiHandler):
    """For Mini Program and App backends: a ready-to-use client payload."""

    async def post(self, checkout_id: str) -> None:
        data = self.json_body()
        if not isinstance(data, dict):
            raise InvalidInput("invalid_body", "The request body must be a JSON object")
        client = data.get("client")
        client_ip = data.get("client_ip") or self.client_ip()
        try:
            ipaddress.ip_address(client_ip)
        except (TypeError, ValueError):
            raise InvalidInput("invalid_client_ip", "client_ip must be the shopper's IPv4 or IPv6 address") from None
        if client == "mini_program":
            openid = data.get("openid")
            if not isinstance(openid, str) or not 1 <= len(openid) <= 128:
                raise InvalidInput("openid_required", "openid (the shopper's Mini Program openid) is required")
            result = await self.services.prepay.prepay(
                checkout_id, trade_type="JSAPI", client="mini_program", openid=openid, client_ip=client_ip
            )
        elif client == "app":
            result = await self.services.prepay.prepay(checkout_id, trade_type="APP", client_ip=client_ip)
        else:
            raise InvalidInput("invalid_client", "client must be 'mini_program' or 'app'")
        self.write_json(result.public())


class WxConfigHandler(ApiHandler):
    """A signed ``wx.config`` for one of the merchant's own pages (JSSDK)."""

    async def get(self) -> None:
        url = self.get_query_argument("url", "")
        apis = [a for a in self.get_query_argument("jsApiList", "chooseWXPay").split(",") if a]
        config = await self.services.jssdk.config(url, apis)
        self.write_json(config)


def routes() -> list[tuple[str, type, dict]]:
    cid = r"(co_[0-9a-f]{24}|[^/]+)"
    return [
        (r"/api/checkouts", CheckoutsHandler, {}),
        (rf"/api/checkouts/{cid}", CheckoutHandler, {}),
        (rf"/api/checkouts/{cid}/payment", CheckoutPaymentHandler, {}),
        (r"/api/wx-config", WxConfigHandler, {}),
    ]
