"""The payment journey with the server on the MongoDB store.

Here MongoDB is the in-process emulator (no server can be installed on these
machines: the test id says `emulated`); wherever MONGODB_URI is set the same
test also runs against the real server (`mongo_real`).
"""
from __future__ import annotations

import pytest
from tornado.testing import bind_unused_port

import server
from tests.store.conftest import BACKENDS, drop_store, make_store

from .browser import Browser, as_json
from .conftest import sandbox_settings
from .journey import create_checkout, pay_in_simulator, prepay, sign_in_with_wechat, wait_status

MONGO_BACKENDS = [p for p in BACKENDS if p.values[0] != "sqlite"]


@pytest.mark.parametrize("kind", MONGO_BACKENDS)
async def test_journey_and_reconciler_on_mongo(tmp_path, kind):
    store, handle = await make_store(kind, tmp_path)
    sock, _ = bind_unused_port()
    running = await server.start(sandbox_settings(tmp_path), sockets=[sock], store=store)
    try:
        assert running.services.store.backend == "mongo"
        base = f"http://127.0.0.1:{running.port}"
        merchant = Browser(base)
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}
        # Paid through the notify ...
        checkout = await create_checkout(merchant, 2500)
        shopper, _ = await sign_in_with_wechat(base, checkout["pay_url"])
        result = await prepay(shopper, checkout["id"])
        await pay_in_simulator(shopper, result["bridge"])
        await wait_status(shopper, checkout["id"], "paid")
        # ... and through the reconciler when the notify is lost.
        await merchant.post("/_wechat/_sim/faults", json_body={"endpoint": "notify", "kind": "drop", "count": None})
        second = await create_checkout(merchant, 300)
        result2 = await prepay(shopper, second["id"])
        await pay_in_simulator(shopper, result2["bridge"])
        order = await running.services.orders.require(result2["out_trade_no"])
        await running.services.lifecycle.touch_order(order, next_check_at=running.services.now())
        report = await running.services.reconciler.run_once()
        assert report.paid == 1
        listed = as_json(await merchant.get("/api/checkouts?status=paid", headers=merchant.token_headers))
        assert {c["id"] for c in listed["items"]} == {checkout["id"], second["id"]}
    finally:
        await running.stop(grace=1)
        await drop_store(kind, store, handle)
