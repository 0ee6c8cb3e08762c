"""WeChat's server-to-server notifies: no XSRF (signatures instead), XML out."""
from __future__ import annotations

from .base import BaseHandler


class PaymentNotifyHandler(BaseHandler):
    def check_xsrf_cookie(self) -> None:
        return None

    async def post(self) -> None:
        outcome = await self.services.payment_notify.handle(self.request.body)
        self.set_status(outcome.status)
        self.set_header("Content-Type", "text/xml; charset=utf-8")
        self.finish(outcome.reply)


class RefundNotifyHandler(PaymentNotifyHandler):
    """WeChat's encrypted refund notify (no signature; decryption is the proof)."""

    async def post(self) -> None:
        outcome = await self.services.refund_notify.handle(self.request.body)
        self.set_status(outcome.status)
        self.set_header("Content-Type", "text/xml; charset=utf-8")
        self.finish(outcome.reply)


def routes() -> list[tuple[str, type, dict]]:
    return [(r"/notify/pay", PaymentNotifyHandler, {}), (r"/notify/refund", RefundNotifyHandler, {})]
