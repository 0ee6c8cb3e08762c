"""WeChat's server-to-server notifies: no XSRF (signatures instead).

The service returns a verdict and the API version of the notify it read
(each version's notify comes to the same URL: WeChat notifies an order in
the form of the API it was placed with, and a merchant who moved keeps
older orders); the gateways say how to answer it on the wire (APIv2: XML
SUCCESS/FAIL; APIv3: a status and JSON), so this handler knows neither.

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
        handled = await self.endpoint().handle(self.request.headers, self.request.body, self.client_ip())
        self.access_log_summarized = not handled.verified
        reply = self.services.gateways.reply(handled.api_version, handled.verdict)
        self.set_status(reply.status)
        if reply.content_type:
            self.set_header("Content-Type", reply.content_type)
        self.finish(reply.body or None)  # APIv3's 204 carries no body (Tornado refuses one)


class RefundNotifyHandler(PaymentNotifyHandler):
    """WeChat's refund notify (APIv2: decryption is the proof)."""

    def endpoint(self) -> NotifyEndpoint:
        return self.services.refund_notify


def routes() -> list[tuple[str, type, dict]]:
    return [(r"/notify/pay", PaymentNotifyHandler, {}), (r"/notify/refund", RefundNotifyHandler, {})]
