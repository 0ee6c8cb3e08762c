"""``shop.name`` is what shoppers see, on the pay page and in WeChat, in sandbox
and in live mode: a live server (its WeChat base URLs pointed at a standalone
simulator on loopback) shows it on the page and sends it at the head of every
order's description and as the H5 site's name."""
from __future__ import annotations

import json
from typing import AsyncIterator

import pytest
from tornado.escape import xhtml_escape
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from wxpay.simulator.app import make_app
from wxpay.simulator.config import SimApp, SimConfig, SimMerchant
from wxpay.simulator.core import Simulator

from .browser import DESKTOP_UA, MOBILE_UA, Browser, as_json
from .conftest import start_server
from .journey import create_checkout
from .live import start_live

SHOP = "Lu's Tea House"
LIVE_APPID, LIVE_SECRET, LIVE_MCH, LIVE_KEY, LIVE_TOKEN = (
    "wx1234567890abcdef", "s" * 32, "1900000109", "k" * 32, "t" * 40)


@pytest.fixture
async def wechat() -> AsyncIterator[tuple[Simulator, str]]:
    """A standalone simulated WeChat that knows the live test merchant."""
    sim = Simulator(SimConfig(apps=(SimApp(LIVE_APPID, LIVE_SECRET),),
                              merchants=(SimMerchant(LIVE_MCH, LIVE_KEY, (LIVE_APPID,)),)))
    sock, port = bind_unused_port()
    server = HTTPServer(make_app(sim))
    server.add_sockets([sock])
    await sim.start()
    try:
        yield sim, f"http://127.0.0.1:{port}"
    finally:
        await sim.stop()
        server.stop()
        await server.close_all_connections()


async def test_live_mode_shows_the_shop_name_on_the_page_and_in_wechat(tmp_path, wechat):
    sim, base = wechat
    live = await start_live(tmp_path, **{"shop.name": SHOP, "wechat.pay_base": base, "wechat.api_base": base,
                                         "wechat.open_base": base})
    try:
        url = f"http://127.0.0.1:{live.port}"
        merchant = Browser(url)
        merchant.token_headers = {"Authorization": f"Bearer {LIVE_TOKEN}"}  # type: ignore[attr-defined]
        checkout = await create_checkout(merchant, 1800)
        desktop = Browser(url, DESKTOP_UA)
        page = await desktop.get(f"/pay/{checkout['id']}")
        assert page.code == 200
        text = page.body.decode()
        assert f'<p class="merchant">{xhtml_escape(SHOP)}</p>' in text and "Demo shop" not in text
        assert "/_sandbox/" not in text and 'class="badge"' not in text  # no sandbox bridge or badge live
        native = as_json(await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
        order = sim.pay.order(LIVE_MCH, native["out_trade_no"])
        assert order.body == f"{SHOP}-Green tea"  # what WeChat's sheet and payment record show
        phone = Browser(url, MOBILE_UA)
        await phone.get(f"/pay/{checkout['id']}")
        mweb = as_json(await phone.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
        h5 = sim.pay.order(LIVE_MCH, mweb["out_trade_no"])
        assert json.loads(h5.scene_info)["h5_info"]["wap_name"] == SHOP and h5.body == f"{SHOP}-Green tea"
    finally:
        await live.stop(grace=1)


async def test_sandbox_sends_the_configured_name_too(tmp_path):
    running = await start_server(tmp_path, **{"shop.name": "茶馆"})
    try:
        url = f"http://127.0.0.1:{running.port}"
        merchant = Browser(url)
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}  # type: ignore[attr-defined]
        checkout = await create_checkout(merchant, 100, description="茶馆-龙井")
        desktop = Browser(url, DESKTOP_UA)
        await desktop.get(f"/pay/{checkout['id']}")
        native = as_json(await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
        assert running.simulator.pay.order(running.settings.wechat.mch_id, native["out_trade_no"]).body == "茶馆-龙井"
    finally:
        await running.stop(grace=1)
