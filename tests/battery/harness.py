"""Shared parts of the battery: a sandbox server with its own secrets,
store snapshots, signed notifies built like WeChat builds them, bounded
concurrency."""
from __future__ import annotations

import asyncio
import secrets
from typing import Any, Awaitable, Callable, Iterable

from tornado.testing import bind_unused_port

import server
from config import load_settings
from service.models import CHECKOUTS, ORDERS, OUTBOX, REFUNDS
from tests.server.browser import Browser, as_json
from wxpay import signing
from wxpay.xmlcodec import build_xml

from . import logwatch

STATE_COLLECTIONS = (CHECKOUTS, ORDERS, REFUNDS, OUTBOX)


def battery_secrets() -> dict[str, str]:
    """Fresh secrets per server, so a leak can be told from a coincidence."""
    return {
        "wechat.api_key": "Bk" + secrets.token_hex(15),  # 32 characters, like an APIv2 key
        "wechat.app_secret": secrets.token_hex(16),
        "server.cookie_secret": secrets.token_urlsafe(32),
        "admin.password": "adm-" + secrets.token_urlsafe(12),
        "merchant_api.tokens": ["mt-" + secrets.token_urlsafe(18)],
    }


def register_secrets(values: dict[str, Any]) -> None:
    for name, value in values.items():
        for v in value if isinstance(value, list) else [value]:
            logwatch.secret(v, name)


def register_v3_demo_secrets() -> None:
    """APIv3 servers here use the demo merchant's TEST-ONLY keys (the simulator knows no
    others): public, but a server must still never log or echo them."""
    from wxpay.simulator import demo

    logwatch.secret(demo.APIV3_KEY, "wechat.apiv3_key (demo, TEST-ONLY)")
    logwatch.secret(demo.v3_pem("apiclient_key.pem").splitlines()[1], "wechat.key_path's private key (demo, TEST-ONLY)")


def settings_for(tmp_path, **overrides: Any):
    values = {
        "store.sqlite_path": str(tmp_path / "wxpay.sqlite3"),
        "simulator.notify_time_scale": 1000.0,
        "reconciler.enabled": False,
        **battery_secrets(),
        **overrides,
    }
    register_secrets({k: v for k, v in values.items() if k in battery_secrets()})
    if values.get("wechat.api_version") == "v3":
        register_v3_demo_secrets()
    return load_settings(None, env={}, overrides=values)


async def start_server(tmp_path, *, store=None, **overrides: Any) -> server.Running:
    sock, _port = bind_unused_port()
    return await server.start(settings_for(tmp_path, **overrides), sockets=[sock], store=store)


def browser(base: str, user_agent: str | None = None) -> Browser:
    """A Browser with its own HTTP client: Tornado's shared one has 10 slots,
    which would quietly cap "100 in flight" at 10."""
    from tornado.httpclient import AsyncHTTPClient

    b = Browser(base, user_agent) if user_agent else Browser(base)
    b.client = AsyncHTTPClient(force_instance=True, max_clients=200)
    return b


class Client:
    """The battery's view of one running server: merchant, shopper, simulator."""

    def __init__(self, running: server.Running | None, *, base: str = "", token: str = "", api_key: str = "",
                 sim_base: str = "") -> None:
        self.running = running
        if running is not None:
            s = running.settings
            base, token, api_key = f"http://127.0.0.1:{running.port}", s.merchant_api.tokens[0], s.wechat.api_key
            sim_base = base + "/_wechat"
        self.base, self.token, self.api_key, self.sim_base = base, token, api_key, sim_base
        self.merchant = browser(self.base)
        self.auth = {"Authorization": f"Bearer {self.token}"}

    @classmethod
    def remote(cls, port: int, env: dict[str, str], sim_base: str) -> "Client":
        from wxpay.simulator import demo

        return cls(None, base=f"http://127.0.0.1:{port}", token=env["WXPAY_MERCHANT_API_TOKENS"],
                   api_key=demo.API_KEY, sim_base=sim_base)

    @property
    def store(self):
        return self.running.services.store

    async def checkout(self, amount: int = 1234, **extra: Any) -> dict:
        r = await self.merchant.post(
            "/api/checkouts", json_body={"amount_fen": amount, "description": "Battery tea", **extra}, headers=self.auth
        )
        assert r.code == 201, r.body
        return as_json(r)

    async def native_prepay(self, checkout_id: str) -> tuple[Browser, dict]:
        desktop = browser(self.base)
        await desktop.get(f"/pay/{checkout_id}")
        r = await desktop.post(f"/pay/{checkout_id}/prepay", json_body={}, xsrf=True)
        assert r.code == 200, r.body
        return desktop, as_json(r)

    async def sim(self, method: str, path: str, body: Any = None):
        return await self.merchant.request(method, f"{self.sim_base}/_sim/{path}", json_body=body)

    async def fault(self, **fault: Any) -> None:
        r = await self.sim("POST", "faults", fault)
        assert r.code == 200, r.body

    async def clear_faults(self, endpoint: str | None = None) -> None:
        query = f"?endpoint={endpoint}" if endpoint else ""
        r = await self.merchant.request("DELETE", f"{self.sim_base}/_sim/faults{query}")
        assert r.code == 200, r.body

    async def paid_at_wechat_only(self, amount: int = 1234) -> tuple[dict, dict]:
        """A checkout paid at the simulator whose notifies are all lost:
        WeChat holds a payment the store has not heard of yet. The drop
        stays on, so WeChat's own retries cannot race the test's notifies."""
        checkout = await self.checkout(amount)
        desktop, result = await self.native_prepay(checkout["id"])
        await self.fault(endpoint="notify", kind="drop", count=None)
        r = await self.sim("POST", "scan", {"code_url": result["code_url"], "outcome": "ok"})
        assert r.code == 200, r.body
        sim_order = as_json(await self.sim("GET", f"orders/{result['out_trade_no']}"))
        return checkout, {**result, "sim": sim_order}

    def notify_fields(self, sim_order: dict, **changes: Any) -> dict[str, Any]:
        """The payment notify WeChat sends for ``sim_order`` (unsigned)."""
        order = sim_order.get("order", sim_order)
        fields = {
            "appid": order["appid"], "mch_id": order["mch_id"], "nonce_str": signing.make_nonce(),
            "result_code": "SUCCESS", "return_code": "SUCCESS", "openid": order.get("openid") or "oSimUser",
            "is_subscribe": "N", "trade_type": order["trade_type"], "bank_type": order.get("bank_type") or "OTHERS",
            "total_fee": str(order["total_fee"]), "fee_type": "CNY", "cash_fee": str(order["total_fee"]),
            "transaction_id": order["transaction_id"], "out_trade_no": order["out_trade_no"],
            "time_end": order.get("time_end") or "20260101120000",
        }
        fields.update(changes)
        return {k: v for k, v in fields.items() if v is not None}

    def signed_notify(self, sim_order: dict, *, key: str | None = None, sign_type: str = "MD5", **changes: Any) -> bytes:
        fields = self.notify_fields(sim_order, **changes)
        fields["sign"] = signing.sign(fields, key or self.api_key, sign_type)
        return build_xml(fields)

    async def notify(self, body: bytes, path: str = "/notify/pay", headers: dict[str, str] | None = None):
        """POST a notify as WeChat would (APIv2: XML; APIv3: pass its ``Wechatpay-*`` headers)."""
        return await self.merchant.client.fetch(
            self.base + path, method="POST", body=body, raise_error=False, request_timeout=60,
            headers=headers or {"Content-Type": "text/xml"},
        )


