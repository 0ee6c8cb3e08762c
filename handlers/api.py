"""The merchant API: create, read and list checkouts; app/mini-program payloads."""
from __future__ import annotations

from typing import Any

from service.checkouts import LIST_LIMIT_MAX, LIST_OFFSET_MAX
from service.prepay import payment_request
from service.validation import query_int

from .base import ApiHandler


class CheckoutView:
    """The merchant's view of a checkout: its public fields and its pay URL."""

    def _view(self, checkout: Any) -> dict[str, Any]:
        out = checkout.public()
        out["pay_url"] = self.services.pay_url(checkout.id)  # type: ignore[attr-defined]
        return out


class CheckoutsHandler(CheckoutView, ApiHandler):
    query_params = {"GET": frozenset({"status", "merchant_reference", "limit", "offset"})}

    async def post(self) -> None:
        key = self.request.headers.get("Idempotency-Key")
        checkout, created = await self.services.checkouts.create(self.json_body(), idempotency_key=key)
        self.write_json(self._view(checkout), status=201 if created else 200)

    async def get(self) -> None:
        limit = query_int(self.query_arg("limit"), name="limit", code="invalid_limit", default=20, low=1, high=LIST_LIMIT_MAX)
        offset = query_int(self.query_arg("offset"), name="offset", code="invalid_offset", default=0, low=0, high=LIST_OFFSET_MAX)
        items = await self.services.checkouts.list(
            status=self.query_arg("status"),
            merchant_reference=self.query_arg("merchant_reference"),
            limit=limit,
            offset=offset,
        )
        self.write_json({"items": [self._view(c) for c in items], "limit": limit, "offset": offset})


class CheckoutHandler(CheckoutView, ApiHandler):
    async def get(self, checkout_id: str) -> None:
        checkout = await self.services.checkouts.get(checkout_id)
        view = self._view(checkout)
        view["orders"] = [o.public() for o in await self.services.orders.for_checkout(checkout.id)]
        view["refunds"] = [r.public() for r in await self.services.refunds.for_checkout(checkout.id)]
        self.write_json(view)


class CheckoutPaymentHandler(ApiHandler):
    """For Mini Program and App backends: a ready-to-use client payload."""

    async def post(self, checkout_id: str) -> None:
        req = payment_request(self.json_body(), peer_ip=self.client_ip())
        extra = {"client": "mini_program", "openid": req.openid} if req.client == "mini_program" else {}
        result = await self.services.prepay.prepay(
            checkout_id, trade_type=req.trade_type, client_ip=req.client_ip, **extra
        )
        self.write_json(result.public())


class WxConfigHandler(ApiHandler):
    """A signed ``wx.config`` for one of the merchant's own pages (JSSDK)."""

    query_params = {"GET": frozenset({"url", "jsApiList"})}

    async def get(self) -> None:
        url = self.query_arg("url") or ""
        apis = [a for a in (self.query_arg("jsApiList") or "chooseWXPay").split(",") if a]
        config = await self.services.jssdk.config(url, apis)
        self.write_json(config)


def routes() -> list[tuple[str, type, dict]]:
    cid = r"([^/]+)"
    return [
        (r"/api/checkouts", CheckoutsHandler, {}),
        (rf"/api/checkouts/{cid}", CheckoutHandler, {}),
        (rf"/api/checkouts/{cid}/payment", CheckoutPaymentHandler, {}),
        (r"/api/wx-config", WxConfigHandler, {}),
    ]
