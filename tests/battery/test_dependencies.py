"""Dependencies failing: the store during a notify, WeChat during prepay and
during the notify's orderquery. FAIL (so WeChat retries) or a clear error,
nothing paid on an unverified reply, and recovery once the part is back."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta

import pytest
import tornado.web
from pymongo.errors import ServerSelectionTimeoutError
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from service.clock import utcnow
from service.models import CHECKOUTS, ORDERS
from store.mongo import MongoStore
from store.sqlite import SQLiteStore
from tests.server.browser import as_json
from tests.server.versions import FAULT_ENDPOINTS, accepted, payment_notify
from tests.store.mongo_emulator import EmulatedMongoClient

from . import logwatch
from .harness import Client, browser, snapshot, start_server
from .results import record

WECHAT_FAULTS = ("http500", "systemerror", "malformed", "bad_sign")


def says(reply, ok: bool) -> bool:
    return (b"<return_code><![CDATA[SUCCESS]]>" in reply.body) is ok


async def test_store_down_during_notify_mongo(tmp_path):
    mongo = EmulatedMongoClient()
    running = await start_server(tmp_path, store=MongoStore(mongo, "battery"))
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(1500)
        body = client.signed_notify(paid["sim"])
        mongo.down = True
        try:
            reply = await client.notify(body)
        finally:
            mongo.down = False
        logwatch.add_text(reply.body)
        assert reply.code == 503 and says(reply, False), reply.body
        order = await client.store.get(ORDERS, paid["out_trade_no"])
        assert order["state"] == "prepaid" and "transaction_id" not in order  # nothing half-written
        again = await client.notify(body)  # WeChat's retry, once the store is back
        assert again.code == 200 and says(again, True)
        assert (await client.store.get(CHECKOUTS, checkout["id"]))["status"] == "paid"
        record("dependencies", "store down during a notify (MongoDB)", "pass", reply_while_down=reply.code,
               reply_after_recovery=again.code, paid_after_recovery=True)
    finally:
        await running.stop(grace=1)


async def test_store_fails_between_order_and_checkout(tmp_path):
    """The order's move succeeds, the checkout's write fails: the order carries
    a settlement marker and the next notify (or the reconciler) finishes it."""
    mongo = EmulatedMongoClient()
    running = await start_server(tmp_path, store=MongoStore(mongo, "battery"))
    try:
        client = Client(running)
        results = {}
        for via in ("notify", "reconciler"):
            checkout, paid = await client.paid_at_wechat_only(1600)
            allowed = {"n": 1}

            def fault(operation: str) -> None:
                if operation == "find_one_and_update":
                    allowed["n"] -= 1
                    if allowed["n"] < 0:
                        raise ServerSelectionTimeoutError("emulated: store lost right after the order's move")

            mongo.fault = fault
            try:
                reply = await client.notify(client.signed_notify(paid["sim"]))
            finally:
                mongo.fault = None
            assert reply.code == 503 and says(reply, False), reply.body
            order = await client.store.get(ORDERS, paid["out_trade_no"])
            assert order["state"] == "paid" and order.get("settle_due_at") is not None
            assert (await client.store.get(CHECKOUTS, checkout["id"]))["status"] == "open"
            if via == "notify":
                again = await client.notify(client.signed_notify(paid["sim"]))
                assert again.code == 200 and says(again, True)
            else:
                reconciler = running.services.reconciler
                reconciler.now = lambda: utcnow() + timedelta(seconds=30)
                try:
                    report = await reconciler.run_once()
                finally:
                    reconciler.now = utcnow
                assert report.settled == 1, report
            stored = await client.store.get(CHECKOUTS, checkout["id"])
            assert stored["status"] == "paid" and stored["paid_out_trade_no"] == paid["out_trade_no"]
            assert (await client.store.get(ORDERS, paid["out_trade_no"])).get("settle_due_at") is None
            results[via] = reply.code
        record("dependencies", "store lost between the order's move and the checkout's", "pass",
               reply_while_failing=results["notify"], finished_by=["next notify", "reconciler sweep"])
    finally:
        await running.stop(grace=1)


async def test_sqlite_locked_during_notify(tmp_path):
    path = tmp_path / "locked.sqlite3"
    running = await start_server(tmp_path, store=SQLiteStore(path, busy_timeout=0.2, busy_retries=1))
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(1700)
        before = await snapshot(client.store)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            reply = await client.notify(client.signed_notify(paid["sim"]))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert reply.code == 503 and says(reply, False), reply.body
        assert await snapshot(client.store) == before
        again = await client.notify(client.signed_notify(paid["sim"]))
        assert again.code == 200 and says(again, True)
        assert (await client.store.get(CHECKOUTS, checkout["id"]))["status"] == "paid"
        record("dependencies", "SQLite write-locked by another connection during a notify", "pass",
               reply_while_locked=reply.code, reply_after=again.code)
    finally:
        await running.stop(grace=1)


@pytest.mark.parametrize("kind", WECHAT_FAULTS + ("latency",))
async def test_wechat_failing_during_prepay(tmp_path, kind):
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        checkout = await client.checkout(1800)
        desktop = browser(client.base)
        await desktop.get(f"/pay/{checkout['id']}")
        await client.fault(endpoint="pay/unifiedorder", kind=kind, count=None, seconds=0.3)
        try:
            reply = await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
        finally:
            await client.clear_faults("pay/unifiedorder")
        logwatch.add_text(reply.body)
        orders = await client.store.find(ORDERS, {"checkout_id": checkout["id"]}, limit=0)
        if kind == "latency":
            assert reply.code == 200, reply.body  # slow, still fine
        else:
            error = as_json(reply)
            assert reply.code == 502 and error["code"] and error["message"], reply.body
            assert all(o["state"] in ("created", "failed") and "prepay_id" not in o for o in orders), orders
        again = await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True)
        assert again.code == 200, again.body
        assert (await client.store.get(CHECKOUTS, checkout["id"]))["status"] == "open"
        record("dependencies", f"pay/unifiedorder {kind}", "pass", reply=reply.code,
               error_code=None if kind == "latency" else as_json(reply)["code"], reply_after_recovery=again.code)
    finally:
        await running.stop(grace=1)


@pytest.mark.parametrize("kind", WECHAT_FAULTS)
async def test_wechat_failing_during_notify_confirmation(tmp_path, kind):
    """The notify is genuine, but WeChat's own orderquery cannot be trusted yet."""
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(1900)
        body = client.signed_notify(paid["sim"])
        before = await snapshot(client.store)
        await client.fault(endpoint="pay/orderquery", kind=kind, count=None)
        try:
            reply = await client.notify(body)
        finally:
            await client.clear_faults("pay/orderquery")
        assert reply.code in (409, 503) and says(reply, False), reply.body
        assert await snapshot(client.store) == before  # not paid on an unverified reply
        again = await client.notify(body)
        assert again.code == 200 and says(again, True)
        assert (await client.store.get(CHECKOUTS, checkout["id"]))["status"] == "paid"
        record("dependencies", f"pay/orderquery {kind} during a notify", "pass", reply=reply.code,
               paid_before_recovery=False, reply_after_recovery=again.code)
    finally:
        await running.stop(grace=1)


