"""deploy/nginx-site.conf in front of a real server, the way a merchant runs them.

Debian's nginx terminates TLS on 127.0.0.1 with a throwaway certificate; the
server (a real process, sandbox mode, so the simulated WeChat is there to ask)
has ``server.trusted_proxies = ["127.0.0.1/32"]`` and its public URL is
nginx's. Shoppers connect from other loopback addresses (127.0.0.5, …), so
the address nginx saw is told apart from nginx's own. The simulator's notifies
go to the public URL, through nginx, and check nginx's certificate (the server
process trusts it through SSL_CERT_FILE), as WeChat's would.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.server.browser import MOBILE_UA, as_json
from tests.server.journey import query_of, wait_status
from tests.server.processes import spawn, stop

from .clients import Via, established_on, raw_tls, until_closed
from .nginx import MISSING, Nginx, free_port, nginx_available

pytestmark = [pytest.mark.deploy, pytest.mark.skipif(not nginx_available(), reason=MISSING)]

TOKEN = {"Authorization": "Bearer sandbox-merchant-token"}
MAX_BODY = 65536  # server.max_body_bytes (default) = the site's client_max_body_size
SITE_TIMEOUT_S = 10  # the site's client_header_timeout and client_body_timeout


@dataclass
class Deployment:
    nginx: Nginx
    server_port: int
    log: Path

    @property
    def public(self) -> str:
        return self.nginx.base

    @property
    def direct(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def client(self, user_agent: str = MOBILE_UA, source: str = "127.0.0.1") -> Via:
        return Via(self.public, user_agent, ca=self.nginx.cert, source=source)

    def merchant(self) -> Via:
        m = self.client(source="127.0.0.1")
        m.token_headers = TOKEN  # type: ignore[attr-defined]
        return m


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("behind-nginx")
    server_port = free_port()
    nginx = Nginx(server_port).start()
    env = {
        "WXPAY_SERVER_PUBLIC_URL": nginx.base,
        "WXPAY_SERVER_TRUSTED_PROXIES": "127.0.0.1/32",
        "WXPAY_STORE_SQLITE_PATH": str(home / "wxpay.sqlite3"),
        "WXPAY_SIMULATOR_NOTIFY_TIME_SCALE": "1000",
        "WXPAY_RECONCILER_ENABLED": "false",
        "SSL_CERT_FILE": str(nginx.cert),  # the simulated WeChat checks nginx's certificate
    }
    proc = spawn(["server.py", "--port", str(server_port)], env, log_path=home / "server.log")
    try:
        for _ in range(300):  # bounded: 30 s
            if proc.poll() is not None:
                raise AssertionError((home / "server.log").read_text()[-3000:])
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{server_port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield Deployment(nginx, server_port, home / "server.log")
    finally:
        stop(proc)
        nginx.stop()


async def sim_order(d: Deployment, out_trade_no: str) -> dict:
    r = await d.merchant().get(f"/_wechat/_sim/orders/{out_trade_no}")
    assert r.code == 200, r.body
    return as_json(r)


async def test_an_h5_payment_through_nginx_gives_wechat_the_address_nginx_saw(deployment):
    d = deployment
    merchant = d.merchant()
    r = await merchant.post("/api/checkouts", json_body={"amount_fen": 321, "description": "Green tea"},
                            headers=TOKEN)
    assert r.code == 201, r.body
    checkout = as_json(r)
    assert checkout["pay_url"] == f"{d.public}/pay/{checkout['id']}"

    phone = d.client(MOBILE_UA, source="127.0.0.5")
    assert (await phone.get(checkout["pay_url"])).code == 200
    # The shopper's own claims about its address are not believed: nginx says who it is.
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
    prepay = await phone.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True, headers=forged)
    assert prepay.code == 200, prepay.body
    result = as_json(prepay)
    assert result["trade_type"] == "MWEB"
    seen = await sim_order(d, result["out_trade_no"])
    assert seen["order"]["spbill_create_ip"] == "127.0.0.5"

    # WeChat's H5 cashier compares the paying phone's address with spbill_create_ip
    # (it is WeChat's host, not behind our nginx): the phone passes.
    mweb = result["mweb_url"]
    cashier = await phone.get(mweb, headers={"Referer": checkout["pay_url"]})
    assert cashier.code == 200 and "X-Sim-Error" not in cashier.headers, cashier.body
    form = "&".join(f"{k}={v}" for k, v in {**query_of(mweb), "outcome": "ok"}.items())
    paid = await phone.post(
        mweb.split("?")[0], body=form.replace(":", "%3A").replace("/", "%2F"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": checkout["pay_url"]},
    )
    assert paid.code == 302 and paid.headers["Location"] == f"{d.public}/pay/{checkout['id']}/result"
    await wait_status(phone, checkout["id"], "paid")

    # WeChat's signed notify came through nginx, and the server verified it (it answers
    # SUCCESS only then) at its first attempt.
    [delivery] = (await sim_order(d, result["out_trade_no"]))["notifies"]
    assert delivery["url"] == f"{d.public}/notify/pay"
    assert delivery["state"] == "delivered"
    first = delivery["attempts"][0]
    assert (first["verdict"], first["status"]) == ("success", 200), first
    def notifies(entries: list[dict]) -> list[tuple[str, bool]]:
        return [(e["status"], e["upstream"] != "-") for e in entries if e["request"] == "POST /notify/pay HTTP/1.1"]
    assert notifies(await d.nginx.logged(notifies)) == [("200", True)]


@pytest.mark.parametrize("forged", [
    {"X-Forwarded-For": "203.0.113.9"},
    {"X-Forwarded-For": "203.0.113.9, 127.0.0.1"},  # a chain that ends at the trusted proxy
    {"X-Forwarded-For": "127.0.0.1"},  # posing as the proxy itself
    {"X-Real-IP": "203.0.113.9", "Forwarded": "for=203.0.113.9"},
])
async def test_a_shopper_cannot_choose_its_address_through_nginx(deployment, forged):
    d = deployment
    r = await d.merchant().post("/api/checkouts", json_body={"amount_fen": 100, "description": "tea"}, headers=TOKEN)
    checkout = as_json(r)
    phone = d.client(MOBILE_UA, source="127.0.0.6")
    await phone.get(checkout["pay_url"])
    prepay = await phone.post(f"/pay/{checkout['id']}/prepay", json_body={}, xsrf=True, headers=forged)
    assert prepay.code == 200, prepay.body
    seen = await sim_order(d, as_json(prepay)["out_trade_no"])
    assert seen["order"]["spbill_create_ip"] == "127.0.0.6"


def padded(size: int) -> bytes:
    body = json.dumps({"amount_fen": 100, "description": "tea"}).encode()
    return body + b" " * (size - len(body))


async def test_the_body_limit_is_the_servers_own_behind_nginx(deployment):
    d = deployment
    merchant = d.merchant()
    before = as_json(await merchant.get("/api/checkouts?limit=100", headers=TOKEN))
    at_limit = await merchant.post("/api/checkouts", body=padded(MAX_BODY),
                                   headers={**TOKEN, "Content-Type": "application/json"})
    assert at_limit.code == 201, at_limit.body  # exactly server.max_body_bytes passes both

    for path in ("/api/checkouts", "/notify/pay"):
        over = await merchant.post(path, body=padded(MAX_BODY + 1), headers={**TOKEN, "Content-Type": "application/json"})
        assert over.code == 413
        assert as_json(over)["code"] == "body_too_large"  # the server's own refusal, in JSON
        assert over.headers["X-Content-Type-Options"] == "nosniff"

    # Without a Content-Length (chunked), nginx counts as it reads.
    async def chunks(write):
        for _ in range(MAX_BODY // 4096 + 1):
            await write(b" " * 4096)
    chunked = await merchant.client.fetch(
        f"{d.public}/api/checkouts", method="POST", body_producer=chunks, headers=TOKEN, raise_error=False)
    assert chunked.code == 413 and as_json(chunked)["code"] == "body_too_large"

    after = as_json(await merchant.get("/api/checkouts?limit=100", headers=TOKEN))
    assert len(after["items"]) == len(before["items"]) + 1  # only the one at the limit
    def refused(entries: list[dict]) -> list[dict]:
        return [e for e in entries if e["status"] == "413"]
    entries = refused(await d.nginx.logged(lambda e: len(refused(e)) >= 3))
    assert len(entries) == 3 and {e["upstream"] for e in entries} == {"-"}  # never reached the server


async def test_slow_clients_are_cut_by_nginx_and_never_hold_the_server(deployment):
    d = deployment
    await d.merchant().get("/healthz")  # nginx has a kept-alive connection to the server now
    before = established_on(d.server_port)
    head = b"POST /api/checkouts HTTP/1.1\r\nHost: pay.example.com\r\nAuthorization: Bearer sandbox-merchant-token\r\n"
    slow = []
    sources = [f"127.0.0.{20 + n}" for n in range(8)]
    for source in sources[:4]:  # half a header block, then nothing
        reader, writer = await raw_tls(d.nginx.https_port, d.nginx.cert, source)
        writer.write(head)
        slow.append((reader, writer))
    for source in sources[4:]:  # whole headers, a tenth of the body, then nothing
        reader, writer = await raw_tls(d.nginx.https_port, d.nginx.cert, source)
        writer.write(head + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b" " * 100)
        slow.append((reader, writer))
    for _, writer in slow:
        await writer.drain()
    started = time.monotonic()
    await asyncio.sleep(0.5)  # nginx has read what they sent

    assert established_on(d.server_port) == before  # the server has not seen one of them
    quick = await d.merchant().get("/healthz")
    assert quick.code == 200  # and serves everyone else meanwhile

    answers = await asyncio.gather(*(until_closed(r, SITE_TIMEOUT_S + 15) for r, _ in slow))
    waited = time.monotonic() - started
    for _, writer in slow:
        writer.close()
    assert waited < SITE_TIMEOUT_S + 15, "nginx never cut them"
    for answer in answers:  # cut without an answer from the server (nginx may say 408)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert established_on(d.server_port) == before
    def cut(entries: list[dict]) -> list[dict]:
        return [e for e in entries if e["client"] in sources]
    entries = cut(await d.nginx.logged(lambda e: len(cut(e)) >= 8))
    assert len(entries) == 8 and {e["status"] for e in entries} == {"408"}, entries
    assert {e["upstream"] for e in entries} == {"-"}


async def test_plain_http_is_sent_to_https_and_no_query_string_is_logged(deployment):
    d = deployment
    r = await Via(f"http://127.0.0.1:{d.nginx.http_port}", ca=d.nginx.cert).get("/pay/co_1?lang=en")
    assert r.code == 301 and r.headers["Location"] == "https://pay.example.com/pay/co_1?lang=en"
    await d.client().get("/oauth/callback?code=CODE-SECRET-4711&state=STATE-SECRET-0815")
    await d.nginx.logged(lambda entries: any("/oauth/callback" in e["request"] for e in entries))
    log = d.nginx.access_log.read_text()
    assert "/oauth/callback" in log and "CODE-SECRET-4711" not in log and "STATE-SECRET-0815" not in log
