"""wxpay vs wechatpy (V2) and wechatpayv3 (V3) on identical inputs.

V2 rows against wechatpy: notify, request signing, JSAPI payloads. V3 rows
against wechatpayv3 (PyPI 2.x), with the test-only keys of
tests/wxpay/vectors/v3: sign a request, verify a response, verify and
decrypt a notify, build a paySign.

Run: ``.venv/bin/python bench/bench_library.py``. Prints ops/s for each side
and the ratio ours/theirs (>= 1.0 means we are no slower). Each figure is
the best of several timed repeats (``time.perf_counter``), so background
noise can only make a side look slower, never faster. Both sides are first
checked to produce the same signatures, so the race is over equal work at
least: on the notify row ours does more than wechatpy's parse_payment_result
(it also refuses DTDs, non-UTF-8, nesting, repeats and loose text, checks
return/result codes and appid/mch_id, and types time_end and the coupons),
and on the request row it validates element names and splits CDATA where
wechatpy's dict_to_xml writes values as they are.

The V3 rows end with the same output on both sides, and the extra work each
side does is this:

- *sign a request* (from the JSAPI order of vector R4): both sides end with
  the request's headers and the body bytes to send. Ours checks every field
  against WeChat's rules (lengths, charsets, 4-byte characters, the amount,
  the notify_url), writes the aware ``time_expire`` as RFC 3339, serialises
  once and signs those bytes; wechatpayv3 builds ``Core.request``'s headers,
  signs ``json.dumps(data)`` and then serialises the dict a second time, as
  ``requests`` does for ``json=data``. Each side gets its input ready-made
  (ours a datetime, theirs the string). Both signatures are checked to
  verify over their own bodies, and over the vector's string both equal R4's.
- *verify a response* (vector V1): each side reads the headers object its
  own HTTP stack hands it (ours a dict from ``wxpay.transport``, theirs the
  ``CaseInsensitiveDict`` of ``requests``; the text decoding ``requests``
  does for ``response.text`` is not counted). Ours reads the headers by any
  spelling and refuses one given twice, refuses probes, checks the 300 s
  window, the serial, the canonical base64 and the signature length before
  RSA; wechatpayv3's ``_verify_signature`` has no window, no probe check and
  decodes base64 loosely.
- *verify and decrypt a notify* (vector N1, headers as a dict for both):
  ours also enforces a size cap, parses strict JSON (no repeated keys),
  checks the event type against the resource type, types the transaction
  (amounts, RFC 3339 times) and checks our mchid; wechatpayv3's ``callback``
  verifies, decrypts (building its AESGCM each time) and ``json.loads``
  (the envelope twice).
- *paySign* (vector F1): both sides end with the bridge's object. Ours
  validates appid, package, timestamp and nonce and builds both JSAPI
  payloads (bridge and ``wx.chooseWXPay``) around one signature;
  wechatpayv3's ``Core.sign`` joins and signs, and the merchant's code
  writes the object around it.

The RSA operation itself (``cryptography``, the same OpenSSL on both sides:
about 20 us to verify and 250 us to sign here) sets the floor of every V3
row, so a V3 ratio can only move by the Python work around it.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wechatpy.pay import WeChatPay  # noqa: E402
from wechatpy.pay.utils import calculate_signature, dict_to_xml  # noqa: E402

from requests.structures import CaseInsensitiveDict  # noqa: E402
from wechatpayv3 import utils as v3utils  # noqa: E402
from wechatpayv3.core import Core  # noqa: E402

from wxpay.client import sign_request  # noqa: E402
from wxpay.merchant import Merchant  # noqa: E402
from wxpay.notify import read_notify, verify_payment_notify  # noqa: E402
from wxpay.payloads import jsapi_payloads  # noqa: E402
from wxpay.signing import MD5, sign  # noqa: E402
from wxpay.xmlcodec import build_xml  # noqa: E402
from wxpay.timeutil import parse_rfc3339  # noqa: E402
from wxpay.v3 import ApiV3Cipher, MerchantSigner, NotifyReader, PublicKeyVerifier, Validator  # noqa: E402
from wxpay.v3 import jsapi_payloads as v3_jsapi_payloads  # noqa: E402
from wxpay.v3.keys import load_private_key, load_public_key  # noqa: E402
from wxpay.v3.requests import build_order, request_headers  # noqa: E402

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


# --- APIv3 against wechatpayv3 ------------------------------------------------------

V3_DIR = Path(__file__).resolve().parents[1] / "tests" / "wxpay" / "vectors" / "v3"


def _v3(name: str) -> dict:

    return json.loads((V3_DIR / name).read_text(encoding="utf-8"))


V3_KEYS = _v3("keys.json")
R4 = next(v for v in _v3("request-signing.json")["vectors"] if v["id"] == "R4_post_json_utf8")
V1 = next(v for v in _v3("response-verification.json")["responses"] if v["id"] == "V1_valid_pubkey")
N1 = next(v for v in _v3("response-verification.json")["notifies"] if v["id"] == "N1_transaction_success")
F1 = _v3("frontend-sign.json")["vectors"][0]["payload"]
V3_NOW = _v3("response-verification.json")["now"]
V3_ORDER = {
    "appid": "wx0000000000test1", "mchid": V3_KEYS["mchid"], "description": "形象店-深圳腾大-QQ公仔",
    "out_trade_no": "T20260101000003", "time_expire": "2026-01-01T14:00:00+08:00", "attach": "自定义数据 ✓",
    "notify_url": "https://merchant.example.com/wxpay/v3/notify", "amount": {"total": 100, "currency": "CNY"},
    "payer": {"openid": "oTEST0000000000000000000001"},
}
V3_PATH = R4["path_with_query"]
V3_EXPIRES = parse_rfc3339(V3_ORDER["time_expire"])  # each side gets its own input type ready-made

SIGNER = MerchantSigner(V3_KEYS["mchid"], V3_KEYS["merchant"]["serial_no"],
                        load_private_key(V3_KEYS["merchant"]["private_key_pem"]))
PUBLIC = PublicKeyVerifier(V3_KEYS["wechatpay_public_key"]["public_key_id"],
                           load_public_key(V3_KEYS["wechatpay_public_key"]["public_key_pem"]))
VALIDATOR = Validator(PUBLIC, clock=lambda: V3_NOW)
READER = NotifyReader(VALIDATOR, ApiV3Cipher(V3_KEYS["apiv3_key"]), V3_KEYS["mchid"])
# Public-key mode: wechatpayv3 builds without downloading platform certificates (no network).
CORE = Core(V3_KEYS["mchid"], V3_KEYS["merchant"]["serial_no"], V3_KEYS["merchant"]["private_key_pem"],
            V3_KEYS["apiv3_key"], public_key=V3_KEYS["wechatpay_public_key"]["public_key_pem"],
            public_key_id=V3_KEYS["wechatpay_public_key"]["public_key_id"])
V1_BODY, N1_BODY = V1["body"].encode(), N1["body"].encode()
# Each side gets a reply's headers as its own HTTP stack delivers them: ours a dict (wxpay.transport),
# wechatpayv3's a requests CaseInsensitiveDict (requests.Response.headers).
V1_THEIR_HEADERS = CaseInsensitiveDict(V1["headers"])
THEIR_USER_AGENT = "wechatpay python sdk v2.0.4(https://github.com/minibear2021/wechatpayv3)"


def ours_v3_request() -> dict:
    o = V3_ORDER
    request = build_order("jsapi", appid=o["appid"], mchid=o["mchid"], description=o["description"],
                          out_trade_no=o["out_trade_no"], time_expire=V3_EXPIRES,
                          attach=o["attach"], notify_url=o["notify_url"], total=o["amount"]["total"],
                          openid=o["payer"]["openid"])
    return request_headers(SIGNER, request.method, request.path, request.body, wechatpay_serial=PUBLIC.public_key_id,
                           nonce=R4["nonce_str"])


def theirs_v3_request() -> tuple[dict, bytes]:
    # What Core.request does before the HTTP: its headers, the Authorization over json.dumps(data),
    # then the body requests writes for json=data (serialised a second time, as sent).
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               "User-Agent": THEIR_USER_AGENT, "Wechatpay-Serial": CORE._public_key_id}
    headers["Authorization"] = v3utils.build_authorization(
        V3_PATH, "POST", V3_KEYS["mchid"], V3_KEYS["merchant"]["serial_no"], CORE._private_key, data=V3_ORDER,
        nonce_str=R4["nonce_str"])
    return headers, json.dumps(V3_ORDER, allow_nan=False).encode("utf-8")


def ours_v3_verify() -> object:
    return VALIDATOR.validate(V1["headers"], V1_BODY)


def theirs_v3_verify() -> bool:
    # Core.request hands it requests' own headers object and the decoded text (decoding not counted).
    return CORE._verify_signature(V1_THEIR_HEADERS, V1["body"])


def ours_v3_notify() -> object:
    return READER.read(N1["headers"], N1_BODY)


def theirs_v3_notify() -> object:
    return CORE.callback(N1["headers"], N1_BODY)


def ours_v3_paysign() -> dict:
    bridge, _ = v3_jsapi_payloads(SIGNER, F1["appId"], F1["package"].split("=", 1)[1], timestamp=F1["timeStamp"],
                                  nonce=F1["nonceStr"])
    return bridge.to_dict()


def theirs_v3_paysign() -> dict:
    # wechatpayv3 signs; the merchant writes the bridge's object around the signature.
    return {"appId": F1["appId"], "timeStamp": F1["timeStamp"], "nonceStr": F1["nonceStr"], "package": F1["package"],
            "signType": "RSA", "paySign": CORE.sign([F1["appId"], F1["timeStamp"], F1["nonceStr"], F1["package"]])}


def _v3_order_body() -> bytes:
    o = V3_ORDER
    return build_order("jsapi", appid=o["appid"], mchid=o["mchid"], description=o["description"],
                       out_trade_no=o["out_trade_no"], time_expire=parse_rfc3339(o["time_expire"]), attach=o["attach"],
                       notify_url=o["notify_url"], total=o["amount"]["total"], openid=o["payer"]["openid"]).body


def check_same_v3_work() -> None:
    import base64

    from wxpay.v3 import parse_authorization, request_message
    from wxpay.v3.signing import rsa_verify

    merchant_public = load_public_key(V3_KEYS["merchant"]["public_key_pem"])

    def verifies(header: str, body: bytes) -> bool:
        auth = parse_authorization(header)
        message = request_message("POST", V3_PATH, auth.timestamp, auth.nonce_str, body)
        return rsa_verify(merchant_public, message, base64.b64decode(auth.signature))

    # Each Authorization verifies over the body its side would send; ours is R4's body exactly.
    assert _v3_order_body() == R4["body"].encode()
    assert verifies(ours_v3_request()["Authorization"], _v3_order_body())
    theirs_headers, theirs_body = theirs_v3_request()
    assert verifies(theirs_headers["Authorization"], theirs_body)
    assert SIGNER.sign(R4["string_to_sign"].encode()) == v3utils.rsa_sign(CORE._private_key, R4["string_to_sign"])
    assert ours_v3_verify().serial == PUBLIC.public_key_id and theirs_v3_verify() is True
    ours_event, theirs_event = ours_v3_notify(), theirs_v3_notify()
    assert ours_event.transaction.out_trade_no == theirs_event["resource"]["out_trade_no"] == "T20260101000003"
    assert ours_v3_paysign() == theirs_v3_paysign() and ours_v3_paysign()["paySign"] == F1["paySign"]


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
    ("notify parse+verify", ours_notify, theirs_notify, 600, "wechatpy"),
    ("request build+sign", ours_request, theirs_request, 2000, "wechatpy"),
    ("JSAPI payload", ours_jsapi, theirs_jsapi, 5000, "wechatpy"),
    ("v3 sign a request", ours_v3_request, theirs_v3_request, 300, "wechatpayv3"),
    ("v3 verify a response", ours_v3_verify, theirs_v3_verify, 1500, "wechatpayv3"),
    ("v3 notify verify+decrypt", ours_v3_notify, theirs_v3_notify, 1000, "wechatpayv3"),
    ("v3 paySign", ours_v3_paysign, theirs_v3_paysign, 300, "wechatpayv3"),
]


def measure(repeats: int = 9, rounds: int = 3, scale: float = 1.0) -> list[dict]:
    """Each row: name, ops/s for both sides, whom we race and ours/theirs (bench/run.py uses this);
    ``scale`` shrinks the calls per repeat (a smoke run)."""
    check_same_work()
    check_same_v3_work()
    out = []
    for name, ours, theirs, number, against in ROWS:
        number = max(5, int(number * scale))
        # Interleave the two sides so drifting machine load hits both alike.
        rate_ours = rate_theirs = 0.0
        for _ in range(rounds):
            rate_theirs = max(rate_theirs, best_rate(theirs, number, repeats))
            rate_ours = max(rate_ours, best_rate(ours, number, repeats))
        out.append({"name": name, "ours": rate_ours, "theirs": rate_theirs, "against": against,
                    "ratio": rate_ours / rate_theirs})
    return out


def main() -> int:
    repeats, rounds = 9, 3
    print(f"{'benchmark':<26}{'wxpay ops/s':>13}{'theirs ops/s':>14}  {'theirs':<13}{'ours/theirs':>11}")
    rows = measure(repeats, rounds)
    for row in rows:
        print(f"{row['name']:<26}{row['ours']:>13,.0f}{row['theirs']:>14,.0f}  {row['against']:<13}"
              f"{row['ratio']:>10.2f}x")
    print(f"python {sys.version.split()[0]}; best of {repeats} repeats x {rounds} interleaved rounds")
    slower = [row["name"] for row in rows if row["ratio"] < 1.0]
    if slower:
        print("slower than the other library on: " + ", ".join(slower))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
