"""Trust that WeChat rotates, kept in the store and refreshed by one process at a time.

Two "processes" (their own gateway, keeper and lease holder) share a real
SQLite file. The gateway here is a stand-in, to control what WeChat offers
and count downloads: the real APIv2 gateway with the contract's trust
methods filled in (a list of certificate serials, a download counter); say
so in its name. The real APIv3 gateway in two real server processes:
tests/server/test_multiprocess.py. APIv2 itself keeps nothing, which the
last test checks on the real one.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Mapping

from service.trust import TrustKeeper
from store.leases import Leases
from store.open import INDEXES
from store.sqlite import SQLiteStore
from wxpay.client import WxPayClient
from wxpay.endpoints import Endpoints
from wxpay.errors import ConfigError, TransportError
from wxpay.merchant import Merchant
from wxpay.v2_gateway import V2Gateway


def unused_client() -> WxPayClient:
    """Keeping trust asks WeChat nothing through the order API."""
    return WxPayClient(Merchant("1900000109", "k" * 32, "wx1"), endpoints=Endpoints.single("http://127.0.0.1:9"))


def v2_gateway() -> V2Gateway:
    return V2Gateway(unused_client())


class StandInV3Trust(V2Gateway):
    """Stand-in for an APIv3 gateway's trust (no APIv3 gateway exists yet): serials it trusts."""

    def __init__(self, wechat_serials: list[str]) -> None:
        super().__init__(unused_client())
        self.wechat = wechat_serials  # what WeChat offers now
        self.trusted: set[str] = set()
        self.downloads = 0
        self.failing = False

    def keeps_trust(self) -> bool:
        return True

    def trust_state(self) -> Mapping[str, Any] | None:
        return {"version": 1, "serials": sorted(self.trusted)} if self.trusted else None

    def load_trust_state(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != 1:
            raise ConfigError("not version 1")
        self.trusted |= set(state["serials"])

    def trust_refresh_due(self) -> bool:
        return not set(self.wechat) <= self.trusted

    async def refresh_trust(self) -> Mapping[str, Any] | None:
        self.downloads += 1
        await asyncio.sleep(0.05)  # WeChat takes a moment: long enough for the other process to try
        if self.failing:
            raise TransportError("WeChat unreachable")
        self.trusted |= set(self.wechat)
        return self.trust_state()


async def two_processes(tmp_path, serials: list[str]):
    stores = [SQLiteStore(tmp_path / "shared.sqlite3") for _ in range(2)]
    for store in stores:
        await store.open(INDEXES)
    gateways = [StandInV3Trust(serials), StandInV3Trust(serials)]
    keepers = [TrustKeeper(s, Leases(s), g, holder=f"proc-{n}") for n, (s, g) in enumerate(zip(stores, gateways))]
    return stores, gateways, keepers


async def test_one_process_downloads_and_every_process_trusts_it(tmp_path):
    stores, (a, b), (ka, kb) = await two_processes(tmp_path, ["SERIAL-1"])
    try:
        done = await asyncio.gather(ka.refresh_if_due(), kb.refresh_if_due())
        assert sorted(done) == [False, True] and a.downloads + b.downloads == 1  # one download, under the lease
        await kb.load()
        await ka.load()
        assert a.trusted == b.trusted == {"SERIAL-1"}
        # WeChat rotates: the next round downloads once more, and both trust the new serial.
        a.wechat.append("SERIAL-2")
        b.wechat.append("SERIAL-2")
        assert await ka.refresh_if_due() and not await kb.refresh_if_due()  # b loads a's result instead
        assert b.trusted == {"SERIAL-1", "SERIAL-2"} and (a.downloads, b.downloads) in ((2, 0), (1, 1))
    finally:
        for store in stores:
            await store.close()


async def test_processes_starting_together_download_once_and_both_trust_it(tmp_path):
    """At start the process that loses the lease waits for the winner's download
    (bounded) instead of serving notifies it cannot verify, or downloading too."""
    stores, (a, b), (ka, kb) = await two_processes(tmp_path, ["SERIAL-1"])
    try:
        await asyncio.gather(ka.start(), kb.start())
        assert a.downloads + b.downloads == 1
        assert a.trusted == b.trusted == {"SERIAL-1"}
    finally:
        for store in stores:
            await store.close()


async def test_what_one_process_learnt_outside_a_refresh_is_shared_at_its_next_round(tmp_path):
    """The gateway may download once on its own (a reply naming an unknown certificate):
    the next round saves it, only adding to what is stored, and the others load it."""
    stores, (a, b), (ka, kb) = await two_processes(tmp_path, ["SERIAL-1"])
    try:
        await asyncio.gather(ka.start(), kb.start())
        a.trusted.add("SERIAL-2")  # learnt by process a's own call
        assert not await ka.refresh_if_due()  # nothing due, but what it learnt is saved
        await kb.load()
        assert b.trusted == {"SERIAL-1", "SERIAL-2"} and a.downloads + b.downloads == 1
        saved = (await stores[0].get("trust", ka.key))["saved_at"]
        assert not await kb.refresh_if_due() and not await ka.refresh_if_due()
        assert (await stores[0].get("trust", ka.key))["saved_at"] == saved  # nothing new: no write
    finally:
        for store in stores:
            await store.close()


async def test_a_failed_refresh_keeps_what_was_trusted_and_the_loop_goes_on(tmp_path, caplog):
    stores, (a, _b), (ka, _kb) = await two_processes(tmp_path, ["SERIAL-1"])
    try:
        assert await ka.refresh_if_due()
        a.wechat.append("SERIAL-2")
        a.failing = True
        ka.interval = timedelta(seconds=0.01)
        stop = asyncio.Event()
        loop = asyncio.ensure_future(ka.run_forever(stop))
        for _ in range(200):  # bounded: two failed rounds at most a few hundred ms apart
            if a.downloads >= 3:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(loop, 5)
        assert a.downloads >= 3 and a.trusted == {"SERIAL-1"}
        assert "WeChat trust refresh failed (wechat_unreachable" in caplog.text
        assert (await stores[0].get("trust", ka.key))["state"]["serials"] == ["SERIAL-1"]
    finally:
        for store in stores:
            await store.close()


async def test_apiv2_keeps_nothing(tmp_path):
    store = SQLiteStore(tmp_path / "v2.sqlite3")
    await store.open(INDEXES)
    try:
        keeper = TrustKeeper(store, Leases(store), v2_gateway(), holder="proc-0")
        assert not keeper.keeps_state and not await keeper.refresh_if_due()
        assert await store.find("trust", {}, limit=0) == [] and await store.find("leases", {}, limit=0) == []
    finally:
        await store.close()
