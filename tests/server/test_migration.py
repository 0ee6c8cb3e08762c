"""A merchant moves: APIv2 to APIv3, and platform certificates to the public key.

Each move is a restart of the server on the same store (a real SQLite file)
and the same port (WeChat keeps the notify URL each order was placed with)
with the other configuration. The simulated WeChat runs beside it, on its
own port, for the whole test, as the real one would: one order book for
both API versions, its notify retries going on while the server is down.

What must hold after the move: an order placed before it is still
confirmed (by its own version's notify, which the new server proves with
that version's key, or by the reconciler's query in the new version),
refunded in the new version, and an unpaid order of the old version,
whose prepay_id the new version cannot sign, is replaced by a new order
and closed.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import tornado.netutil
from tornado.testing import bind_unused_port

import server
from config import load_settings
from service.models import TRUST
from tests.simulator.pay_server import running_sim
from wxpay.simulator import demo
from wxpay.simulator.clock import Clock
from wxpay.simulator.config import SimConfig

from .browser import DESKTOP_UA, WECHAT_UA, Browser, as_json
from .journey import create_checkout, wait_status
from .payments import get_checkout, refund, wait_refund

PUBLIC_KEY = {"wechat.wechatpay_public_key_id": demo.PUBLIC_KEY_ID,
              "wechat.wechatpay_public_key_path": str(demo.V3_DIR / "wechatpay_pub_key.pem")}


class World:
    """One simulated WeChat, one store file, one port; servers started and stopped on them."""

    def __init__(self, tmp_path, sim) -> None:
        self.tmp_path = tmp_path
        self.sim = sim
        sock, self.port = bind_unused_port()
        sock.close()
        self.base = f"http://127.0.0.1:{self.port}"
        self.running: server.Running | None = None
        self.merchant = Browser(self.base)
        self.merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]

    async def start(self, **overrides: Any) -> server.Running:
        values = {
            "store.sqlite_path": str(self.tmp_path / "wxpay.sqlite3"),
            "reconciler.enabled": False,
            "wechat.pay_base": self.sim.base, "wechat.api_base": self.sim.base, "wechat.open_base": self.sim.base,
            "server.public_url": self.base,
            "server.cookie_secret": "migration-test-cookie-secret-0123456789",
            **overrides,
        }
        sockets = tornado.netutil.bind_sockets(self.port, "127.0.0.1")
        self.running = await server.start(load_settings(None, env={}, overrides=values), sockets=sockets)
        return self.running

    async def stop(self) -> None:
        assert self.running is not None
        await self.running.stop(grace=1)
        self.running = None

    @property
    def services(self):
        assert self.running is not None
        return self.running.services

    async def sim_post(self, path: str, body: dict) -> dict:
        r = await self.merchant.post(f"{self.sim.base}/_sim/{path}", json_body=body)
        assert r.code == 200, r.body
        return as_json(r)

    async def sim_order(self, out_trade_no: str) -> dict:
        return as_json(await self.merchant.get(f"{self.sim.base}/_sim/orders/{out_trade_no}"))["order"]

    async def native(self, checkout_id: str) -> tuple[Browser, dict]:
        desktop = Browser(self.base, DESKTOP_UA)
        await desktop.get(f"/pay/{checkout_id}")
        r = await desktop.post(f"/pay/{checkout_id}/prepay", json_body={}, xsrf=True)
        assert r.code == 200, r.body
        return desktop, as_json(r)

    async def scan(self, code_url: str) -> None:
        assert (await self.sim_post("scan", {"code_url": code_url, "outcome": "ok"}))["ok"]

    async def paid_native(self, amount: int) -> dict:
        checkout = await create_checkout(self.merchant, amount)
        desktop, result = await self.native(checkout["id"])
        await self.scan(result["code_url"])
        await wait_status(desktop, checkout["id"], "paid")
        return await get_checkout(self.merchant, checkout["id"])

    async def age(self, out_trade_no: str, minutes: int = 6) -> None:
        """WeChat's five minutes before a close, passed on both sides."""
        old = self.services.now() - timedelta(minutes=minutes)
        await self.services.store.update_if("orders", out_trade_no, {}, {"created_at": old, "next_check_at": old})
        self.sim.sim.pay.order(demo.MCH_ID, out_trade_no).created_at = old


def sim_config() -> SimConfig:
    return SimConfig.demo(notify_time_scale=1000.0)


