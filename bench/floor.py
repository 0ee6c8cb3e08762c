"""The floor: only the mandatory work of a safe prepay and first-time notify, in a bare Tornado app.

No framework of ours and no wxpay import: the standard library, ``cryptography``
and Tornado's curl client (kept-alive connections, as our server and the relay
use). ``bench/run.py`` feeds it the same pools as the peer (orders in its own
SQLite file, the same notifies) against the same simulator, so the gap between
the relay row and this one is what the protocol itself costs; the gap between
this row and ours is what our server adds.

Per request, and nothing else:
- prepay: the openid from a signed cookie, the order row, a signed
  ``pay/unifiedorder`` (V2, MD5) or V3 JSAPI order (RSA-signed request), the
  reply's signature verified, prepay_id stored (one commit), the signed JSAPI
  payload (MD5 / RSA paySign) returned;
- V2 notify: parse the XML (no DTD), verify the MD5 signature, amount against
  the order row, signed ``pay/orderquery``, verify the reply's signature,
  check trade_state, amount and transaction_id, one compare-and-set commit,
  then reply;
- V3 notify: verify the RSA signature over timestamp, nonce and body (key id
  and the 300 s window), AES-256-GCM decrypt, the same checks against the
  order row, a query by out_trade_no (RSA-signed, reply signature verified),
  one compare-and-set commit, then 204.
No audit, no log line, no lease, no XSRF token, no webhook: what our server
does beyond this is in bench/peer/README.md's "what still differs".

    FLOOR_CONFIG=cfg.json python bench/floor.py PORT
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from urllib.parse import quote

import tornado.web
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tornado.curl_httpclient import CurlAsyncHTTPClient

with open(os.environ["FLOOR_CONFIG"], encoding="utf-8") as f:
    CONFIG = json.load(f)

BASE, APPID, MCHID = CONFIG["wechat_base"], CONFIG["appid"], CONFIG["mchid"]
API_KEY, V3_KEY = CONFIG["api_key"], CONFIG["apiv3_key"].encode()
MERCHANT_KEY = serialization.load_pem_private_key(CONFIG["merchant_private_key_pem"].encode(), password=None)
WECHAT_KEY = serialization.load_pem_public_key(CONFIG["wechatpay_public_key_pem"].encode())
WINDOW = 300  # seconds a V3 signature's timestamp may be off
SCHEMA = """CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, amount_fen INTEGER NOT NULL,
  description TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'created', openid TEXT, prepay_id TEXT,
  transaction_id TEXT, paid_at TEXT)"""


class Refused(Exception):
    """A request to refuse: (HTTP status, message)."""


# ---- V2: XML and MD5 -----------------------------------------------------------


def nonce() -> str:
    return secrets.token_hex(16)


def v2_sign(fields: dict[str, str]) -> str:
    text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v and k != "sign")
    return hashlib.md5(f"{text}&key={API_KEY}".encode()).hexdigest().upper()


def v2_parse(body: bytes) -> dict[str, str]:
    """A flat signed ``<xml>``: its fields, once the signature checks (MD5; WeChat's notify has no sign_type)."""
    if b"<!" in body.replace(b"<![CDATA[", b""):
        raise Refused(400, "DTD or comment refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise Refused(400, "malformed XML") from None
    fields = {child.tag: child.text or "" for child in root}
    if fields.get("sign_type", "MD5") != "MD5" or not hmac.compare_digest(fields.get("sign", ""), v2_sign(fields)):
        raise Refused(400, "bad signature")
    return fields


def v2_xml(fields: dict[str, str]) -> bytes:
    return ("<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>").encode()


async def v2_call(path: str, fields: dict[str, str]) -> dict[str, str]:
    """POST a signed request; the reply's fields once its signature and both codes say SUCCESS."""
    fields = {"appid": APPID, "mch_id": MCHID, "nonce_str": nonce(), **fields}
    fields["sign"] = v2_sign(fields)
    reply = await CLIENT.fetch(f"{BASE}/{path}", method="POST", body=v2_xml(fields), raise_error=False,
                               request_timeout=10)
    if reply.code != 200:
        raise Refused(502, f"{path}: HTTP {reply.code}")
    out = v2_parse(reply.body)
    if out.get("return_code") != "SUCCESS" or out.get("result_code") != "SUCCESS" or out.get("mch_id") != MCHID:
        raise Refused(502, f"{path}: {out.get('err_code') or out.get('return_msg')}")
    return out


# ---- V3: RSA and AES-GCM ----------------------------------------------------------


def rsa_sign(message: str) -> str:
    return base64.b64encode(MERCHANT_KEY.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def v3_verify(headers, body: bytes) -> None:
    """WeChat's signature over a notify or a reply: its key id, the time window, then RSA."""
    stamp, nonce_ = headers.get("Wechatpay-Timestamp", ""), headers.get("Wechatpay-Nonce", "")
    if headers.get("Wechatpay-Serial") != CONFIG["wechatpay_public_key_id"]:
        raise Refused(401, "unknown Wechatpay-Serial")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > WINDOW:
        raise Refused(401, "timestamp outside the window")
    try:
        WECHAT_KEY.verify(base64.b64decode(headers.get("Wechatpay-Signature", "")),
                          b"%s\n%s\n%s\n" % (stamp.encode(), nonce_.encode(), body), padding.PKCS1v15(),
                          hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise Refused(401, "bad signature") from None


async def v3_call(method: str, path: str, body: dict | None = None) -> dict:
    """A signed V3 request; the reply's JSON once its signature checks."""
    data = json.dumps(body, separators=(",", ":")) if body is not None else ""
    stamp, nonce_ = str(int(time.time())), nonce()
    signature = rsa_sign(f"{method}\n{path}\n{stamp}\n{nonce_}\n{data}\n")
    auth = (f'WECHATPAY2-SHA256-RSA2048 mchid="{MCHID}",nonce_str="{nonce_}",timestamp="{stamp}",'
            f'serial_no="{CONFIG["merchant_serial_no"]}",signature="{signature}"')
    headers = {"Authorization": auth, "Accept": "application/json", "Content-Type": "application/json",
               "Wechatpay-Serial": CONFIG["wechatpay_public_key_id"]}
    reply = await CLIENT.fetch(BASE + path, method=method, headers=headers, body=data if method == "POST" else None,
                               raise_error=False, request_timeout=10)
    if reply.code == 599:
        raise Refused(502, f"{path}: {reply.error}")
    v3_verify(reply.headers, reply.body)  # WeChat signs its errors too
    if reply.code != 200:
        raise Refused(502, f"{path}: HTTP {reply.code}")
    return json.loads(reply.body)


# ---- the store: one connection, WAL, every write committed before the reply ------------


def order_row(order_id: str) -> tuple[int, str]:
    row = DB.execute("SELECT amount_fen, state FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise Refused(404, "unknown order")
    return row


def mark_paid(order_id: str, transaction_id: str) -> None:
    """The one durable change: prepaid → paid, or already paid by a concurrent duplicate."""
    with DB:
        moved = DB.execute("UPDATE orders SET state = 'paid', transaction_id = ?, paid_at = ? "
                           "WHERE id = ? AND state = 'prepaid'",
                           (transaction_id, datetime.now(timezone.utc).isoformat(), order_id)).rowcount
    if not moved and order_row(order_id)[1] != "paid":
        raise Refused(409, "order is not awaiting payment")


# ---- handlers --------------------------------------------------------------------


class Prepay(tornado.web.RequestHandler):
    async def post(self, order_id: str) -> None:
        try:
            openid = (self.get_signed_cookie("openid") or b"").decode()
            if not openid:
                raise Refused(401, "sign in through WeChat first")
            row = DB.execute("SELECT amount_fen, state, description FROM orders WHERE id = ?", (order_id,)).fetchone()
            if row is None:
                raise Refused(404, "unknown order")
            amount, state, description = row
            if state not in ("created", "prepaid"):
                raise Refused(409, "order is " + state)
            notify_url = f"{CONFIG['public_url']}/notify/{CONFIG['api_version']}"
            if CONFIG["api_version"] == "v2":
                reply = await v2_call("pay/unifiedorder", {
                    "body": description, "out_trade_no": order_id, "total_fee": str(amount),
                    "spbill_create_ip": self.request.remote_ip, "notify_url": notify_url, "trade_type": "JSAPI",
                    "openid": openid})
            else:
                reply = await v3_call("POST", "/v3/pay/transactions/jsapi", {
                    "appid": APPID, "mchid": MCHID, "description": description, "out_trade_no": order_id,
                    "notify_url": notify_url, "amount": {"total": amount, "currency": "CNY"},
                    "payer": {"openid": openid}})
            prepay_id = reply.get("prepay_id")
            if not prepay_id:
                raise Refused(502, "no prepay_id")
            with DB:
                DB.execute("UPDATE orders SET state = 'prepaid', openid = ?, prepay_id = ? "
                           "WHERE id = ? AND state IN ('created', 'prepaid')", (openid, prepay_id, order_id))
        except Refused as exc:
            return self.refuse(*exc.args)
        payload = {"appId": APPID, "timeStamp": str(int(time.time())), "nonceStr": nonce(),
                   "package": "prepay_id=" + prepay_id}
        if CONFIG["api_version"] == "v2":
            payload["signType"] = "MD5"
            payload["paySign"] = v2_sign(payload)
        else:
            payload["signType"] = "RSA"
            payload["paySign"] = rsa_sign("".join(payload[k] + "\n" for k in ("appId", "timeStamp", "nonceStr",
                                                                                 "package")))
        self.write(payload)

    def refuse(self, status: int, message: str) -> None:
        self.set_status(status)
        self.write({"code": "REFUSED", "message": message})


class NotifyV2(tornado.web.RequestHandler):
    async def post(self) -> None:
        try:
            data = v2_parse(self.request.body)
            if data.get("return_code") != "SUCCESS" or data.get("result_code") != "SUCCESS":
                return self.answer("SUCCESS", "OK")  # a failed payment: nothing to record
            if data.get("appid") != APPID or data.get("mch_id") != MCHID:
                raise Refused(400, "not our merchant")
            order_id = data.get("out_trade_no", "")
            amount, state = order_row(order_id)
            if data.get("total_fee") != str(amount):
                raise Refused(400, "amount mismatch")
            if state != "paid":
                paid = await v2_call("pay/orderquery", {"out_trade_no": order_id})  # ask WeChat itself
                if (paid.get("trade_state") != "SUCCESS" or paid.get("total_fee") != str(amount)
                        or paid.get("out_trade_no") != order_id
                        or paid.get("transaction_id") != data.get("transaction_id")):
                    raise Refused(409, "not paid at WeChat")
                mark_paid(order_id, paid["transaction_id"])
        except Refused as exc:
            self.set_status(exc.args[0])
            return self.answer("FAIL", exc.args[1])
        self.answer("SUCCESS", "OK")

    def answer(self, code: str, message: str) -> None:
        self.set_header("Content-Type", "text/xml")
        self.write(v2_xml({"return_code": code, "return_msg": message}))


class NotifyV3(tornado.web.RequestHandler):
    async def post(self) -> None:
        try:
            v3_verify(self.request.headers, self.request.body)
            try:
                event = json.loads(self.request.body)
                resource = event["resource"]
                if event["event_type"] != "TRANSACTION.SUCCESS" or resource["algorithm"] != "AEAD_AES_256_GCM":
                    raise Refused(400, "not a payment success")
                paid = json.loads(AESGCM(V3_KEY).decrypt(
                    resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                    resource.get("associated_data", "").encode()))
                order_id, total, transaction_id = paid["out_trade_no"], paid["amount"]["total"], paid["transaction_id"]
            except (ValueError, KeyError, TypeError, InvalidTag):
                raise Refused(400, "malformed or undecryptable notify") from None
            if paid.get("mchid") != MCHID or paid.get("appid") != APPID:
                raise Refused(400, "not our merchant")
            amount, state = order_row(order_id)
            if total != amount:
                raise Refused(400, "amount mismatch")
            if state != "paid":
                queried = await v3_call("GET", f"/v3/pay/transactions/out-trade-no/{quote(order_id)}?mchid={MCHID}")
                if (queried.get("trade_state") != "SUCCESS" or (queried.get("amount") or {}).get("total") != amount
                        or queried.get("out_trade_no") != order_id or queried.get("transaction_id") != transaction_id):
                    raise Refused(409, "not paid at WeChat")
                mark_paid(order_id, transaction_id)
        except Refused as exc:
            self.set_status(exc.args[0])
            return self.write({"code": "FAIL", "message": exc.args[1]})
        self.set_status(204)


class Health(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("ok")


async def main(port: int) -> None:
    global CLIENT, DB
    CLIENT = CurlAsyncHTTPClient(force_instance=True, max_clients=100)
    DB = sqlite3.connect(CONFIG["database"])
    DB.execute("PRAGMA journal_mode = WAL")
    DB.execute("PRAGMA synchronous = NORMAL")
    DB.execute(SCHEMA)
    app = tornado.web.Application([
        (r"/pay/([^/]+)/prepay", Prepay), (r"/notify/v2", NotifyV2), (r"/notify/v3", NotifyV3),
        (r"/healthz", Health)], cookie_secret=CONFIG["secret_key"])
    app.listen(port, "127.0.0.1")
    print(f"floor listening on 127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
