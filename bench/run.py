"""``make bench``: the server measured against the limits of its own stack.

Every figure is a ratio to something measured in the same run on the same
machine (a bare Tornado app, wechatpy), with the absolute number beside it,
because these machines are shared and noisy. Results go to
docs/BENCHMARKS.md (``--out``). Processes: the load generator (wrk), the
server(s), a standalone WeChat simulator and the bare Tornado app are all
separate OS processes talking over 127.0.0.1.

    .venv/bin/python bench/run.py            # about 4-5 minutes
    .venv/bin/python bench/run.py --quick    # under a minute, for a smoke check
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loadgen  # noqa: E402
import wechat_side  # noqa: E402
from loadgen import Result, fetch_all  # noqa: E402

from store.open import INDEXES, open_store  # noqa: E402
from wxpay.simulator import demo  # noqa: E402

TOKEN = "sandbox-merchant-token"
COOKIE_SECRET = "bench-cookie-secret-" + "x" * 24
WECHAT_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.40"
PEER_SECRET = "bench-peer-flask-secret-" + "y" * 24
# Per API version: the WeChat endpoint a prepay calls, the one a first-time notify calls
# (names as the simulator counts them at /_sim/calls), and the notify's success status.
UPSTREAM = {
    "v2": {"prepay": "pay/unifiedorder", "notify": "pay/orderquery", "notify_status": 200},
    "v3": {"prepay": "v3/pay/transactions/jsapi", "notify": "v3/pay/transactions/out-trade-no/{out_trade_no}",
           "notify_status": 204},
}


# ---- processes ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    port: int

    def rss_kb(self) -> int:
        try:
            for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def cpu_seconds(self) -> float:
        """user + system CPU time so far of the process and its live children (gunicorn's workers)."""
        return sum(_cpu_seconds(pid) for pid in (self.popen.pid, *_children(self.popen.pid)))

    def sched_seconds(self) -> tuple[float, float]:
        """Seconds its threads (and its children's) ran on a CPU, and seconds they were ready
        to run but waited for one (the scheduler's run queue), so far."""
        ran = waited = 0
        for pid in (self.popen.pid, *_children(self.popen.pid)):
            try:
                tasks = list(Path(f"/proc/{pid}/task").iterdir())
            except OSError:
                continue
            for task in tasks:
                try:
                    on_cpu, queued, _ = (task / "schedstat").read_text().split()
                except (OSError, ValueError):
                    continue
                ran, waited = ran + int(on_cpu), waited + int(queued)
        return ran / 1e9, waited / 1e9


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return out


# --pin: the process under test on one core, everything else (simulator, upstream app, wrk, the harness) on the other.
PIN_UNDER_TEST, PIN_REST = {0}, {1}


class Procs:
    """Every child process of the run, stopped at the end (by pid, ours only)."""

    def __init__(self, tmp: Path, pin: bool = False) -> None:
        self.tmp = tmp
        self.pin = pin
        self.all: list[Proc] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None, port: int = 0,
              under_test: bool = False) -> Proc:
        """``under_test``: the process a row measures (with --pin it gets its own core; its
        threads and forked workers inherit it)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WXPAY_", "MONGODB_"))}
        log = open(self.tmp / f"{name}.log", "wb")
        cpus = (PIN_UNDER_TEST if under_test else PIN_REST) if self.pin else None
        popen = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**base, **(env or {})},
                                 stdout=log, stderr=subprocess.STDOUT,
                                 preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        log.close()
        proc = Proc(name, popen, port)
        self.all.append(proc)
        return proc

    def place(self, proc: Proc, under_test: bool) -> None:
        """With --pin, move a running process (every thread) to the core of its new role."""
        if not self.pin:
            return
        for pid in (proc.popen.pid, *_children(proc.popen.pid)):
            for task in Path(f"/proc/{pid}/task").iterdir():
                os.sched_setaffinity(int(task.name), PIN_UNDER_TEST if under_test else PIN_REST)

    async def wait_http(self, proc: Proc, path: str = "/") -> None:
        for _ in range(300):
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited: {(self.tmp / (proc.name + '.log')).read_text()[-2000:]}")
            try:
                await fetch_all(proc.port, [("GET", path, {}, b"")], concurrency=1)
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{proc.name} never answered")

    def stop(self, *procs: Proc) -> None:
        for p in procs or tuple(self.all):
            if p.popen.poll() is None:
                p.popen.terminate()
        for p in procs or tuple(self.all):
            try:
                p.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()


def server_env(sim_port: int, *, sqlite: str | None = None, mongodb_uri: str | None = None, db: str = "") -> dict:
    base = f"http://127.0.0.1:{sim_port}"
    env = {
        "WXPAY_WECHAT_PAY_BASE": base, "WXPAY_WECHAT_API_BASE": base, "WXPAY_WECHAT_OPEN_BASE": base,
        "WXPAY_RECONCILER_ENABLED": "false", "WXPAY_SERVER_COOKIE_SECRET": COOKIE_SECRET,
        "WXPAY_CHECKOUT_ORDERS_PER_IP": "0",  # every virtual shopper comes from 127.0.0.1
    }
    if mongodb_uri:
        env["MONGODB_URI"] = mongodb_uri
        env["WXPAY_STORE_MONGODB_DATABASE"] = db
    else:
        env["WXPAY_STORE_SQLITE_PATH"] = sqlite or ""
    return env


# ---- the journey's set-up (not timed) ------------------------------------------


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for line in headers.get("set-cookie", "").split("\n"):
        if "=" in line:
            name, _, rest = line.partition("=")
            out[name.strip()] = rest.split(";", 1)[0]
    return out


async def shopper_session(server_port: int, sim_port: int, checkout_id: str) -> dict[str, str]:
    """Silent OAuth once, like a shopper inside WeChat: returns the prepay headers."""
    ua = {"User-Agent": WECHAT_UA}
    [(status, h, _)] = await fetch_all(server_port, [("GET", f"/pay/{checkout_id}", ua, b"")], 1)
    assert status == 302, status
    jar = _cookies(h)
    auth = urlsplit(h["location"])
    [(status, h, _)] = await fetch_all(sim_port, [("GET", f"{auth.path}?{auth.query}", ua, b"")], 1)
    assert status == 302, status
    back = urlsplit(h["location"])
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    [(status, h, _)] = await fetch_all(
        server_port, [("GET", f"{back.path}?{back.query}", {**ua, "Cookie": cookie}, b"")], 1)
    assert status == 302, status
    jar.update(_cookies(h))
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items() if k == "wx_openid")
    [(status, h, _)] = await fetch_all(server_port, [("GET", f"/pay/{checkout_id}", {**ua, "Cookie": cookie}, b"")], 1)
    assert status == 200, status
    xsrf = _cookies(h)["_xsrf"]
    return {"User-Agent": WECHAT_UA, "Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf,
            "Content-Type": "application/json"}


async def create_checkouts(port: int, n: int, tag: str) -> tuple[list[str], float]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    items = [("POST", "/api/checkouts", headers, json.dumps(
        {"amount_fen": 100 + i % 900, "description": "Bench tea", "merchant_reference": f"{tag}-{i}"}))
        for i in range(n)]
    t0 = time.perf_counter()
    replies = await fetch_all(port, items, concurrency=16)
    seconds = time.perf_counter() - t0
    bad = [r for r in replies if r[0] != 201]
    if bad:
        raise RuntimeError(f"checkout creation failed: {bad[0][0]} {bad[0][2][:200]!r}")
    return [json.loads(r[2])["id"] for r in replies], n / seconds


def notify_for(version: str, order: dict[str, Any], transaction_id: str) -> tuple:
    """One pool entry: the first-time notify WeChat would send for ``order`` (our store's document shape)."""
    facts = {"appid": order["appid"], "openid": order["openid"], "out_trade_no": order["_id"],
             "trade_type": order["trade_type"], "transaction_id": transaction_id}
    if version == "v3":
        body, headers = wechat_side.v3_notify(mchid=order["mch_id"], total=order["total_fee"], **facts)
        return ("POST", "/notify/pay", body, headers)
    return ("POST", "/notify/pay", wechat_side.v2_notify(
        mch_id=order["mch_id"], total_fee=order["total_fee"], sign_type=order.get("sign_type") or "MD5", **facts))


async def pay_orders(sim_port: int, orders: list[dict[str, Any]], version: str) -> list[tuple]:
    """Every prepaid order is paid by its shopper at the simulator; the notifies WeChat
    would send are returned as pool entries (the simulator's own are dropped)."""
    items = [("POST", "/_sim/pay", {"Content-Type": "application/json"},
              json.dumps({"prepay_id": o["prepay_id"], "outcome": "ok"})) for o in orders]
    replies = await fetch_all(sim_port, items, concurrency=8)
    pool = []
    for order, (status, _, body) in zip(orders, replies):
        reply = json.loads(body) if status == 200 else {}
        if reply.get("trade_state") == "SUCCESS" and reply.get("transaction_id"):
            pool.append(notify_for(version, order, reply["transaction_id"]))
    return pool


async def pay_at_simulator(sim_port: int, store_args: dict[str, Any], checkout_ids: set[str],
                           version: str = "v2") -> list[tuple]:
    """This journey's prepaid orders in our store, paid at the simulator (see ``pay_orders``)."""
    store = open_store(store_args.get("mongodb_uri"), sqlite_path=store_args.get("sqlite_path"),
                       database=store_args.get("database") or "wxpay")
    await store.open(INDEXES)
    try:
        orders = [o for o in await store.find("orders", {"state": "prepaid"}, limit=0)
                  if o["checkout_id"] in checkout_ids]  # this journey's only
    finally:
        await store.close()
    return await pay_orders(sim_port, orders, version)


async def sim_calls(sim_port: int) -> dict[str, int]:
    [(_, _, body)] = await fetch_all(sim_port, [("GET", "/_sim/calls", {}, b"")], 1)
    return json.loads(body)["calls"]


async def count_paid(store_args: dict[str, Any]) -> int:
    store = open_store(store_args.get("mongodb_uri"), sqlite_path=store_args.get("sqlite_path"),
                       database=store_args.get("database") or "wxpay")
    await store.open(INDEXES)
    try:
        return await store.count("orders", {"state": "paid"})
    finally:
        await store.close()


# ---- scenarios -----------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    procs: Procs
    gen: Callable[..., Result]
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    profiled: list[Proc] = field(default_factory=list)

    def load(self, port: int, pool: list, **kw: Any) -> Result:
        # A pool sent once (limit) ends with its last answer; --pool-seconds only caps it.
        kw.setdefault("duration", self.args.pool_seconds if kw.get("limit") else self.args.duration)
        kw.setdefault("connections", self.args.connections)
        return self.gen(port, pool, tmpdir=str(self.tmp), **kw)

    async def timed(self, name: str, servers: list[Proc], sim: Proc | None, run: Any, upstream: str = "") -> Result:
        """Run one scenario; note the CPU the servers and the simulator spent per answer and,
        with ``upstream``, how many calls that WeChat endpoint got at the simulator meanwhile."""
        watched = servers + ([sim] if sim else [])
        calls = await sim_calls(sim.port) if sim and upstream else {}
        before = [p.cpu_seconds() for p in watched]
        with self.profile(name, watched):
            sched, t0 = [p.sched_seconds() for p in watched], time.perf_counter()
            result = await run
            wall = time.perf_counter() - t0
            sched = [(a - ran, b - waited) for (a, b), (ran, waited) in zip((p.sched_seconds() for p in watched), sched)]
        spent = [p.cpu_seconds() - b for p, b in zip(watched, before)]
        # Where the wall time went, as shares of it: on a CPU, or ready to run but waiting
        # for one (other work on the machine); the rest a thread slept (I/O, a timer, a lock).
        for key, (ran, waited) in [("server", sched[0])] + ([("sim", sched[-1])] if sim else []):
            result.extra[f"{key}_on_cpu"] = ran / wall
            result.extra[f"{key}_cpu_wait"] = waited / wall
        if sim and upstream:
            result.extra["upstream_calls"] = (await sim_calls(sim.port)).get(upstream, 0) - calls.get(upstream, 0)
        n = max(1, result.requests)
        result.extra["server_cpu_ms"] = sum(spent[: len(servers)]) * 1000 / n
        if sim:
            result.extra["sim_cpu_ms"] = spent[-1] * 1000 / n
        return result

    @contextmanager
    def profile(self, name: str, procs: list[Proc]) -> Iterator[None]:
        """With --profile DIR: py-spy samples ``procs`` during one scenario (collapsed stacks)."""
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) if self.args.profile else None
        spies = []
        if spy:
            Path(self.args.profile).mkdir(parents=True, exist_ok=True)
            for p in procs:
                out = Path(self.args.profile) / f"{name}-{p.name}.txt"
                spies.append(subprocess.Popen(
                    [spy, "record", "--gil", "--pid", str(p.popen.pid), "-f", "raw", "-r", "200", "-o", str(out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.5)
        try:
            yield
        finally:
            for s in spies:
                s.send_signal(signal.SIGINT)
            for s in spies:
                s.wait(timeout=30)

    async def loads(self, ports: list[int], pools: list[list], **kw: Any) -> Result:
        """One generator per server process, at once; rates add up."""
        if len(ports) == 1:
            return self.load(ports[0], pools[0], **kw)
        results = await asyncio.gather(*(asyncio.to_thread(self.load, p, pool, **kw) for p, pool in zip(ports, pools)))
        seconds = max(r.seconds for r in results)
        return Result(
            requests=sum(r.requests for r in results), seconds=seconds,
            p50_ms=max(r.p50_ms for r in results), p90_ms=max(r.p90_ms for r in results),
            p99_ms=max(r.p99_ms for r in results), max_ms=max(r.max_ms for r in results),
            bad=sum(r.bad for r in results), socket_errors=sum(r.socket_errors for r in results),
            sample=next((r.sample for r in results if r.sample), ""), tool=results[0].tool,
            connections=sum(r.connections for r in results),
        )

    async def start_sim(self, name: str) -> Proc:
        port = free_port()
        sim = self.procs.spawn(name, ["-m", "wxpay.simulator", "--port", str(port)], port=port)
        await self.procs.wait_http(sim, "/_sim/")
        # WeChat's own notifies are lost on the way: the bench replays them itself.
        await fetch_all(port, [("POST", "/_sim/faults", {"Content-Type": "application/json"},
                                json.dumps({"endpoint": "notify", "kind": "drop", "count": None}))], 1)
        return sim

    async def relay_to_sim(self, name: str, sim: Proc, version: str = "v2") -> Result:
        """The relay whose one upstream call is the real query a first-time notify makes at the
        simulator (V2 ``pay/orderquery``, V3 query by out_trade_no; signed once, of an order paid
        there): the ceiling with our server's own upstream, the simulator's CPU included."""
        request = self.tmp / f"{name}.json"  # signed now: a V3 signature holds for 300 s
        request.write_text(json.dumps((await wechat_side.upstream_queries(sim.port, secrets.token_hex(4)))[version]))
        port = free_port()
        relay = self.procs.spawn(name, [str(ROOT / "bench" / "hello.py"), str(port), str(sim.port), str(request)],
                                 port=port, under_test=True)
        try:
            await self.procs.wait_http(relay)
            return await self.timed(name, [relay], sim, asyncio.to_thread(self.load, port, [("GET", "/relay", "")]),
                                    upstream=UPSTREAM[version]["notify"])
        finally:
            self.procs.stop(relay)

    async def start_servers(self, name: str, n: int, env: dict[str, str]) -> list[Proc]:
        servers = []
        for i in range(n):
            port = free_port()
            servers.append(self.procs.spawn(f"{name}{i}", ["server.py", "--port", str(port)], env, port=port,
                                            under_test=True))
        for s in servers:
            await self.procs.wait_http(s, "/healthz")
        return servers

    async def journey(self, label: str, servers: list[Proc], sim: Proc, store_args: dict, *, full: bool,
                      version: str = "v2") -> dict:
        """Checkouts → prepay → paid at the simulator → first-time notifies
        (→ duplicates, status polls when ``full``) against ``servers``, on APIv2 or APIv3
        (the servers' ``wechat.api_version``)."""
        ports = [s.port for s in servers]
        up = UPSTREAM[version]
        out: dict[str, Any] = {"version": version}
        n = self.args.orders
        ids, out["checkout_create_rate"] = await create_checkouts(ports[0], n, f"{label}-{secrets.token_hex(3)}")
        session = await shopper_session(ports[0], sim.port, ids[0])
        share = [ids[i::len(ports)] for i in range(len(ports))]
        pools = [[("POST", f"/pay/{cid}/prepay", '{"trade_type":"JSAPI"}') for cid in part] for part in share]
        out["prepay"] = await self.timed(f"{label}-prepay", servers, sim,
                                         self.loads(ports, pools, headers=session, limit=True), upstream=up["prepay"])
        t0 = time.perf_counter()
        notifies = await pay_at_simulator(sim.port, store_args, set(ids), version)
        out["paid_at_sim"] = len(notifies)
        out["pay_at_sim_seconds"] = time.perf_counter() - t0
        paid_before = await count_paid(store_args)
        xml = {"Content-Type": "text/xml"}
        pools = [notifies[i::len(ports)] for i in range(len(ports))]
        out["notify"] = await self.timed(f"{label}-notify", servers, sim,
                                         self.loads(ports, pools, headers=xml, limit=True, expect=up["notify_status"]),
                                         upstream=up["notify"])
        out["notify_paid_in_store"] = await count_paid(store_args) - paid_before
        if full:
            out["duplicate"] = await self.timed(f"{label}-duplicate", servers, None, self.loads(
                ports, [notifies] * len(ports), headers=xml, expect=up["notify_status"]))
            pool = [("GET", f"/pay/{cid}/status", "") for cid in ids]
            out["status"] = await self.timed(f"{label}-status", servers, None, self.loads(ports, [pool] * len(ports)))
        out["server_rss_kb"] = [s.rss_kb() for s in servers]
        return out

    async def start_peer(self, name: str, sim: Proc, version: str, worker: str) -> tuple[Proc, Path]:
        """The peer app (bench/peer/) under gunicorn, one worker process like our one server process."""
        port = free_port()
        config_file, db = hand_config(self.tmp, name, sim.port, version, port)
        workers = ["-k", "sync"] if worker == "sync" else ["-k", "gthread", "--threads", str(self.args.peer_threads)]
        peer = self.procs.spawn(name, ["-m", "gunicorn", "--chdir", str(ROOT / "bench" / "peer"), "-w", "1", *workers,
                                       "-b", f"127.0.0.1:{port}", "app:app"], {"PEER_CONFIG": str(config_file)},
                                port=port, under_test=True)
        await self.procs.wait_http(peer, "/healthz")
        return peer, db

    async def start_floor(self, name: str, sim: Proc, version: str) -> tuple[Proc, Path]:
        """The floor (bench/floor.py): one bare Tornado process doing only the mandatory work."""
        port = free_port()
        config_file, db = hand_config(self.tmp, name, sim.port, version, port)
        floor = self.procs.spawn(name, [str(ROOT / "bench" / "floor.py"), str(port)],
                                 {"FLOOR_CONFIG": str(config_file)}, port=port, under_test=True)
        await self.procs.wait_http(floor, "/healthz")
        return floor, db

    async def peer_journey(self, label: str, sim: Proc, version: str, worker: str) -> dict:
        """The peer's journey (see ``hand_journey``)."""
        peer, db = await self.start_peer(label, sim, version, worker)
        out: dict[str, Any] = {"version": version, "worker": worker,
                               "threads": self.args.peer_threads if worker == "gthread" else 1}
        return await self.hand_journey(label, peer, db, sim, out, lambda o: "session=" + peer_session_cookie(o))

    async def floor_journey(self, label: str, sim: Proc, version: str) -> dict:
        """The floor's journey (see ``hand_journey``)."""
        floor, db = await self.start_floor(label, sim, version)
        return await self.hand_journey(label, floor, db, sim, {"version": version}, floor_session_cookie)

    async def hand_journey(self, label: str, app: Proc, db: Path, sim: Proc, out: dict[str, Any],
                           cookie: Callable[[str], str]) -> dict:
        """The same journey on an app with its own order table (the peer, the floor): orders in its
        SQLite file → prepay → paid at the simulator → first-time notifies; the same pool sizes,
        generator and simulator as ours. ``cookie`` is the app's own signed sign-in for an openid."""
        version = out["version"]
        up = UPSTREAM[version]
        try:
            tag = secrets.token_hex(3)
            ids = [f"{label.replace('-', '')[:8]}{tag}{i:06d}" for i in range(self.args.orders)]
            with sqlite3.connect(db) as conn:  # the shop created these orders earlier (not timed)
                conn.executemany("INSERT INTO orders (id, amount_fen, description) VALUES (?, ?, ?)",
                                 [(oid, 100 + i % 900, "Bench tea") for i, oid in enumerate(ids)])
            conn.close()
            openid = await wechat_side.openid_at_simulator(sim.port, f"{label}-{tag}")
            session = {"Cookie": cookie(openid), "Content-Type": "application/json", "User-Agent": WECHAT_UA}
            pool = [("POST", f"/pay/{oid}/prepay", '{"trade_type":"JSAPI"}') for oid in ids]
            out["prepay"] = await self.timed(f"{label}-prepay", [app], sim,
                                             self.loads([app.port], [pool], headers=session, limit=True),
                                             upstream=up["prepay"])
            orders = [{"_id": oid, "appid": demo.OFFICIAL_ACCOUNT_APPID, "mch_id": demo.MCH_ID, "openid": openid,
                       "trade_type": "JSAPI", "total_fee": amount, "prepay_id": prepay_id}
                      for oid, amount, prepay_id in peer_rows(db, "SELECT id, amount_fen, prepay_id FROM orders "
                                                                  "WHERE state = 'prepaid'")]
            notifies = await pay_orders(sim.port, orders, version)
            path = f"/notify/{version}"
            notifies = [(m, path, *rest) for m, _, *rest in notifies]
            out["paid_at_sim"] = len(notifies)
            out["notify"] = await self.timed(
                f"{label}-notify", [app], sim,
                self.loads([app.port], [notifies], headers={"Content-Type": "text/xml"}, limit=True,
                           expect=up["notify_status"]), upstream=up["notify"])
            [(paid,)] = peer_rows(db, "SELECT count(*) FROM orders WHERE state = 'paid'")
            out["notify_paid_in_store"] = paid
            out["server_rss_kb"] = [app.rss_kb()]
        finally:
            self.procs.stop(app)
        return out


def peer_session_cookie(openid: str) -> str:
    """Flask's own signed session cookie, as the peer's OAuth callback would have set it."""
    from flask import Flask

    app = Flask("peer")
    app.secret_key = PEER_SECRET
    return app.session_interface.get_signing_serializer(app).dumps({"openid": openid})


def hand_config(tmp: Path, name: str, sim_port: int, version: str, port: int) -> tuple[Path, Path]:
    """The settings file of an app that keeps its orders in its own SQLite file (the peer,
    the floor): the demo merchant's credentials, the simulator as WeChat; and that file."""
    db = tmp / f"{name}.sqlite3"
    creds = wechat_side.credentials()
    config = {
        "api_version": version, "database": str(db), "secret_key": PEER_SECRET,
        "wechat_base": f"http://127.0.0.1:{sim_port}", "public_url": f"http://127.0.0.1:{port}",
        "appid": creds["appids"]["official_account"], "mchid": creds["mchid"], "api_key": creds["apiv2_key"],
        "apiv3_key": creds["apiv3_key"], "merchant_serial_no": creds["merchant_serial_no"],
        "merchant_private_key_pem": creds["merchant_private_key_pem"],
        "wechatpay_public_key_id": creds["wechatpay_public_key_id"],
        "wechatpay_public_key_pem": creds["wechatpay_public_key_pem"],
    }
    config_file = tmp / f"{name}.json"
    config_file.write_text(json.dumps(config))
    return config_file, db


def floor_session_cookie(openid: str) -> str:
    """Tornado's signed cookie, as the floor's OAuth callback would have set it."""
    from tornado.web import create_signed_value

    return "openid=" + create_signed_value(PEER_SECRET, "openid", openid).decode()


def peer_rows(db: Path, query: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def machine() -> dict[str, Any]:
    import pymongo
    import tornado

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal:"))
    except (OSError, StopIteration):
        mem_kb = 0
    wrk = loadgen.wrk_path(install=False)
    wrk_version = ""
    if wrk:
        wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(), "cpu": model, "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(), "python": platform.python_version(), "tornado": tornado.version,
        "pymongo": pymongo.version, "wrk": wrk_version.strip(), "loadavg": os.getloadavg(),
        "peer_stack": _versions("flask", "gunicorn", "wechatpy", "wechatpayv3"),
    }


def _versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_library(quick: bool, smoke: bool = False) -> list[dict[str, Any]]:
    import bench_library

    if smoke:  # every row runs, briefly: figures meaningless
        return bench_library.measure(repeats=1, rounds=1, scale=0.02)
    return bench_library.measure(repeats=3 if quick else 7, rounds=1 if quick else 3)


def run_memory(payments: int, version: str, warmup: int | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "memory.py"), "--payments", str(payments),
         "--warmup", str(max(200, payments // 50) if warmup is None else warmup), "--api-version", version],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory run failed: {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def run_all(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    wrk = None if args.python_client else loadgen.wrk_path(install=True)
    if wrk:
        gen: Callable[..., Result] = lambda *a, **kw: loadgen.run_wrk(*a, wrk=wrk, **kw)  # noqa: E731
    else:
        gen = loadgen.run_python
    procs = Procs(tmp, pin=args.pin)
    bench = Bench(args, tmp, procs, gen)
    own_cpus = os.sched_getaffinity(0)
    if args.pin:  # wrk and the harness (and whatever they start) on the core that is not under test
        os.sched_setaffinity(0, PIN_REST)
    r = bench.results
    r["machine"] = machine()
    r["command"] = "bench/run.py " + shlex.join(sys.argv[1:])
    r["config"] = {"duration": args.duration, "connections": args.connections, "orders": args.orders,
                   "generator": "wrk" if wrk else "python", "quick": args.quick or args.smoke,
                   "smoke": args.smoke, "pin": {"under_test": sorted(PIN_UNDER_TEST), "rest": sorted(PIN_REST)}
                   if args.pin else None}
    started = time.perf_counter()
    try:
        hello_port = free_port()
        hello = procs.spawn("hello", [str(ROOT / "bench" / "hello.py"), str(hello_port)], port=hello_port,
                            under_test=True)
        await procs.wait_http(hello)
        r["hello"] = await bench.timed("hello", [hello], None, asyncio.to_thread(bench.load, hello_port, [("GET", "/", "")]))
        progress("hello", r["hello"])
        procs.place(hello, under_test=False)  # from here on the relay's upstream
        # The same bare app behind one upstream call: the ceiling for notify and prepay.
        relay_port = free_port()
        relay = procs.spawn("relay", [str(ROOT / "bench" / "hello.py"), str(relay_port), str(hello_port)],
                            port=relay_port, under_test=True)
        await procs.wait_http(relay)
        r["relay"] = await bench.timed("relay", [relay], hello,
                                       asyncio.to_thread(bench.load, relay_port, [("GET", "/relay", "")]))
        procs.stop(relay, hello)
        progress("relay", r["relay"])

        sim = await bench.start_sim("sim")
        # The same relay, its upstream call a real orderquery at the simulator: the ceiling with our upstream.
        r["relay_sim"] = await bench.relay_to_sim("relay-sim", sim, "v2")
        r["relay_sim_v3"] = await bench.relay_to_sim("relay-sim-v3", sim, "v3")
        progress("relay to the simulator", {"v2": r["relay_sim"], "v3": r["relay_sim_v3"]})
        sqlite_path = str(tmp / "one.sqlite3")
        [server] = await bench.start_servers("server", 1, server_env(sim.port, sqlite=sqlite_path))
        r["sqlite"] = await bench.journey("sqlite", [server], sim, {"sqlite_path": sqlite_path}, full=True)
        progress("sqlite", r["sqlite"])
        r["hello_again"] = None
        procs.stop(server)
        # Each peer right after our server on the same API, so drift touches both alike.
        r["peer"] = {}
        for worker in ([] if args.skip_peer else args.peer_workers):
            r["peer"][f"v2-{worker}"] = await bench.peer_journey(f"peer-v2-{worker}", sim, "v2", worker)
            progress(f"peer v2 {worker}", r["peer"][f"v2-{worker}"])
        r["floor"] = {}
        if not args.skip_floor:
            r["floor"]["v2"] = await bench.floor_journey("floor-v2", sim, "v2")
            progress("floor v2", r["floor"]["v2"])

        v3_path = str(tmp / "v3.sqlite3")
        [server] = await bench.start_servers("v3server", 1, {**server_env(sim.port, sqlite=v3_path),
                                                             "WXPAY_WECHAT_API_VERSION": "v3"})
        r["v3"] = await bench.journey("v3", [server], sim, {"sqlite_path": v3_path}, full=False, version="v3")
        progress("v3", r["v3"])
        procs.stop(server)
        for worker in ([] if args.skip_peer else args.peer_workers):
            r["peer"][f"v3-{worker}"] = await bench.peer_journey(f"peer-v3-{worker}", sim, "v3", worker)
            progress(f"peer v3 {worker}", r["peer"][f"v3-{worker}"])
        if not args.skip_floor:
            r["floor"]["v3"] = await bench.floor_journey("floor-v3", sim, "v3")
            progress("floor v3", r["floor"]["v3"])

        if not args.skip_scaling:
            shared = str(tmp / "shared.sqlite3")
            servers = await bench.start_servers("wal", 2, server_env(sim.port, sqlite=shared))
            # the 1-process baseline on a fresh file, so both start from an empty store
            r["scaling_1"] = await bench.journey("one", servers[:1], sim, {"sqlite_path": shared}, full=False)
            r["scaling_2"] = await bench.journey("two", servers, sim, {"sqlite_path": shared}, full=False)
            procs.stop(*servers)
            progress("scaling", r["scaling_2"])

        uri = os.environ.get("MONGODB_URI")
        if uri:
            db = "wxpay_bench_" + secrets.token_hex(4)
            [mongo_server] = await bench.start_servers("mongo", 1, server_env(sim.port, mongodb_uri=uri, db=db))
            r["mongo"] = await bench.journey("mongo", [mongo_server], sim, {"mongodb_uri": uri, "database": db},
                                             full=False)
            procs.stop(mongo_server)
            await drop_mongo(uri, db)
        if not args.smoke:  # the same rows as at the start (the smoke test keeps to seconds)
            r["relay_sim_again"] = await bench.relay_to_sim("relay-sim2", sim, "v2")
            r["relay_sim_v3_again"] = await bench.relay_to_sim("relay-sim-v3-2", sim, "v3")
            progress("relay to the simulator again", {"v2": r["relay_sim_again"], "v3": r["relay_sim_v3_again"]})
        procs.stop(sim)

        hello = procs.spawn("hello2", [str(ROOT / "bench" / "hello.py"), str(hello_port)], port=hello_port,
                            under_test=True)
        await procs.wait_http(hello)
        r["hello_again"] = await bench.timed("hello_again", [hello], None,
                                             asyncio.to_thread(bench.load, hello_port, [("GET", "/", "")]))
        procs.place(hello, under_test=False)
        relay = procs.spawn("relay2", [str(ROOT / "bench" / "hello.py"), str(relay_port), str(hello_port)],
                            port=relay_port, under_test=True)
        await procs.wait_http(relay)
        r["relay_again"] = await bench.timed("relay_again", [relay], hello,
                                             asyncio.to_thread(bench.load, relay_port, [("GET", "/relay", "")]))
        procs.stop(relay, hello)
        progress("hello, relay again", {"hello": r["hello_again"], "relay": r["relay_again"]})
    finally:
        procs.stop()
        os.sched_setaffinity(0, own_cpus)
    r["http_seconds"] = time.perf_counter() - started
    r["loadavg_end"] = os.getloadavg()
    if not args.skip_library:
        r["library"] = run_library(args.quick, args.smoke)
    if args.memory_payments:
        warmup = 10 if args.smoke else None
        r["memory"] = {version: run_memory(args.memory_payments, version, warmup) for version in ("v2", "v3")}
    r["total_seconds"] = time.perf_counter() - started
    return r


async def drop_mongo(uri: str, db: str) -> None:
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri)
    try:
        await client.drop_database(db)
    finally:
        await client.close()


def progress(name: str, value: Any) -> None:
    def short(v: Any) -> str:
        if not isinstance(v, Result):
            return str(v)
        cpu = "".join(f" {k} {x:.2f}" for k, x in v.extra.items())
        return f"{v.rate:,.0f}/s p99 {v.p99_ms:.1f} ms{cpu}"

    if isinstance(value, dict):
        text = ", ".join(f"{k} {short(v)}" for k, v in value.items() if isinstance(v, Result))
    else:
        text = short(value)
    print(f"[bench] {name}: {text}", file=sys.stderr, flush=True)


# ---- the report --------------------------------------------------------------------


def ensure_bench_requirements() -> None:
    """The peer rows need Flask and gunicorn (requirements-bench.txt), which `make bench`
    installs; a direct run installs them into this venv when they are missing."""
    try:
        import flask  # noqa: F401
        import gunicorn  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r",
                        str(ROOT / "requirements-bench.txt")], check=True)


def report(r: dict[str, Any]) -> str:
    import report as rep

    return rep.render(r)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (under a minute), for a smoke check")
    parser.add_argument("--smoke", action="store_true", help="every scenario once, tiny (seconds): for the test "
                        "that keeps the harness alive (tests/bench/); figures meaningless")
    parser.add_argument("--duration", type=float, help="seconds per timed scenario (default 10; quick 2)")
    parser.add_argument("--pool-seconds", type=float, help="cap on a pool sent once (prepays, first-time "
                        "notifies), which otherwise ends with its last answer (default: --duration)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--orders", type=int, help="checkouts (= first-time notifies) per journey (default 4000)")
    parser.add_argument("--payments", "--memory-payments", dest="memory_payments", type=int,
                        help="payments per API version for the memory rows (default 10000; the goal's "
                             "figure is --payments 100000, about 20 minutes more on 2 cores; 0 skips)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-library", action="store_true")
    parser.add_argument("--skip-peer", action="store_true", help="no peer rows (Flask + wechatpy/wechatpayv3)")
    parser.add_argument("--peer-workers", default="sync,gthread",
                        help="gunicorn worker classes of the peer rows, comma-separated (default sync,gthread)")
    parser.add_argument("--peer-threads", type=int, default=4,
                        help="threads of the peer's one gthread worker (default 4: gunicorn's 2-4 x cores)")
    parser.add_argument("--skip-floor", action="store_true", help="no floor rows (bench/floor.py)")
    parser.add_argument("--pin", action="store_true", help="the process under test on CPU 0; simulator, upstream "
                        "app, wrk and the harness on CPU 1 (needs 2 cores; reported in the machine section)")
    parser.add_argument("--python-client", action="store_true", help="use the Python load generator, not wrk")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server and simulator during each scenario "
                        "(installs py-spy into the venv when missing); collapsed stacks go to DIR")
    parser.add_argument("--note", help="a sentence printed at the top of the page (e.g. that the machine was shared)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--render", metavar="JSON", help="only re-render --out from figures saved with --json")
    parser.add_argument("--before", metavar="JSON", help="figures of an earlier commit (--json) to compare with, "
                        "as ratios to each run's own bare hello")
    args = parser.parse_args(argv)
    args.peer_workers = [w for w in args.peer_workers.split(",") if w]
    if args.pin and not (PIN_UNDER_TEST | PIN_REST) <= os.sched_getaffinity(0):
        parser.error(f"--pin needs CPUs {sorted(PIN_UNDER_TEST | PIN_REST)} (this process may use "
                     f"{sorted(os.sched_getaffinity(0))})")
    if not set(args.peer_workers) <= {"sync", "gthread"}:
        parser.error("--peer-workers: sync and/or gthread")
    if args.render:
        import report as rep

        Path(args.out).write_text(rep.render(rep.from_json(json.loads(Path(args.render).read_text()))))
        return 0
    if args.smoke:
        args.quick = False
        args.skip_scaling = True
        for name, value in (("duration", 1.0), ("orders", 12), ("memory_payments", 40), ("pool_seconds", 30.0)):
            if getattr(args, name) is None:
                setattr(args, name, value)
        args.connections = min(args.connections, 4)
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    if args.pool_seconds is None:
        args.pool_seconds = args.duration
    if args.orders is None:
        args.orders = 300 if args.quick else 4000
    if args.memory_payments is None:
        args.memory_payments = 1000 if args.quick else 10_000
    if not args.skip_peer:
        ensure_bench_requirements()
    if args.profile and not shutil.which("py-spy", path=str(Path(sys.executable).parent)):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=False)
    tmp = Path(tempfile.mkdtemp(prefix="wxpay-bench-"))
    try:
        results = asyncio.run(run_all(args, tmp))
    except BaseException:
        print(f"[bench] failed; process logs kept in {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    if args.note:
        results["note"] = args.note
    if args.before:
        results["before"] = json.loads(Path(args.before).read_text())
        results["before_file"] = os.path.relpath(args.before, ROOT)
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=lambda o: o.__dict__ | {"rate": o.rate}, indent=1))
    Path(args.out).write_text(report(results))
    print(f"[bench] wrote {args.out} in {results['total_seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
