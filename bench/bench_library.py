"""wxpay vs wechatpy on identical inputs: notify, request signing, JSAPI payloads.

Run: ``.venv/bin/python bench/bench_library.py``. Prints ops/s for each side
and the ratio ours/wechatpy (>= 1.0 means we are no slower). Each figure is
the best of several timed repeats (``time.perf_counter``), so background
noise can only make a side look slower, never faster. Both sides are first
checked to produce the same signatures, so the race is over equal work at
least: on the notify row ours does more than wechatpy's parse_payment_result
(it also refuses DTDs, non-UTF-8, nesting, repeats and loose text, checks
return/result codes and appid/mch_id, and types time_end and the coupons),
and on the request row it validates element names and splits CDATA where
wechatpy's dict_to_xml writes values as they are.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wechatpy.pay import WeChatPay  # noqa: E402
from wechatpy.pay.utils import calculate_signature, dict_to_xml  # noqa: E402

from wxpay.client import sign_request  # noqa: E402
from wxpay.merchant import Merchant  # noqa: E402
from wxpay.notify import read_notify, verify_payment_notify  # noqa: E402
from wxpay.payloads import jsapi_payloads  # noqa: E402
from wxpay.signing import MD5, sign  # noqa: E402
from wxpay.xmlcodec import build_xml  # noqa: E402

KEY = "192006250b4c09247ec02edce69f6a2d"
APPID = "wx2421b1c4370ec43b"
MCH_ID = "10000100"
NONCE = "e61463f8efa94090b1f366cccfbbb444"
TIMESTAMP = "1395712654"
PREPAY_ID = "wx201410272009395522657a690389285100"

NOTIFY_FIELDS = {
    "appid": APPID, "attach": "note", "bank_type": "CMC", "cash_fee": "90", "coupon_count": "2",
    "coupon_fee": "10", "coupon_fee_0": "6", "coupon_fee_1": "4", "coupon_id_0": "10000",
    "coupon_id_1": "10001", "coupon_type_0": "CASH", "coupon_type_1": "NO_CASH", "fee_type": "CNY",
    "is_subscribe": "Y", "mch_id": MCH_ID, "nonce_str": NONCE, "openid": "oUpF8uMEb4qRXf22hE3X68TekukE",
    "out_trade_no": "1409811653", "result_code": "SUCCESS", "return_code": "SUCCESS",
    "settlement_total_fee": "96", "time_end": "20140903131540", "total_fee": "100", "trade_type": "JSAPI",
    "transaction_id": "1004400740201409030005092168",
}
NOTIFY_BODY = build_xml({**NOTIFY_FIELDS, "sign": sign(NOTIFY_FIELDS, KEY, MD5)})

ORDER = {
    "body": "Tencent-Game", "out_trade_no": "20150806125346", "total_fee": 888,
    "spbill_create_ip": "123.12.12.123", "notify_url": "https://shop.example/wxpay/notify",
    "trade_type": "JSAPI", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "attach": "order-42",
}

WECHATPY = WeChatPay(appid=APPID, api_key=KEY, mch_id=MCH_ID)
MERCHANT = Merchant(mch_id=MCH_ID, api_key=KEY, appid=APPID, sign_type=MD5)


# --- the contestants ---------------------------------------------------------


def ours_notify() -> object:
    return verify_payment_notify(read_notify(NOTIFY_BODY), key=KEY, sign_type=MD5, appid=APPID, mch_id=MCH_ID)


def theirs_notify() -> object:
    return WECHATPY.parse_payment_result(NOTIFY_BODY)


def ours_request() -> bytes:
    return sign_request(MERCHANT, ORDER, nonce=NONCE)


def theirs_request() -> str:
    # What WeChatPay._request does for an MD5 merchant, minus the HTTP.
    data = {**ORDER, "appid": APPID, "mch_id": MCH_ID, "nonce_str": NONCE, "sign_type": MD5}
    return dict_to_xml(data, calculate_signature(data, KEY))


def ours_jsapi() -> dict:
    bridge, choose = jsapi_payloads(APPID, PREPAY_ID, KEY, MD5, timestamp=TIMESTAMP, nonce=NONCE)
    return bridge.to_dict()


def theirs_jsapi() -> dict:
    return WECHATPY.jsapi.get_jsapi_params(PREPAY_ID, timestamp=TIMESTAMP, nonce_str=NONCE)


def check_same_work() -> None:
    ours, theirs = ours_notify(), theirs_notify()
    assert ours.total_fee == theirs["total_fee"] == 100 and ours.out_trade_no == theirs["out_trade_no"]
    ours_sign = ours_request().split(b"<sign><![CDATA[")[1][:32].decode()
    theirs_sign = theirs_request().split("<sign><![CDATA[")[1][:32]
    assert ours_sign == theirs_sign, (ours_sign, theirs_sign)
    assert ours_jsapi()["paySign"] == theirs_jsapi()["paySign"]


# --- timing --------------------------------------------------------------------


def best_rate(fn: Callable[[], object], number: int, repeats: int) -> float:
    """Best-of-``repeats`` ops/s over ``number`` calls each."""
    for _ in range(min(number, 200)):
        fn()  # warm caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - start)
    return number / best


ROWS = [
    ("notify parse+verify", ours_notify, theirs_notify, 600),
    ("request build+sign", ours_request, theirs_request, 2000),
    ("JSAPI payload", ours_jsapi, theirs_jsapi, 5000),
]


def measure(repeats: int = 9, rounds: int = 3) -> list[dict]:
    """Each row: name, ops/s for both sides and ours/wechatpy (bench/run.py uses this)."""
    check_same_work()
    out = []
    for name, ours, theirs, number in ROWS:
        # Interleave the two sides so drifting machine load hits both alike.
        rate_ours = rate_theirs = 0.0
        for _ in range(rounds):
            rate_theirs = max(rate_theirs, best_rate(theirs, number, repeats))
            rate_ours = max(rate_ours, best_rate(ours, number, repeats))
        out.append({"name": name, "ours": rate_ours, "wechatpy": rate_theirs, "ratio": rate_ours / rate_theirs})
    return out


def main() -> int:
    repeats, rounds = 9, 3
    print(f"{'benchmark':<22}{'wxpay ops/s':>14}{'wechatpy ops/s':>17}{'ours/wechatpy':>16}")
    rows = measure(repeats, rounds)
    for row in rows:
        print(f"{row['name']:<22}{row['ours']:>14,.0f}{row['wechatpy']:>17,.0f}{row['ratio']:>15.2f}x")
    print(f"python {sys.version.split()[0]}; best of {repeats} repeats x {rounds} interleaved rounds")
    slower = [row["name"] for row in rows if row["ratio"] < 1.0]
    if slower:
        print("slower than wechatpy on: " + ", ".join(slower))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
