"""Leased passes (webhook delivery, the reconciler) hold short leases kept
by a heartbeat: a merchant slower than the lease does not let a second
process deliver the same event, and a process that lost its lease stops at
its next safe point (a POST under way is recorded first), leaving the rest
to the new holder: every event delivered, none lost.

Two workers ("processes": their own holder ids) share the running server's
SQLite store; the merchant is a real receiver on loopback that answers only
when the test lets it, and the reconciler is held on a test gate
(event-driven, not timed).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from edge.outbound import TornadoPoster
from service import pauses
from service.models import OUTBOX
from service.reconciler import LEASE as RECONCILER_LEASE
from service.reconciler import Reconciler
from service.webhooks import DELIVERED, LEASE, PENDING, Webhooks
from store.leases import Leases

from .payments import WEBHOOK_SECRET, native_prepay
from .journey import create_checkout

TTL = timedelta(seconds=1.2)  # renewed every 0.4 s


@pytest.fixture(autouse=True)
def gates():
    yield
    pauses.release_gates()


async def steal(running, name: str, holder: str) -> None:
    """Another process took ``name`` over (as the store would see it after a stall past the ttl)."""
    now = datetime.now(timezone.utc)
    await running.services.store.upsert_if(
        "leases", name, {}, {"holder": holder, "expires_at": now + timedelta(minutes=1), "renewed_at": now}
    )


async def noticed(caplog, name: str) -> None:
    for _ in range(200):  # bounded: the heartbeat looks every third of the ttl
        if any(f"lost the lease {name}" in r.getMessage() for r in caplog.records):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the heartbeat never noticed")


class HeldReceiver:
    """Records each POST's event id, then answers 200 once ``answer`` is set."""

    def __init__(self) -> None:
        self.arrivals: list[str] = []
        self.answer = asyncio.Event()
        self.arrived = asyncio.Event()
        receiver = self

        class Hook(tornado.web.RequestHandler):
            def check_xsrf_cookie(self) -> None:
                return None

            async def post(self) -> None:
                receiver.arrivals.append(self.request.headers.get("Wxpay-Event-Id", ""))
                receiver.arrived.set()
                await receiver.answer.wait()
                self.finish("ok")

        sock, port = bind_unused_port()
        self.url = f"http://127.0.0.1:{port}/hook"
        self.server = HTTPServer(tornado.web.Application([(r"/hook", Hook)]))
        self.server.add_sockets([sock])


def worker(running, receiver: HeldReceiver, holder: str) -> Webhooks:
    s = running.services
    return Webhooks(s.store, s.outbox, Leases(s.store), TornadoPoster(), url=receiver.url, secret=WEBHOOK_SECRET,
                    holder=holder, timeout=30.0, lease_ttl=TTL)


async def queue_events(running, n: int) -> list[str]:
    now = running.services.now()
    ids = []
    for i in range(n):
        _id = f"ev_lease{i}_paid"
        await running.services.store.insert(OUTBOX, {
            "_id": _id, "type": "checkout.paid", "checkout_id": f"co_lease{i}", "created_at": now + timedelta(milliseconds=i),
            "body": "{}", "state": PENDING, "attempts": 0, "next_attempt_at": now, "history": [],
        })
        ids.append(_id)
    return ids


async def states(running) -> dict[str, str]:
    return {d["_id"]: d["state"] for d in await running.services.store.find(OUTBOX, {}, limit=0)}


async def test_a_merchant_slower_than_the_lease_gets_the_event_once(running):
    receiver = HeldReceiver()
    a, b = worker(running, receiver, "proc-a"), worker(running, receiver, "proc-b")
    (event,) = await queue_events(running, 1)
    delivering = asyncio.ensure_future(a.run_once())
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    # Three lifetimes of the lease pass while the merchant thinks; the other process keeps trying.
    tries = []
    for _ in range(9):
        await asyncio.sleep(TTL.total_seconds() / 3)
        tries.append((await b.run_once()).ran)
    assert tries == [False] * 9
    receiver.answer.set()
    report = await delivering
    assert report.delivered == 1 and receiver.arrivals == [event]
    assert await states(running) == {event: DELIVERED}
    assert (await b.run_once()).delivered == 0 and receiver.arrivals == [event]
    receiver.server.stop()


async def test_a_worker_that_lost_the_lease_stops_after_the_post_under_way(running, caplog):
    receiver = HeldReceiver()
    a, b = worker(running, receiver, "proc-a"), worker(running, receiver, "proc-b")
    events = await queue_events(running, 3)
    with caplog.at_level(logging.WARNING, logger="wxpay_server.leases"):
        delivering = asyncio.ensure_future(a.run_once())
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        await steal(running, LEASE, "proc-b")
        await noticed(caplog, LEASE)
        receiver.answer.set()
        report = await delivering
    assert report.delivered == 1 and receiver.arrivals == events[:1]  # recorded, then stopped
    assert await states(running) == {events[0]: DELIVERED, events[1]: PENDING, events[2]: PENDING}
    assert (await b.run_once()).delivered == 2  # the new holder delivers the rest
    assert receiver.arrivals == events and set((await states(running)).values()) == {DELIVERED}
    receiver.server.stop()


async def test_a_reconciler_pass_that_lost_its_lease_stops_at_the_next_order(running, base_url, merchant, caplog):
    s = running.services
    for amount in (610, 620):
        checkout = await create_checkout(merchant, amount)
        _, result = await native_prepay(base_url, checkout["id"])
        await s.store.update_if("orders", result["out_trade_no"], {}, {"next_check_at": s.now()})
    reconciler = Reconciler(s.store, s.orders, s.order_checks, s.payments, s.closing, s.refunds, Leases(s.store),
                            holder="proc-a", lease_ttl=TTL)
    held = pauses.gate("reconciler.before_check")
    with caplog.at_level(logging.WARNING, logger="wxpay_server.leases"):
        passing = asyncio.ensure_future(reconciler.run_once())
        await held.reached()
        await steal(running, RECONCILER_LEASE, "proc-b")
        await noticed(caplog, RECONCILER_LEASE)
        held.release()
        report = await passing
    assert report.ran and report.checked == 1 and report.notes == ["lease lost; pass stopped"]
    assert await Leases(s.store).holder(RECONCILER_LEASE) == "proc-b"  # not released by proc-a