async def test_from_apiv2_to_apiv3_on_the_same_store(tmp_path):
    async with running_sim(Clock(), sim_config=sim_config()) as sim:
        world = World(tmp_path, sim)
        await world.start(**{"wechat.api_version": "v2"})
        # Under APIv2: one paid checkout (refunded after the move), one paid at WeChat whose
        # notifies are all lost, one placed and left unpaid, one whose shopper pays while
        # the server is down for the move, one in the WeChat app with an unpaid JSAPI order.
        sold = await world.paid_native(1000)
        lost = await create_checkout(world.merchant, 700)
        _, lost_order = await world.native(lost["id"])
        # Every notify and its retries dropped from before the scan (a count of one, then
        # "all", let a fast retry through between the two under load).
        await world.sim_post("faults", {"endpoint": "notify", "kind": "drop", "count": None})
        await world.scan(lost_order["code_url"])
        during = await create_checkout(world.merchant, 600)
        _, during_order = await world.native(during["id"])
        inside = await create_checkout(world.merchant, 500)
        shopper = Browser(world.base, WECHAT_UA)
        await shopper.follow(inside["pay_url"])
        r = await shopper.post(f"/pay/{inside['id']}/prepay", json_body={}, xsrf=True)
        v2_jsapi = as_json(r)
        assert v2_jsapi["bridge"]["signType"] == "MD5"
        await world.stop()

        # The move. WeChat still holds APIv2 orders and will notify them in APIv2's form.
        running = await world.start(**{"wechat.api_version": "v3"})
        assert running.services.gateways.versions == ("v3", "v2")

        # 1. The payment whose notifies are all lost: the reconciler's query, in APIv3.
        order = await world.services.orders.require(lost_order["out_trade_no"])
        await world.services.lifecycle.touch_order(order, next_check_at=world.services.now())
        report = await world.services.reconciler.run_once()
        assert report.paid == 1
        assert (await world.services.orders.require(lost_order["out_trade_no"])).paid_via == "reconciler"
        assert {c["endpoint"] for c in world.services.call_stats.snapshot()} == {"v3/query"}

        # 2. A shopper pays an APIv2 order while the server restarts: WeChat retries its
        #    APIv2 notify, which the APIv3 server proves with the APIv2 key and confirms
        #    by an APIv3 query.
        await world.stop()
        r = await world.merchant.request("DELETE", f"{sim.base}/_sim/faults")
        assert r.code == 200
        await world.scan(during_order["code_url"])  # no server answers: WeChat retries
        await world.start(**{"wechat.api_version": "v3"})
        await wait_status(world.merchant, during["id"], "paid", tries=400)
        (record,) = [n for n in await world.services.audit.latest("notify", limit=50)
                     if n.get("out_trade_no") == during_order["out_trade_no"] and n["ok"]]
        assert (record["verdict"], record["api_version"]) == ("paid", "v2")
        assert (await world.services.orders.require(during_order["out_trade_no"])).paid_via == "notify"
        assert {c["endpoint"] for c in world.services.call_stats.snapshot()} == {"v3/query"}

        # 3. A refund of an APIv2 payment, asked and notified in APIv3.
        r = await refund(world.merchant, sold["id"], {"amount_fen": 400, "out_refund_no": "mig-r1"})
        assert r.code == 201, r.body
        await wait_refund(world.merchant, sold["id"], "mig-r1", "succeeded")
        (refunded,) = as_json(await world.merchant.get(f"{sim.base}/_sim/refunds"))["refunds"]
        assert (refunded["api"], refunded["out_trade_no"]) == ("v3", sold["paid_out_trade_no"])
        (notice,) = await world.services.audit.latest("refund_notify")
        assert (notice["verdict"], notice["api_version"]) == ("succeeded", "v3")

        # 4. The shopper comes back to the APIv2 order APIv3 cannot sign: a new order,
        #    signed RSA, and the old one handed to the reconciler, which closes it.
        r = await shopper.post(f"/pay/{inside['id']}/prepay", json_body={}, xsrf=True)
        v3_jsapi = as_json(r)
        assert v3_jsapi["out_trade_no"] != v2_jsapi["out_trade_no"] and v3_jsapi["bridge"]["signType"] == "RSA"
        old = await world.services.orders.require(v2_jsapi["out_trade_no"])
        assert old.state == "prepaid" and old.close_requested
        paid = await world.sim_post("pay", {"prepay_id": v3_jsapi["bridge"]["package"].split("=", 1)[1],
                                            "outcome": "ok", "payload": v3_jsapi["bridge"]})
        assert paid["ok"], paid
        await wait_status(shopper, inside["id"], "paid")
        await world.age(v2_jsapi["out_trade_no"])
        report = await world.services.reconciler.run_once()
        assert report.closed == 1
        assert (await world.services.orders.require(v2_jsapi["out_trade_no"])).state == "closed"
        assert (await world.sim_order(v2_jsapi["out_trade_no"]))["trade_state"] == "CLOSED"

        # Every checkout as it should be; nothing paid twice.
        views = {c["id"]: await get_checkout(world.merchant, c["id"]) for c in (sold, lost, during, inside)}
        assert [views[c["id"]]["status"] for c in (sold, lost, during, inside)] == \
            ["partially_refunded", "paid", "paid", "paid"]
        assert not any(v.get("double_paid") for v in views.values())
        await world.stop()