@pytest.mark.parametrize("api_version", ["v2", "v3"])
async def test_an_orderquery_slower_than_wechats_notify_timeout(tmp_path, api_version):
    """WeChat waits 5 s for a notify's answer. WeChat's own orderquery (the one the
    notify must wait for) answers after 6 s: the notify is answered FAIL / 503 once
    ``notify.confirm_timeout_s`` (3 s) is spent, with nothing changed, rather than
    SUCCESS after WeChat gave up; the retry confirms it."""
    running = await start_server(tmp_path, **{"wechat.api_version": api_version})
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(1950)
        no = paid["out_trade_no"]
        if api_version == "v3":
            headers, body = payment_notify(running, "v3", no)
        else:
            headers, body = None, client.signed_notify(paid["sim"])
        before = await snapshot(client.store)
        query = FAULT_ENDPOINTS[api_version]["query"]
        await client.fault(endpoint=query, kind="latency", seconds=6, count=1)
        started = time.monotonic()
        reply = await client.notify(body, headers=headers)
        answered_s = round(time.monotonic() - started, 2)  # a figure, not asserted (a loaded machine)
        assert reply.code == 503 and not accepted(api_version, reply), reply.body
        assert await snapshot(client.store) == before
        (refusal,) = await running.services.audit.latest("notify")
        assert refusal["verdict"] == "query_failed_wechat_timeout"
        again = await client.notify(body, headers=headers)
        assert accepted(api_version, again), again.body
        assert (await client.store.get(CHECKOUTS, checkout["id"]))["status"] == "paid"
        record("dependencies", "orderquery slower than WeChat's notify timeout"
               + (" (APIv3)" if api_version == "v3" else ""), "pass", query_latency_s=6, confirm_timeout_s=3.0,
               reply=reply.code, answered_after_s=answered_s, reply_after_recovery=again.code)
    finally:
        await running.stop(grace=1)


