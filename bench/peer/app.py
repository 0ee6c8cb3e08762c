"""The peer: the same payment journey, written by hand the way a merchant would.

Flask + sqlite3 + wechatpy (APIv2) or wechatpayv3 (APIv3), served by gunicorn.
Nothing here imports wxpay-server: it is what a merchant who follows those
libraries' own documentation would write instead of running our server, so
``bench/run.py`` can compare the two on the same load. Read README.md beside
this file for every place where it departs from a production deployment and why.

Settings come from the JSON file named by ``PEER_CONFIG`` (bench/run.py writes it).
"""
import json
import os
import sqlite3
import time
import uuid
from datetime import datetime, timezone

import requests
import wechatpayv3.core
from flask import Flask, g, jsonify, request, session
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException
from wechatpy.pay import WeChatPay as WeChatPayV2
from wechatpayv3 import WeChatPay as WeChatPayV3
from wechatpayv3 import WeChatPayType

with open(os.environ["PEER_CONFIG"], encoding="utf-8") as f:
    CONFIG = json.load(f)

app = Flask(__name__)
app.secret_key = CONFIG["secret_key"]

# APIv2 with wechatpy. Its only way to another host is the class attribute
# API_BASE_URL (``sandbox=True`` would call /sandboxnew/ on WeChat's host).
pay_v2 = WeChatPayV2(appid=CONFIG["appid"], api_key=CONFIG["api_key"], mch_id=CONFIG["mchid"], timeout=10)
pay_v2.API_BASE_URL = CONFIG["wechat_base"] + "/"