async def snapshot(store) -> dict[str, list[dict]]:
    """The business state (not the audit trail, which records attacks on purpose)."""
    out = {}
    for name in STATE_COLLECTIONS:
        docs = await store.find(name, {}, limit=0)
        out[name] = sorted((repr(sorted(d.items())) for d in docs))
    return out


async def bounded(factories: Iterable[Callable[[], Awaitable[Any]]], limit: int = 100) -> list[Any]:
    """Run coroutine factories with at most ``limit`` in flight; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(factory):
        async with gate:
            return await factory()

    return await asyncio.gather(*(one(f) for f in factories))


# -- real OS processes -----------------------------------------------------------------

SIM_SECRETS_NOTE = "a standalone simulator knows only the demo merchant, so process tests use its key"


def process_env(tmp_path, sim_base: str, **extra: str) -> dict[str, str]:
    """Environment of a server process on the shared SQLite file, talking to a
    standalone simulator; its own merchant token, cookie secret and admin password."""
    own = {
        "WXPAY_MERCHANT_API_TOKENS": "mt-" + secrets.token_urlsafe(18),
        "WXPAY_SERVER_COOKIE_SECRET": secrets.token_urlsafe(32),
        "WXPAY_ADMIN_PASSWORD": "adm-" + secrets.token_urlsafe(12),
    }
    for name, value in own.items():
        logwatch.secret(value, name)
    from wxpay.simulator import demo

    logwatch.secret(demo.API_KEY, "wechat.api_key (demo)")
    logwatch.secret(demo.OFFICIAL_ACCOUNT_SECRET, "wechat.app_secret (demo)")
    register_v3_demo_secrets()
    return {
        "WXPAY_STORE_SQLITE_PATH": str(tmp_path / "shared.sqlite3"),
        "WXPAY_WECHAT_PAY_BASE": sim_base,
        "WXPAY_WECHAT_API_BASE": sim_base,
        "WXPAY_WECHAT_OPEN_BASE": sim_base,
        "WXPAY_RECONCILER_ENABLED": "false",
        "WXPAY_LOG_LEVEL": "DEBUG",
        **own,
        **extra,
    }


class Procs:
    """A standalone simulator and server processes, stopped (or killed) at the end."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.procs: list = []
        self.sim_port = 0
        self.sim = None
        self.sim_base = ""
        self.counter = 0

    async def start_simulator(self, *, time_scale: float = 1000.0) -> str:
        from tests.server.processes import free_port, spawn, wait_http

        self.sim_port = free_port()
        self.sim = spawn(["-m", "wxpay.simulator", "--port", str(self.sim_port), "--notify-time-scale", str(time_scale)],
                         log_path=self.tmp_path / "sim.log")
        self.procs.append(self.sim)
        self.sim_base = f"http://127.0.0.1:{self.sim_port}"
        await wait_http(f"{self.sim_base}/_sim/", self.sim)
        return self.sim_base

    async def start_server(self, env: dict[str, str], port: int | None = None):
        from tests.server.processes import free_port, spawn, wait_http

        port = port or free_port()
        self.counter += 1
        log_path = self.tmp_path / f"server-{port}-{self.counter}.log"
        logwatch.add_file(log_path)
        proc = spawn(["server.py", "--port", str(port)], env, log_path=log_path)
        self.procs.append(proc)
        await wait_http(f"http://127.0.0.1:{port}/healthz", proc, tries=300)
        return proc, port

    def stop(self) -> None:
        from tests.server.processes import stop

        stop(*self.procs)
