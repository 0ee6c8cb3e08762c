"""Sandbox mode's demo shop: a catalogue from config that makes checkouts.

It goes through the same CheckoutService as the merchant API, so the
journey a newcomer clicks through is the real one.
"""
from __future__ import annotations

import tornado.web

from service.errors import NotFound

from .base import PageHandler


class ShopHandler(PageHandler):
    def get(self) -> None:
        if not self.app_settings.is_sandbox:
            raise NotFound("not_found", "Nothing here")
        self.render("shop.html", shop=self.app_settings.shop)


class BuyHandler(PageHandler):
    async def post(self) -> None:
        if not self.app_settings.is_sandbox:
            raise NotFound("not_found", "Nothing here")
        product = self.app_settings.shop.product(self.get_body_argument("sku", ""))
        if product is None:
            raise NotFound("product_not_found", "No such product in the demo catalogue")
        checkout, _ = await self.services.checkouts.create(
            {"amount_fen": product.amount_fen, "description": product.name, "merchant_reference": f"demo-{product.sku}"}
        )
        self.redirect(f"/pay/{checkout.id}")


class NotFoundHandler(PageHandler):
    """No route matched: an HTML page, or JSON ``not_found`` under ``/api``."""

    def check_xsrf_cookie(self) -> None:
        return None  # a 404 changes nothing; a POST to a wrong URL is a 404, not a 403

    def prepare(self) -> None:
        path = self.request.path
        self.api = path == "/api" or path.startswith("/api/")
        raise tornado.web.HTTPError(404)


def routes() -> list[tuple[str, type, dict]]:
    return [(r"/", ShopHandler, {}), (r"/shop/buy", BuyHandler, {})]
