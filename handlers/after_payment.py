"""The merchant API after the payment: refunds, cancelling, webhook deliveries."""
from __future__ import annotations

from service.validation import query_int
from service.webhooks import LIST_LIMIT_MAX

from .base import ApiHandler


class RefundsHandler(ApiHandler):
    async def post(self, checkout_id: str) -> None:
        refund, created = await self.services.refunds.create(
            checkout_id, self.json_body(), idempotency_key=self.request.headers.get("Idempotency-Key")
        )
        self.write_json(refund.public(), status=201 if created else 200)

    async def get(self, checkout_id: str) -> None:
        refunds = await self.services.refunds.list_for(checkout_id)
        self.write_json({"items": [r.public() for r in refunds]})


class CancelHandler(ApiHandler):
    async def post(self, checkout_id: str) -> None:
        checkout = await self.services.closing.cancel(checkout_id)
        view = checkout.public()
        view["orders"] = [o.public() for o in await self.services.orders.for_checkout(checkout.id)]
        self.write_json(view)


class WebhookEventsHandler(ApiHandler):
    query_params = {"GET": frozenset({"state", "limit"})}

    async def get(self) -> None:
        limit = query_int(self.query_arg("limit"), name="limit", code="invalid_limit", default=50, low=1, high=LIST_LIMIT_MAX)
        items = await self.services.webhooks.list(state=self.query_arg("state"), limit=limit)
        self.write_json({"items": items, "backlog": await self.services.webhooks.backlog()})


class WebhookResendHandler(ApiHandler):
    async def post(self, event_id: str) -> None:
        self.write_json(await self.services.webhooks.resend(event_id))


def routes() -> list[tuple[str, type, dict]]:
    cid = r"([^/]+)"
    return [
        (rf"/api/checkouts/{cid}/refunds", RefundsHandler, {}),
        (rf"/api/checkouts/{cid}/cancel", CancelHandler, {}),
        (r"/api/webhooks", WebhookEventsHandler, {}),
        (r"/api/webhooks/([^/]+)/resend", WebhookResendHandler, {}),
    ]