# APIv3 with wechatpayv3 (WeChat Pay public key mode). It has no setting for
# the host: Core hard-codes it in ``_gate_way``, which is replaced here.
pay_v3 = WeChatPayV3(
    wechatpay_type=WeChatPayType.JSAPI,
    mchid=CONFIG["mchid"],
    private_key=CONFIG["merchant_private_key_pem"],
    cert_serial_no=CONFIG["merchant_serial_no"],
    appid=CONFIG["appid"],
    apiv3_key=CONFIG["apiv3_key"],
    notify_url=CONFIG["public_url"] + "/notify/v3",
    timeout=(5, 10),
    public_key=CONFIG["wechatpay_public_key_pem"],
    public_key_id=CONFIG["wechatpay_public_key_id"],
)
pay_v3._core._gate_way = CONFIG["wechat_base"]
# wechatpayv3 calls requests.get/post, a new TCP connection per call; wechatpy
# (above) and our server keep theirs alive, so the peer gets a Session too
# (same methods and arguments): the comparison should not hinge on connect().
wechatpayv3.core.requests = requests.Session()

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,              -- our out_trade_no
    amount_fen INTEGER NOT NULL,
    description TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'created',   -- created, prepaid, paid
    openid TEXT,
    prepay_id TEXT,
    transaction_id TEXT,
    paid_at TEXT
)
"""


def init_db(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA)
    db.close()


init_db(CONFIG["database"])  # each worker at import; CREATE ... IF NOT EXISTS


def get_db():
    """One connection per request, closed at teardown (Flask's tutorial pattern)."""
    if "db" not in g:
        g.db = sqlite3.connect(CONFIG["database"], timeout=5.0)
        g.db.row_factory = sqlite3.Row
        g.db.execute("PRAGMA synchronous = NORMAL")
    return g.db


@app.teardown_appcontext
def close_db(exc):
    db = g.pop("db", None)
    if db is not None:
        db.close()


def now_iso():
    return datetime.now(timezone.utc).isoformat()


# ---- the shopper's page asks to pay ---------------------------------------------


@app.post("/pay/<order_id>/prepay")
def prepay(order_id):
    openid = session.get("openid")  # set by the app's OAuth callback
    if not openid:
        return jsonify(error="sign in through WeChat first"), 401
    db = get_db()
    order = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if order is None:
        return jsonify(error="no such order"), 404
    if order["state"] not in ("created", "prepaid"):
        return jsonify(error="order is " + order["state"]), 409

    if CONFIG["api_version"] == "v2":
        try:
            result = pay_v2.order.create(
                trade_type="JSAPI", body=order["description"], total_fee=order["amount_fen"],
                notify_url=CONFIG["public_url"] + "/notify/v2", client_ip=request.remote_addr,
                user_id=openid, out_trade_no=order_id,
            )
        except WeChatPayException as e:
            return jsonify(error="unifiedorder failed: %s" % e), 502
        prepay_id = result["prepay_id"]
        payload = pay_v2.jsapi.get_jsapi_params(prepay_id)
    else:
        code, message = pay_v3.pay(
            description=order["description"], out_trade_no=order_id,
            amount={"total": order["amount_fen"]}, payer={"openid": openid},
        )
        if code != 200:
            return jsonify(error="order failed: %s" % message), 502
        prepay_id = json.loads(message)["prepay_id"]
        timestamp = str(int(time.time()))
        nonce = uuid.uuid4().hex
        package = "prepay_id=" + prepay_id
        payload = {
            "appId": CONFIG["appid"], "timeStamp": timestamp, "nonceStr": nonce, "package": package,
            "signType": "RSA", "paySign": pay_v3.sign([CONFIG["appid"], timestamp, nonce, package]),
        }

    with db:
        db.execute("UPDATE orders SET state = 'prepaid', openid = ?, prepay_id = ? "
                   "WHERE id = ? AND state IN ('created', 'prepaid')", (openid, prepay_id, order_id))
    return jsonify(payload)


# ---- WeChat tells us an order was paid --------------------------------------------


def reply_v2(code, msg="OK"):
    body = "<xml><return_code><![CDATA[%s]]></return_code><return_msg><![CDATA[%s]]></return_msg></xml>" % (code, msg)
    return body, 200, {"Content-Type": "application/xml"}


def mark_paid(db, order_id, transaction_id):
    """The one durable change: a compare-and-set on the state."""
    with db:
        db.execute("UPDATE orders SET state = 'paid', transaction_id = ?, paid_at = ? "
                   "WHERE id = ? AND state = 'prepaid'", (transaction_id, now_iso(), order_id))


@app.post("/notify/v2")
def notify_v2():
    try:
        data = pay_v2.parse_payment_result(request.data)  # checks the signature
    except InvalidSignatureException:
        return reply_v2("FAIL", "bad signature")
    if data.get("return_code") != "SUCCESS" or data.get("result_code") != "SUCCESS":
        return reply_v2("SUCCESS")  # a failed payment: nothing to record
    order_id = data["out_trade_no"]
    db = get_db()
    order = db.execute("SELECT amount_fen, state FROM orders WHERE id = ?", (order_id,)).fetchone()
    if order is None:
        return reply_v2("FAIL", "unknown order")
    if data["total_fee"] != order["amount_fen"]:
        return reply_v2("FAIL", "amount mismatch")
    if order["state"] == "paid":
        return reply_v2("SUCCESS")
    try:  # ask WeChat itself before believing the notify
        queried = pay_v2.order.query(out_trade_no=order_id)
    except WeChatPayException:
        return reply_v2("FAIL", "orderquery failed")
    if queried.get("trade_state") != "SUCCESS" or int(queried["total_fee"]) != order["amount_fen"]:
        return reply_v2("FAIL", "not paid at WeChat")
    mark_paid(db, order_id, queried["transaction_id"])
    return reply_v2("SUCCESS")


@app.post("/notify/v3")
def notify_v3():
    event = pay_v3.callback(request.headers, request.data)  # verifies, then decrypts
    if not event or event.get("event_type") != "TRANSACTION.SUCCESS":
        return jsonify(code="FAIL", message="bad notify"), 400
    paid = event["resource"]
    order_id = paid["out_trade_no"]
    db = get_db()
    order = db.execute("SELECT amount_fen, state FROM orders WHERE id = ?", (order_id,)).fetchone()
    if order is None:
        return jsonify(code="FAIL", message="unknown order"), 400
    if paid["amount"]["total"] != order["amount_fen"]:
        return jsonify(code="FAIL", message="amount mismatch"), 400
    if order["state"] == "paid":
        return "", 204
    code, message = pay_v3.query(out_trade_no=order_id)  # ask WeChat itself
    if code != 200:
        return jsonify(code="FAIL", message="query failed"), 500
    queried = json.loads(message)
    if queried.get("trade_state") != "SUCCESS" or queried["amount"]["total"] != order["amount_fen"]:
        return jsonify(code="FAIL", message="not paid at WeChat"), 500
    mark_paid(db, order_id, queried["transaction_id"])
    return "", 204


@app.get("/healthz")
def healthz():
    return "ok"
