"""Memory: RSS of one server process's services after many payments.

What is measured (say it exactly, it is not the HTTP server): the real
services of ``wiring.services.build`` on the embedded SQLite store, driven
in-process without HTTP, ``concurrency`` payments at a time. Each payment is
``CheckoutService.create`` → ``PrepayService.prepay`` (JSAPI, both payloads)
→ ``PaymentNotifyService.handle`` on a notify signed with the merchant key
(orderquery, compare-and-set to paid, checkout settled, audit records). The
WeChat side is a *stateless* stub transport behind the real client
(requests are signed; replies are signed XML for APIv2, signed JSON for APIv3,
parsed and verified), so no simulator state grows inside the measured
process. With ``--api-version v3`` the server runs on APIv3: prepay is the
JSAPI order, the notify is encrypted (AES-256-GCM) and signed with WeChat's
test-only key (``bench/wechat_side.py``), the query answer signed likewise.
The store's SQLite page cache is part of the process and is counted.

Run: ``python bench/memory.py --payments 100000 [--api-version v3]`` → one JSON line.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import wechat_side  # noqa: E402

from config import load_settings  # noqa: E402
from wiring.services import build  # noqa: E402
from wxpay import signing  # noqa: E402
from wxpay.simulator import demo  # noqa: E402
from wxpay.transport import FunctionTransport, HttpRequest, HttpResponse  # noqa: E402
from wxpay.xmlcodec import build_xml, parse_xml  # noqa: E402

AMOUNT = 100
CHINA = timezone(timedelta(hours=8))
OPENID = "oBenchShopper00000000000000A"


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    """CPU of every thread of this process (the store's worker included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def transaction_id(out_trade_no: str) -> str:
    return "42" + str(int(hashlib.sha256(out_trade_no.encode()).hexdigest()[:16], 16)).zfill(26)[:26]


def china_now() -> str:
    return datetime.now(CHINA).strftime("%Y%m%d%H%M%S")


async def stub_wechat(request: HttpRequest) -> HttpResponse:
    """WeChat Pay without memory: every reply is derived from the request alone."""
    req = parse_xml(request.body or b"")
    sign_type = req.get("sign_type") or signing.MD5
    reply = {"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": req["appid"], "mch_id": req["mch_id"],
             "nonce_str": signing.make_nonce()}
    if request.url.endswith("/pay/unifiedorder"):
        reply.update(prepay_id="wx" + hashlib.sha256(req["out_trade_no"].encode()).hexdigest()[:30],
                     trade_type=req["trade_type"])
    elif request.url.endswith("/pay/orderquery"):
        no = req["out_trade_no"]
        reply.update(trade_state="SUCCESS", out_trade_no=no, transaction_id=transaction_id(no), total_fee=str(AMOUNT),
                     cash_fee=str(AMOUNT), fee_type="CNY", trade_type="JSAPI", openid=OPENID, bank_type="CMC",
                     time_end=china_now(), is_subscribe="N")
    else:
        return HttpResponse(404, {}, b"not stubbed")
    reply["sign"] = signing.sign(reply, demo.API_KEY, sign_type)
    return HttpResponse(200, {"Content-Type": "text/xml"}, build_xml(reply))


async def stub_wechat_v3(request: HttpRequest) -> HttpResponse:
    """WeChat Pay APIv3 without memory: each signed JSON answer derived from the request alone."""
    path = request.url.split("?", 1)[0]
    if request.method == "POST" and path.endswith("/v3/pay/transactions/jsapi"):
        no = json.loads(request.body or b"{}")["out_trade_no"]
        reply: dict = {"prepay_id": "wx" + hashlib.sha256(no.encode()).hexdigest()[:30]}
    elif request.method == "GET" and "/v3/pay/transactions/out-trade-no/" in path:
        no = path.rsplit("/", 1)[1]
        reply = wechat_side.v3_transaction(appid=demo.OFFICIAL_ACCOUNT_APPID, mchid=demo.MCH_ID, openid=OPENID,
                                           out_trade_no=no, total=AMOUNT, trade_type="JSAPI",
                                           transaction_id=transaction_id(no))
    else:
        return HttpResponse(404, {}, b"not stubbed")
    body = json.dumps(reply, separators=(",", ":"))
    return HttpResponse(200, {"Content-Type": "application/json", **wechat_side.v3_signature_headers(body)},
                        body.encode())


def v3_notify(out_trade_no: str, appid: str) -> tuple[dict, bytes]:
    body, headers = wechat_side.v3_notify(appid=appid, mchid=demo.MCH_ID, openid=OPENID, out_trade_no=out_trade_no,
                                          total=AMOUNT, trade_type="JSAPI", transaction_id=transaction_id(out_trade_no))
    return headers, body.encode()


def notify_body(out_trade_no: str, appid: str, sign_type: str) -> bytes:
    fields = {
        "appid": appid, "bank_type": "CMC", "cash_fee": str(AMOUNT), "fee_type": "CNY", "is_subscribe": "N",
        "mch_id": demo.MCH_ID, "nonce_str": signing.make_nonce(), "openid": OPENID, "out_trade_no": out_trade_no,
        "result_code": "SUCCESS", "return_code": "SUCCESS", "time_end": china_now(), "total_fee": str(AMOUNT),
        "trade_type": "JSAPI", "transaction_id": transaction_id(out_trade_no),
    }
    return build_xml({**fields, "sign": signing.sign(fields, demo.API_KEY, sign_type)})


async def run(payments: int, warmup: int, points: int, concurrency: int, db: str, version: str = "v2") -> dict:
    settings = load_settings(None, env={}, overrides={
        "store.sqlite_path": db, "reconciler.enabled": False, "wechat.api_version": version,
        "checkout.orders_per_ip": 0,  # every payment comes from 127.0.0.1
        "wechat.pay_base": "http://wechat.stub", "wechat.api_base": "http://wechat.stub",
        "wechat.open_base": "http://wechat.stub",
    }).check()
    stub = stub_wechat_v3 if version == "v3" else stub_wechat
    services = (await build(settings, port=8000, transport=FunctionTransport(stub))).services
    failures: dict[str, int] = {}

    async def one(i: int) -> None:
        checkout, _ = await services.checkouts.create({"amount_fen": AMOUNT, "description": f"Bench tea {i}"})
        result = await services.prepay.prepay(checkout.id, trade_type="JSAPI", openid=OPENID, client_ip="127.0.0.1")
        if not (result.bridge and result.choose_wx_pay):
            failures["no_payloads"] = failures.get("no_payloads", 0) + 1
        order = await services.orders.require(result.out_trade_no)
        if version == "v3":
            outcome = await services.payment_notify.handle(*v3_notify(order.out_trade_no, order.appid))
        else:
            outcome = await services.payment_notify.handle({}, notify_body(order.out_trade_no, order.appid,
                                                                           order.sign_type))
        if outcome.verdict.code != "paid":
            failures[outcome.verdict.code] = failures.get(outcome.verdict.code, 0) + 1

    async def batch(start: int, end: int) -> None:
        for base in range(start, end, concurrency):
            await asyncio.gather(*(one(i) for i in range(base, min(end, base + concurrency))))

    start_rss = rss_kb()
    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    await batch(0, warmup)
    gc.collect()
    curve = [{"payments": 0, "rss_kb": rss_kb()}]
    step = max(1, payments // points)
    done = 0
    while done < payments:
        n = min(step, payments - done)
        await batch(warmup + done, warmup + done + n)
        done += n
        gc.collect()
        curve.append({"payments": done, "rss_kb": rss_kb()})
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    paid = await services.store.count("orders", {"state": "paid"}) if hasattr(services.store, "count") else None
    sizes = {
        "prepay_locks": len(services.prepay._locks),
        "notify_locks": len(services.payment_notify._locks),
    }
    await services.store.close()
    return {
        "api_version": version, "payments": payments, "warmup": warmup, "concurrency": concurrency, "seconds": round(seconds, 1),
        "cpu_ms_per_payment": round(cpu * 1000 / (payments + warmup), 3),
        "rss_start_kb": start_rss, "curve": curve, "failures": failures, "paid_in_store": paid,
        "in_memory_tables": sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--api-version", choices=("v2", "v3"), default="v2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wxpay-mem-") as tmp:
        out = asyncio.run(run(args.payments, args.warmup, args.points, args.concurrency, f"{tmp}/mem.sqlite3",
                              args.api_version))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
