"""dist/wxpay-server, the one-file executable (`make binary`), run as a merchant would:
from a folder outside the repository, with no Python on PATH and no PYTHON*
variables. It serves a sandbox payment end to end, answers its subcommands,
and on SIGTERM finishes the request in flight and exits 0.

The build is keyed on the hash of its inputs (deploy/build_binary.py), so
this reuses dist/wxpay-server when the sources have not changed since it was
built and costs a PyInstaller run (about a minute) otherwise.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.server.browser import DESKTOP_UA, Browser, as_json
from tests.server.journey import create_checkout, wait_status

from .binary import bare_env, build, children, mapped_files, outside_python
from .nginx import free_port

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(shutil.which("objdump") is None, reason="PyInstaller needs objdump: as root, `make test` "
                       "installs binutils (.ci/ensure-deploy-tools); by hand: apt-get install binutils"),
]

CHINA = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def binary() -> Path:
    return build()


def start(binary: Path, home: Path, port: int, **env: str) -> subprocess.Popen:
    log = (home / "server.log").open("wb")
    try:
        return subprocess.Popen(
            [str(binary), "--port", str(port)], cwd=home, stdout=log, stderr=subprocess.STDOUT,
            env=bare_env(home, WXPAY_STORE_SQLITE_PATH=str(home / "data" / "wxpay.sqlite3"), **env),
        )
    finally:
        log.close()


async def wait_healthy(base: str, proc: subprocess.Popen, home: Path) -> None:
    client = Browser(base)
    for _ in range(600):  # bounded: 60 s, for a cold start on a loaded machine
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{(home / 'server.log').read_text()[-3000:]}")
        try:
            if (await client.get("/healthz")).code == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("never answered /healthz")


def run(binary: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], cwd=home, env=bare_env(home, **env), capture_output=True,
                          text=True, timeout=120)


async def pay_natively(base: str, merchant: Browser, amount: int) -> dict:
    """Create a checkout over the merchant API, open its page, prepay, scan at the simulator."""
    checkout = await create_checkout(merchant, amount)
    desktop = Browser(base, DESKTOP_UA)
    page = await desktop.get(checkout["pay_url"])
    assert page.code == 200 and b"Green tea" in page.body  # the templates are inside
    assert (await desktop.get("/static/pay.js")).code == 200  # and the static files
    prepay = as_json(await desktop.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True))
    scanned = await desktop.post("/_wechat/_sim/scan", json_body={"code_url": prepay["code_url"], "outcome": "ok"})
    assert scanned.code == 200, scanned.body
    await wait_status(desktop, checkout["id"], "paid")
    return checkout


def install(binary: Path, home: Path) -> Path:
    """Copied out of the repository, as a merchant installs it (/usr/local/bin)."""
    (home / "bin").mkdir()
    installed = home / "bin" / "wxpay-server"
    shutil.copy2(binary, installed)
    return installed


async def test_the_executable_serves_a_sandbox_payment_and_stops_cleanly_on_sigterm(binary, tmp_path_factory):
    home = tmp_path_factory.mktemp("merchant-host")  # outside the repository
    binary = install(binary, home)
    # No MongoDB server can run here: an unreachable one must fail the start as the
    # driver reports it (pymongo and its C extension are inside), not as a missing
    # module. Its server selection takes seconds, so it runs beside the rest.
    mongo_home = tmp_path_factory.mktemp("mongo-host")
    unreachable = "mongodb://127.0.0.1:9/wxpay?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
    mongo = subprocess.Popen([str(binary), "--port", "0"], cwd=mongo_home, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=bare_env(mongo_home, WXPAY_STORE_MONGODB_URI=unreachable))
    port = free_port()
    proc = start(binary, home, port, WXPAY_SIMULATOR_NOTIFY_TIME_SCALE="1000")
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base, proc, home)
        merchant = Browser(base)
        merchant.token_headers = {"Authorization": "Bearer sandbox-merchant-token"}
        checkout = await pay_natively(base, merchant, 1234)
        seen = as_json(await merchant.get(f"/api/checkouts/{checkout['id']}", headers=merchant.token_headers))
        assert seen["status"] == "paid" and seen["amount_fen"] == 1234

        # Nothing of a Python installation is in the process, and what it needs is in the bundle.
        [python] = children(proc.pid)  # the one-file launcher runs the server as its child
        files = mapped_files(python)
        bundle = next(Path(f).parent for f in files if Path(f).name.startswith("libpython"))
        assert bundle.is_relative_to(home / "tmp"), bundle  # unpacked into its own TMPDIR
        assert [f for f in files if not outside_python(f) and not Path(f).is_relative_to(bundle)] == []
        assert any("pycurl.libs/libcurl" in f for f in files)  # calls to WeChat went through the bundled libcurl
        assert any(f.startswith(str(bundle / "cryptography")) for f in files)

        # Subcommands, from the same executable, against the running server and its store.
        day = datetime.now(CHINA).date()
        env = {"WXPAY_STORE_SQLITE_PATH": str(home / "data" / "wxpay.sqlite3"), "WXPAY_SERVER_PUBLIC_URL": base}
        # A finished day without trades is clean. Two days back: yesterday is finished only from 10:00 China
        # time (before that, 16:00-02:00 UTC, its "no bill" is "not ready yet", exit 2).
        bills = run(binary, home, "bills", "--date", (day - timedelta(days=2)).isoformat(), "--json", **env)
        assert bills.returncode == 0, bills.stderr
        assert json.loads(bills.stdout)["clean"] is True
        today = run(binary, home, "bills", "--date", day.isoformat(), "--json", **env)  # sandbox: the bill so far
        assert today.returncode == 0 and json.loads(today.stdout)["wechat"]["payments"] == 1, today.stderr
        not_yet = run(binary, home, "bills", "--date", (day + timedelta(days=1)).isoformat(), **env)
        assert not_yet.returncode == 2 and "no bill" in not_yet.stderr.lower()
        openapi = run(binary, home, "openapi")
        assert openapi.returncode == 0 and json.loads(openapi.stdout)["openapi"].startswith("3.1")

        # SIGTERM while a prepay waits on WeChat: the prepay is answered, then the process exits 0.
        second = await create_checkout(merchant, 500)
        desktop = Browser(base, DESKTOP_UA)
        await desktop.get(second["pay_url"])
        fault = {"endpoint": "pay/unifiedorder", "kind": "latency", "seconds": 2, "count": 1}
        assert (await merchant.post("/_wechat/_sim/faults", json_body=fault)).code in (200, 201)
        in_flight = asyncio.ensure_future(desktop.post(f"/pay/{second['id']}/prepay", json_body={}, xsrf=True))
        for _ in range(200):  # until WeChat (the simulator) holds the call: the fault is used up
            if not as_json(await merchant.get("/_wechat/_sim/faults"))["faults"]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the prepay never reached the simulator")
        proc.send_signal(signal.SIGTERM)
        answered = await in_flight
        assert answered.code == 200, answered.body
        assert as_json(answered)["code_url"].startswith("weixin://")
        assert await asyncio.to_thread(proc.wait, 30) == 0
        log = (home / "server.log").read_text()
        assert "stopping (finishing in-flight requests)" in log and "Traceback" not in log
        assert list((home / "tmp").iterdir()) == []  # the launcher removed what it unpacked

        out, _ = await asyncio.to_thread(mongo.communicate, timeout=60)
        assert mongo.returncode == 2, out[-2000:]
        assert b"no MongoDB server answered at mongodb://127.0.0.1:9/wxpay within 0.3 s" in out, out[-2000:]
        assert b"No module named" not in out and b"Traceback" not in out, out[-2000:]
    finally:
        for p in (proc, mongo):
            if p.poll() is None:
                p.kill()
            p.communicate()  # also closes the pipe of one that already exited
