"""A notify WeChat provably sent, while the store cannot be read, is never treated as an outsider's.

MongoDB on the emulator (no server can run here), switched off between the
notify's proof of origin and its order lookup. The limiter of unverified
notifies must not be asked about it (its guarantee: it can never refuse a
verified notify), so even with that budget spent it is answered as a store
outage, which WeChat retries, and it is not counted as a refusal of an
unproven notify on /status.
"""
from __future__ import annotations

from store.mongo import MongoStore
from wxpay.xmlcodec import parse_xml

from tests.battery.harness import Client, start_server
from tests.store.mongo_emulator import EmulatedMongoClient


async def test_a_proven_notify_during_a_store_outage_is_not_charged_to_the_unverified_budget(tmp_path):
    mongo = EmulatedMongoClient()
    running = await start_server(tmp_path, store=MongoStore(mongo, "outage"), **{"notify.refused_per_minute": 2})
    services = running.services
    try:
        client = Client(running)
        checkout, paid = await client.paid_at_wechat_only(5100)
        for _ in range(3):  # forged: the source's budget of unverified notifies is spent
            assert (await client.notify(client.signed_notify(paid["sim"], key="f" * 32))).code in (400, 429)
        unverified_before = dict(services.notify_limiter.totals)
        mongo.down = True
        try:
            r = await client.notify(client.signed_notify(paid["sim"]))
        finally:
            mongo.down = False
        fields = parse_xml(r.body, root="xml")
        assert (r.code, fields["return_code"], fields["return_msg"]) == (503, "FAIL", "temporarily unable to process")
        assert dict(services.notify_limiter.totals) == unverified_before
        assert (await client.notify(client.signed_notify(paid["sim"]))).code == 200
        assert (await services.checkouts.get(checkout["id"])).status == "paid"
    finally:
        await running.stop(grace=1)
