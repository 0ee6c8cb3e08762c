"""WeChat's side of the bench: the notifies WeChat would send, and a shopper's openid.

The simulator's own notifies are dropped (the ``drop`` fault) so that each
scenario sends a fixed pool of notifies through wrk; these are the bodies
(and, for APIv3, the headers) WeChat would have sent for each paid order.
APIv2: signed with the merchant's API key (MD5, no ``sign_type``, as WeChat
sends it). APIv3: the transaction encrypted with the APIv3 key (AES-256-GCM)
and signed with the WeChat Pay public key's private half, the simulator's
TEST-ONLY WeChat-side key from ``python -m wxpay.simulator credentials --json``.
The V3 side uses ``cryptography`` directly, not wxpay.v3, so the server's
verifier is not checking what its own library produced.
"""
from __future__ import annotations

import base64
import json
import secrets
import string
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loadgen import fetch_all
from wxpay import signing
from wxpay.simulator import demo
from wxpay.xmlcodec import build_xml

CHINA = timezone(timedelta(hours=8))


@lru_cache(maxsize=1)
def credentials() -> dict[str, Any]:
    """The demo merchant's credentials, as a client of the standalone simulator reads them."""
    out = subprocess.run([sys.executable, "-m", "wxpay.simulator", "credentials", "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def v2_notify(*, appid: str, mch_id: str, openid: str, out_trade_no: str, total_fee: int, trade_type: str,
              transaction_id: str, sign_type: str = signing.MD5, api_key: str = demo.API_KEY) -> str:
    """The payment notify exactly as WeChat sends it: signed, without sign_type."""
    fields = {
        "appid": appid, "bank_type": "CMC", "cash_fee": str(total_fee), "fee_type": "CNY",
        "is_subscribe": "N", "mch_id": mch_id, "nonce_str": signing.make_nonce(),
        "openid": openid, "out_trade_no": out_trade_no, "result_code": "SUCCESS",
        "return_code": "SUCCESS", "time_end": datetime.now(CHINA).strftime("%Y%m%d%H%M%S"),
        "total_fee": str(total_fee), "trade_type": trade_type, "transaction_id": transaction_id,
    }
    fields["sign"] = signing.sign(fields, api_key, sign_type or signing.MD5)
    return build_xml(fields).decode()


def _nonce(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def v3_notify(*, appid: str, mchid: str, openid: str, out_trade_no: str, total: int, trade_type: str,
              transaction_id: str) -> tuple[str, dict[str, str]]:
    """A V3 TRANSACTION.SUCCESS notify: (compact JSON body, its ``Wechatpay-*`` headers)."""
    creds = credentials()
    now = datetime.now(CHINA).replace(microsecond=0)
    transaction = v3_transaction(appid=appid, mchid=mchid, openid=openid, out_trade_no=out_trade_no, total=total,
                                 trade_type=trade_type, transaction_id=transaction_id)
    aead_nonce = _nonce(12)
    sealed = AESGCM(creds["apiv3_key"].encode()).encrypt(
        aead_nonce.encode(), json.dumps(transaction, ensure_ascii=False, separators=(",", ":")).encode(),
        b"transaction")
    envelope = {
        "id": "EV-" + secrets.token_hex(16), "create_time": now.isoformat(), "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
        "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                     "ciphertext": base64.b64encode(sealed).decode(), "associated_data": "transaction",
                     "nonce": aead_nonce},
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    return body, {"Content-Type": "application/json", **v3_signature_headers(body)}


def v3_transaction(*, appid: str, mchid: str, openid: str, out_trade_no: str, total: int, trade_type: str,
                   transaction_id: str) -> dict[str, Any]:
    """A paid order as WeChat describes it (a V3 notify's resource, the answer to a query)."""
    return {
        "mchid": mchid, "appid": appid, "out_trade_no": out_trade_no, "transaction_id": transaction_id,
        "trade_type": trade_type, "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
        "success_time": datetime.now(CHINA).replace(microsecond=0).isoformat(), "payer": {"openid": openid},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
    }


def v3_signature_headers(body: str) -> dict[str, str]:
    """The ``Wechatpay-*`` headers WeChat signs a V3 answer or notify with (its public key's private half)."""
    timestamp, nonce = str(int(datetime.now(CHINA).timestamp())), secrets.token_hex(16)
    signature = _wechat_key().sign(f"{timestamp}\n{nonce}\n{body}\n".encode(), padding.PKCS1v15(), hashes.SHA256())
    return {
        "Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
        "Wechatpay-Serial": credentials()["wechatpay_public_key_id"],
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


@lru_cache(maxsize=1)
def _wechat_key() -> Any:
    pem = credentials()["test_only_wechat_private_keys"]["wechatpay_public_key_private_pem"]
    return serialization.load_pem_private_key(pem.encode(), password=None)


async def openid_at_simulator(sim_port: int, user: str, appid: str = demo.OFFICIAL_ACCOUNT_APPID,
                              secret: str = demo.OFFICIAL_ACCOUNT_SECRET) -> str:
    """A shopper's openid for ``appid``: silent OAuth (snsapi_base) at the simulator, then the code traded."""
    query = urlencode({"appid": appid, "redirect_uri": "http://127.0.0.1/oauth/callback", "response_type": "code",
                       "scope": "snsapi_base", "state": "bench", "sim_user": user})
    [(status, headers, _)] = await fetch_all(sim_port, [("GET", f"/connect/oauth2/authorize?{query}", {}, b"")], 1)
    assert status == 302, status
    code = parse_qs(urlsplit(headers["location"]).query)["code"][0]
    query = urlencode({"appid": appid, "secret": secret, "code": code, "grant_type": "authorization_code"})
    [(status, _, body)] = await fetch_all(sim_port, [("GET", f"/sns/oauth2/access_token?{query}", {}, b"")], 1)
    return json.loads(body)["openid"]


async def upstream_queries(sim_port: int, tag: str) -> dict[str, dict[str, Any]]:
    """For an order placed and paid at the simulator just now, the query our server makes
    for a first-time notify, per API version, as ``{method, path, headers, body}``: V2 a
    signed ``pay/orderquery``, V3 the query by out_trade_no with its ``Authorization``
    (valid for the simulator's 300 s window from now). The relay-to-the-simulator rows
    send one over and over; each is checked once here to get a verified SUCCESS answer."""
    from wxpay.xmlcodec import parse_xml

    openid = await openid_at_simulator(sim_port, f"relay-{tag}")
    out_trade_no = f"relay{tag}"
    base = {"appid": demo.OFFICIAL_ACCOUNT_APPID, "mch_id": demo.MCH_ID, "out_trade_no": out_trade_no}

    def signed(fields: dict[str, str]) -> bytes:
        fields = {**base, "nonce_str": signing.make_nonce(), **fields}
        return build_xml({**fields, "sign": signing.sign(fields, demo.API_KEY)})

    order = signed({"body": "Bench tea", "total_fee": "100", "spbill_create_ip": "127.0.0.1", "trade_type": "JSAPI",
                    "notify_url": "http://127.0.0.1:9/notify", "openid": openid})
    [(status, _, reply)] = await fetch_all(sim_port, [("POST", "/pay/unifiedorder", {}, order)], 1)
    prepay_id = parse_xml(reply).get("prepay_id")
    assert status == 200 and prepay_id, reply[:300]
    [(status, _, reply)] = await fetch_all(sim_port, [("POST", "/_sim/pay", {"Content-Type": "application/json"},
                                                       json.dumps({"prepay_id": prepay_id, "outcome": "ok"}))], 1)
    assert status == 200 and json.loads(reply).get("trade_state") == "SUCCESS", reply[:300]

    v2 = {"method": "POST", "path": "/pay/orderquery", "headers": {"Content-Type": "text/xml"},
          "body": signed({}).decode()}
    [(status, _, reply)] = await fetch_all(sim_port, [(v2["method"], v2["path"], v2["headers"], v2["body"])], 1)
    answer = parse_xml(reply)
    assert status == 200 and answer.get("trade_state") == "SUCCESS", reply[:300]
    assert answer.get("sign") == signing.sign(answer, demo.API_KEY), reply[:300]

    creds = credentials()
    path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={creds['mchid']}"
    stamp, nonce = str(int(datetime.now(CHINA).timestamp())), secrets.token_hex(16)
    key = serialization.load_pem_private_key(creds["merchant_private_key_pem"].encode(), password=None)
    signature = base64.b64encode(key.sign(f"GET\n{path}\n{stamp}\n{nonce}\n\n".encode(), padding.PKCS1v15(),
                                          hashes.SHA256())).decode()
    v3 = {"method": "GET", "path": path, "body": None, "headers": {
        "Accept": "application/json", "Wechatpay-Serial": creds["wechatpay_public_key_id"],
        "Authorization": f'WECHATPAY2-SHA256-RSA2048 mchid="{creds["mchid"]}",nonce_str="{nonce}",'
                         f'timestamp="{stamp}",serial_no="{creds["merchant_serial_no"]}",signature="{signature}"'}}
    [(status, headers, reply)] = await fetch_all(sim_port, [(v3["method"], path, v3["headers"], b"")], 1)
    assert status == 200 and json.loads(reply).get("trade_state") == "SUCCESS", reply[:300]
    wechat = serialization.load_pem_public_key(creds["wechatpay_public_key_pem"].encode())
    wechat.verify(base64.b64decode(headers["wechatpay-signature"]),
                  f"{headers['wechatpay-timestamp']}\n{headers['wechatpay-nonce']}\n".encode() + reply + b"\n",
                  padding.PKCS1v15(), hashes.SHA256())
    return {"v2": v2, "v3": v3}