async def test_wechat_calls_are_not_starved_by_other_http(tmp_path):
    """Tornado's shared AsyncHTTPClient has 10 slots. With them all taken by
    requests that hang (anything else in the process), a notify's orderquery
    once waited in that queue until it timed out; WeChat calls have their own."""
    release = asyncio.Event()

    class Hang(tornado.web.RequestHandler):
        async def get(self) -> None:
            await release.wait()
            self.finish("late")

    sock, port = bind_unused_port()
    hang_server = HTTPServer(tornado.web.Application([(r"/", Hang)]))
    hang_server.add_sockets([sock])
    running = await start_server(tmp_path)
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(2100)
        shared = AsyncHTTPClient()
        hanging = [asyncio.ensure_future(shared.fetch(f"http://127.0.0.1:{port}/", request_timeout=60)) for _ in range(12)]
        await asyncio.sleep(0.05)
        try:
            reply = await client.notify(client.signed_notify(paid["sim"]))
        finally:
            release.set()
            await asyncio.gather(*hanging, return_exceptions=True)
        assert reply.code == 200 and says(reply, True), reply.body
        record("dependencies", "WeChat calls with the shared HTTP client saturated", "pass", reply=reply.code)
    finally:
        await running.stop(grace=1)
        hang_server.stop()


async def test_wechat_refusing_a_mini_program_openid_is_the_merchants_400(tmp_path):
    """WeChat's unifiedorder refuses an openid that is not a user of the Mini Program (made up, or the
    Official Account's): the payment call is 400 ``openid_rejected`` naming the way to the right openid,
    not a 502; nothing is paid, the order is failed, and the right openid (from the shopper's
    ``wx.login`` code, through ``POST /api/mini-program/sessions``) then pays."""
    from wxpay.simulator import demo

    running = await start_server(tmp_path)
    try:
        client = Client(running)
        checkout = await client.checkout(1200)
        path = f"/api/checkouts/{checkout['id']}/payment"
        replies = []
        for openid in ("oMadeUpOpenid0000000000000000", running.simulator.openid_for(demo.OFFICIAL_ACCOUNT_APPID, "b")):
            r = await client.merchant.post(path, json_body={"client": "mini_program", "openid": openid},
                                           headers=client.auth)
            logwatch.add_text(r.body)
            replies.append((r.code, as_json(r)["code"]))
        orders = await running.services.orders.for_checkout(checkout["id"])
        code = as_json(await client.sim("POST", "wx-login", {"user": "b"}))["code"]
        login = as_json(await client.merchant.post("/api/mini-program/sessions", json_body={"code": code},
                                                   headers=client.auth))
        r = await client.merchant.post(path, json_body={"client": "mini_program", "openid": login["openid"]},
                                       headers=client.auth)
        ok = (replies == [(400, "openid_rejected")] * 2 and [o.state for o in orders] == ["failed", "failed"]
              and r.code == 200 and "request_payment" in as_json(r))
        record("dependencies", "WeChat refuses the openid of a Mini Program payment",
               "pass" if ok else f"FAIL: {replies} {[o.state for o in orders]} {r.code}",
               refused_with=" ".join(f"{s} {c}" for s, c in replies), failed_orders=len(orders),
               right_openid_after_login=r.code)
        assert ok, (replies, orders, r.body)
    finally:
        await running.stop(grace=1)