async def test_from_platform_certificates_to_the_public_key_on_the_same_store(tmp_path):
    async with running_sim(Clock(), sim_config=sim_config()) as sim:
        world = World(tmp_path, sim)
        await world.sim_post(f"v3/merchants/{demo.MCH_ID}", {"key_mode": "platform_cert"})
        running = await world.start(**{"wechat.api_version": "v3", "wechat.platform_certificates": True})
        stored = await running.services.store.get(TRUST, f"v3:{demo.MCH_ID}")
        assert stored is not None  # downloaded at start, kept for every process
        sold = await world.paid_native(900)
        (first,) = await world.services.audit.latest("notify")
        assert json.loads(first["raw"])["wechatpay_serial"] == demo.PLATFORM_SERIAL_NO
        lost = await create_checkout(world.merchant, 800)
        _, lost_order = await world.native(lost["id"])
        await world.sim_post("faults", {"endpoint": "notify", "kind": "drop", "count": None})
        await world.scan(lost_order["code_url"])
        await world.stop()

        # WeChat moves the merchant to the public key (the end of its gray switch); so does the server.
        await world.sim_post(f"v3/merchants/{demo.MCH_ID}", {"key_mode": "public_key"})
        r = await world.merchant.request("DELETE", f"{sim.base}/_sim/faults")
        assert r.code == 200
        running = await world.start(**{"wechat.api_version": "v3", **PUBLIC_KEY})
        assert not running.services.trust.keeps_state
        order = await world.services.orders.require(lost_order["out_trade_no"])
        await world.services.lifecycle.touch_order(order, next_check_at=world.services.now())
        assert (await world.services.reconciler.run_once()).paid == 1  # its query verified with the public key
        r = await refund(world.merchant, sold["id"], {"amount_fen": 900, "out_refund_no": "pk-r1"})
        assert r.code == 201, r.body
        await wait_refund(world.merchant, sold["id"], "pk-r1", "succeeded")
        (notice,) = await world.services.audit.latest("refund_notify")
        assert json.loads(notice["raw"])["wechatpay_serial"] == demo.PUBLIC_KEY_ID
        assert (await get_checkout(world.merchant, sold["id"]))["status"] == "refunded"
        assert (await get_checkout(world.merchant, lost["id"]))["status"] == "paid"
        await world.stop()


async def test_back_from_apiv3_to_apiv2_keeping_the_apiv3_key_to_read_its_notifies(tmp_path):
    """The reverse move: an APIv3 order paid while the server restarts on APIv2 with
    ``wechat.apiv3_key`` (and the public key) kept: its APIv3 notify is proven by the
    APIv3 gateway beside the APIv2 one, and confirmed by an APIv2 query."""
    async with running_sim(Clock(), sim_config=sim_config()) as sim:
        world = World(tmp_path, sim)
        await world.start(**{"wechat.api_version": "v3"})
        checkout = await create_checkout(world.merchant, 321)
        _, placed = await world.native(checkout["id"])
        await world.stop()
        await world.scan(placed["code_url"])  # no server answers: WeChat retries its APIv3 notify
        v2 = await world.start(**{
            "wechat.api_version": "v2", "wechat.apiv3_key": demo.APIV3_KEY, **PUBLIC_KEY,
            "wechat.cert_path": str(demo.CERT_PATH), "wechat.key_path": str(demo.KEY_PATH)})
        assert v2.services.gateways.versions == ("v2", "v3")
        await wait_status(world.merchant, checkout["id"], "paid", tries=400)
        (record,) = [n for n in await world.services.audit.latest("notify") if n["ok"]]
        assert (record["verdict"], record["api_version"]) == ("paid", "v3")
        assert {c["endpoint"] for c in world.services.call_stats.snapshot()} == {"orderquery"}
        await world.stop()
