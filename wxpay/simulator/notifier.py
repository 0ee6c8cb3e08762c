"""Notify delivery the way WeChat does it (§11.3, §12): POST, judge, retry, give up.

A delivery is one notify (payment or refund) to one notify_url, in the form
of the API version the order or refund was made with. The first attempt
goes out at once; a V2 reply counts only if it is HTTP 200 with the SUCCESS
XML of §11.2, a V3 reply if its status is 200 or 204 (V3 digest §6.4);
otherwise WeChat tries again after 15s, 15s, 30s, 3m,
10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h (16 attempts in all) and
then gives up. Intervals are divided by ``time_scale`` so tests can run the
whole day in a second. Each attempt is recorded with its reply; lists are
capped so a long run cannot eat memory. The body is built fresh for every
attempt by a callback (new nonce, same facts), so nothing secret is stored.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..errors import WxPayError
from ..xmlcodec import parse_xml
from .clock import Clock
from .faults import Faults

log = logging.getLogger(__name__)

RETRY_INTERVALS = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
MAX_DELIVERIES = 500  # finished deliveries beyond this are forgotten, oldest first
MAX_ATTEMPTS_KEPT = 40
EXCERPT = 200


@dataclass
class Attempt:
    number: int  # 1-based attempt number within the delivery
    at: str
    delay_before: int  # the unscaled interval WeChat waited before this attempt
    verdict: str  # success | fail | error | dropped | probe_rejected | probe_accepted
    status: int | None = None
    excerpt: str = ""
    copy: int = 1  # > 1 for the copies of a duplicate burst
    serial: str = ""  # V3: the Wechatpay-Serial the attempt was signed with


@dataclass
class Delivery:
    id: int
    kind: str  # "pay" or "refund"
    mch_id: str
    key: str  # out_trade_no (pay) or out_refund_no (refund)
    url: str
    created_at: str
    state: str = "pending"  # pending | delivered | gave_up
    next_number: int = 1
    attempts: list[Attempt] = field(default_factory=list)
    api: str = "v2"  # "v3": encrypted JSON, signed headers, acknowledged by status

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Delivery":
        attempts = [Attempt(**a) for a in d.get("attempts", [])]
        return cls(**{**d, "attempts": attempts})


@dataclass(frozen=True)
class Outgoing:
    """One notify as it goes on the wire; ``probe`` is a SIGNTEST copy to send first (V3)."""

    body: bytes
    headers: dict[str, str]
    serial: str = ""
    probe: "Outgoing | None" = None


XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
# A builder returns the notify for the delivery's next attempt (bare bytes: V2 XML).
BodyBuilder = Callable[[Delivery], "bytes | Outgoing"]


def is_success_reply(status: int | None, body: bytes) -> bool:
    """§11.2: only an XML body with return_code SUCCESS counts; text, JSON, HTML do not."""
    if status != 200:
        return False
    try:
        return parse_xml(body).get("return_code") == "SUCCESS"
    except WxPayError:
        return False


def acknowledged(api: str, status: int | None, body: bytes) -> bool:
    """V2: the SUCCESS XML in a 200; V3: WeChat reads only the status, 200 or 204."""
    return status in (200, 204) if api == "v3" else is_success_reply(status, body)


class Notifier:
    def __init__(
        self,
        build_body: BodyBuilder,
        *,
        clock: Clock,
        faults: Faults,
        time_scale: float = 1.0,
        http_client: AsyncHTTPClient | None = None,
        request_timeout: float = 5.0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("notify time scale must be > 0")
        self.build_body = build_body
        self.clock = clock
        self.faults = faults
        self.time_scale = time_scale
        self._http = http_client
        self.request_timeout = request_timeout
        self.on_change = on_change
        self.deliveries: OrderedDict[int, Delivery] = OrderedDict()
        self._ids = itertools.count(1)
        self._tasks: dict[int, asyncio.Task] = {}
        self._done: dict[int, asyncio.Event] = {}
        # Ids of finished deliveries, smallest (oldest) first, so trimming
        # never walks the pending ones (all of them, while notifies are dropped).
        self._finished: list[int] = []
        self._running = False

    @property
    def http(self) -> AsyncHTTPClient:
        if self._http is None:
            self._http = AsyncHTTPClient()
        return self._http

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        for delivery in list(self.deliveries.values()):
            if delivery.state == "pending" and delivery.id not in self._tasks:
                self._spawn(delivery)

    async def stop(self) -> None:
        self._running = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()

    # --- queueing -------------------------------------------------------------

    def enqueue(self, kind: str, mch_id: str, key: str, url: str, *, start: bool = True, api: str = "v2") -> Delivery:
        delivery = Delivery(next(self._ids), kind, mch_id, key, url, self.clock.now().isoformat(), api=api)
        self.deliveries[delivery.id] = delivery
        self._trim()
        self._done[delivery.id] = asyncio.Event()
        if start and self._running:
            self._spawn(delivery)
        self.on_change()
        return delivery

    async def deliver_first_now(self, delivery: Delivery) -> None:
        """Run attempt 1 inline (the "notify before the reply" fault), then retry in the background."""
        ok = await self._attempt(delivery, 0)
        if ok:
            self._finish(delivery, "delivered")
        elif self._running:
            self._spawn(delivery)

    async def wait(self, delivery_id: int) -> Delivery:
        """Until the delivery is delivered or given up (for tests and tools)."""
        delivery = self.deliveries[delivery_id]
        while delivery.state == "pending":
            await self._done.setdefault(delivery_id, asyncio.Event()).wait()
        return delivery

    def list(self, kind: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        return [
            d.to_json() for d in self.deliveries.values()
            if (kind is None or d.kind == kind) and (key is None or d.key == key)
        ]

    # --- work -------------------------------------------------------------------

    def _spawn(self, delivery: Delivery) -> None:
        task = asyncio.ensure_future(self._run(delivery))
        self._tasks[delivery.id] = task
        task.add_done_callback(lambda _t, i=delivery.id: self._tasks.pop(i, None))

    async def _run(self, delivery: Delivery) -> None:
        """From the delivery's next attempt on: wait its interval, try, stop on SUCCESS."""
        while delivery.state == "pending":
            index = delivery.next_number - 1
            if index > len(RETRY_INTERVALS):  # the last interval has passed: give up
                self._finish(delivery, "gave_up")
                return
            if index > 0:
                await asyncio.sleep(RETRY_INTERVALS[index - 1] / self.time_scale)
            if await self._attempt(delivery, index):
                self._finish(delivery, "delivered")
                return

    async def _attempt(self, delivery: Delivery, index: int) -> bool:
        """One attempt (possibly a duplicate burst); records it; True on a SUCCESS reply."""
        endpoint = "notify" if delivery.kind == "pay" else "refund_notify"
        number = index + 1
        delivery.next_number = number + 1
        delay = RETRY_INTERVALS[index - 1] if index > 0 else 0
        at = self.clock.now().isoformat()
        latency = self.faults.take(endpoint, "latency")
        if latency is not None:
            await asyncio.sleep(latency.seconds)
        if self.faults.take(endpoint, "drop") is not None:
            self._record(delivery, Attempt(number, at, delay, "dropped", None, "(lost in the network: fault)"))
            return False
        burst = self.faults.take(endpoint, "duplicate")
        copies = burst.n if burst is not None else 1
        try:
            built = self.build_body(delivery)
        except Exception as exc:  # the order vanished or the config changed
            self._record(delivery, Attempt(number, at, delay, "error", None, f"cannot build notify: {exc}"[:EXCERPT]))
            return False
        out = built if isinstance(built, Outgoing) else Outgoing(built, XML_HEADERS)
        if out.probe is not None:
            # WeChat's probe (V3 digest §3.5): the receiver must refuse it (any non-2xx).
            status, reply, error = await self._post(delivery.url, out.probe.body, out.probe.headers)
            verdict = "probe_accepted" if status is not None and 200 <= status < 300 else "probe_rejected"
            excerpt = (error or reply[:EXCERPT].decode("utf-8", "replace"))[:EXCERPT]
            self._record(delivery, Attempt(number, at, delay, verdict, status, excerpt, 1, out.probe.serial))
        results = await asyncio.gather(*(self._post(delivery.url, out.body, out.headers) for _ in range(copies)))
        ok = False
        for n, (status, reply, error) in enumerate(results, start=1):
            if error is not None:
                attempt = Attempt(number, at, delay, "error", status, error[:EXCERPT], n, out.serial)
            else:
                good = acknowledged(delivery.api, status, reply)
                ok = ok or good
                excerpt = reply[:EXCERPT].decode("utf-8", "replace")
                attempt = Attempt(number, at, delay, "success" if good else "fail", status, excerpt, n, out.serial)
            self._record(delivery, attempt)
        log.info("notify %s #%d to %s: %s", delivery.kind, number, delivery.url, "success" if ok else "not accepted")
        return ok

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, bytes, str | None]:
        request = HTTPRequest(
            url, method="POST", body=body, headers=headers,
            request_timeout=self.request_timeout, connect_timeout=self.request_timeout, follow_redirects=False,
        )
        try:
            response = await self.http.fetch(request, raise_error=False)
        except HTTPClientError as exc:  # pragma: no cover - raise_error=False keeps most of these away
            return exc.code, b"", str(exc)
        except Exception as exc:  # connection refused, DNS, timeout: WeChat just retries later
            return None, b"", f"{exc.__class__.__name__}: {exc}"
        if response.code == 599:
            return None, b"", f"transport error: {response.error}"
        return response.code, response.body or b"", None

    def _record(self, delivery: Delivery, attempt: Attempt) -> None:
        delivery.attempts.append(attempt)
        if len(delivery.attempts) > MAX_ATTEMPTS_KEPT:
            del delivery.attempts[: len(delivery.attempts) - MAX_ATTEMPTS_KEPT]
        self.on_change()

    def _finish(self, delivery: Delivery, state: str) -> None:
        if delivery.state == "pending":
            heapq.heappush(self._finished, delivery.id)
        delivery.state = state
        event = self._done.get(delivery.id)
        if event is not None:
            event.set()
        self.on_change()

    def _trim(self) -> None:
        while len(self.deliveries) > MAX_DELIVERIES and self._finished:
            oldest = heapq.heappop(self._finished)
            if self.deliveries.pop(oldest, None) is not None:
                self._done.pop(oldest, None)

    # --- persistence -----------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"deliveries": [d.to_json() for d in self.deliveries.values()]}

    def load_json(self, data: dict[str, Any]) -> None:
        for raw in data.get("deliveries", []):
            delivery = Delivery.from_json(raw)
            self.deliveries[delivery.id] = delivery
            if delivery.state != "pending":
                heapq.heappush(self._finished, delivery.id)
        if self.deliveries:
            self._ids = itertools.count(max(self.deliveries) + 1)
