"""WeChat's server-to-server notifies: no XSRF (signatures instead), XML out.

The source a notify is counted against is ``client_ip()`` (the peer, or the
client behind a trusted proxy). A notify that did not prove its origin is
summed up by the notify limiter's one line a minute, so its access-log line
goes to DEBUG (``access_log_summarized``).
"""
from __future__ import annotations

from service.notify_endpoint import NotifyEndpoint

from .base import BaseHandler


class PaymentNotifyHandler(BaseHandler):
    access_log_summarized = False

    def check_xsrf_cookie(self) -> None:
        return None

    def endpoint(self) -> NotifyEndpoint:
        return self.services.payment_notify

    async def post(self) -> None:
        outcome = await self.endpoint().handle(self.request.body, self.client_ip())
        self.access_log_summarized = not outcome.verified
        self.set_status(outcome.status)
        self.set_header("Content-Type", "text/xml; charset=utf-8")
        self.finish(outcome.reply)


class RefundNotifyHandler(PaymentNotifyHandler):
    """WeChat's encrypted refund notify (no signature; decryption is the proof)."""

    def endpoint(self) -> NotifyEndpoint:
        return self.services.refund_notify


def routes() -> list[tuple[str, type, dict]]:
    return [(r"/notify/pay", PaymentNotifyHandler, {}), (r"/notify/refund", RefundNotifyHandler, {})]
