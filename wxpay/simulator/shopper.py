"""The shopper's side of the simulated WeChat, under ``/_sim/`` (never a WeChat path).

* ``GET /_sim/pay?prepay_id=`` — a page with the four outcomes as buttons.
* ``POST /_sim/pay`` — JSON or form: ``prepay_id``, ``outcome`` (ok | cancel |
  fail | userpaying), optional ``user`` (payer for NATIVE/APP/MWEB),
  ``bank_type`` and ``payload``: the front-end object the merchant built
  (WeixinJSBridge / wx.chooseWXPay / wx.requestPayment / APP PayReq), whose
  paySign is then checked the way the WeChat app checks it (§13).
* ``POST /_sim/scan`` — the NATIVE QR code: ``code_url``, ``outcome``, ``user``.
* ``GET /_sim/mweb?prepay_id=&package=[&redirect_url=]`` — the H5 cashier:
  the checks of §13.6 with WeChat's own error texts; ``POST /_sim/mweb`` pays
  and returns to ``redirect_url``.

The JSON reply carries what the front end would have seen (``result``),
the order's new state and the id of the notify delivery it started.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import tornado.web

from .. import signing
from ..v3.signing import lines_message, rsa_verify
from . import cashier
from .apihandler import SimHandler
from .pay_state import Order, ShopperError

OUTCOMES = ("ok", "cancel", "fail", "userpaying")

MWEB_ERRORS = {  # §13.6: the text the cashier shows for each failed check
    "IN_WECHAT": "请在微信外打开订单，进行支付",
    "EXPIRED": "支付请求已失效，请重新发起支付",
    "NO_REFERER": "商家参数格式有误，请联系商家解决",
    "DOMAIN": "商家存在未配置的参数，请联系商家解决",
    "IP": "网络环境未能通过安全验证，请稍后再试",
}


def front_end_result(order: Order, app_kind: str, outcome: str) -> dict[str, Any]:
    """What the page's callback receives (§13.1, §13.3, §13.4)."""
    if order.trade_type == "APP":
        return {"errCode": {"ok": 0, "cancel": -2}.get(outcome, -1)}
    if order.trade_type == "JSAPI" and app_kind == "mini_program":
        return {"errMsg": {"ok": "requestPayment:ok", "cancel": "requestPayment:fail cancel"}.get(outcome, "requestPayment:fail")}
    if order.trade_type == "JSAPI":
        return {"err_msg": "get_brand_wcpay_request:" + ({"ok": "ok", "cancel": "cancel"}.get(outcome, "fail"))}
    return {"outcome": outcome}


def _rsa_ok(public_key: Any, lines: list[str], given: str) -> bool:
    """V3 orders: paySign is SHA256withRSA by the merchant key over the lines (V3 digest §7)."""
    try:
        signature = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(signature) and rsa_verify(public_key, lines_message(*lines), signature)


def check_payload(order: Order, payload: dict[str, Any], api_key: str, app_kind: str,
                  rsa_public_key: Any = None) -> str | None:
    """Check the merchant-built front-end object like the WeChat app would; None if good.

    V2 orders are checked with the API key and the order's sign type, V3
    orders (``signType`` RSA) with the merchant's public key.
    """
    if not isinstance(payload, dict):
        return "payload must be an object"
    payload = {k: str(v) for k, v in payload.items()}
    if order.trade_type == "APP":
        fields = {k: payload.get(k, "") for k in ("appid", "partnerid", "prepayid", "package", "noncestr", "timestamp")}
        given = payload.get("sign", "")
        if fields["appid"] != order.appid or fields["partnerid"] != order.mch_id:
            return "appid或partnerid与订单不一致"
        if fields["prepayid"] != order.prepay_id or fields["package"] != "Sign=WXPay":
            return "prepayid或package错误"
    else:
        stamp = payload.get("timeStamp") or payload.get("timestamp", "")  # wx.chooseWXPay sends lower-case
        fields = {
            "appId": payload.get("appId") or (order.appid if app_kind == "mini_program" or "timestamp" in payload else ""),
            "timeStamp": stamp, "nonceStr": payload.get("nonceStr", ""),
            "package": payload.get("package", ""), "signType": payload.get("signType", ""),
        }
        given = payload.get("paySign", "")
        if fields["appId"] != order.appid:
            return "appId与下单appid不一致"
        if fields["package"] != f"prepay_id={order.prepay_id}":
            return "缺少参数：total_fee"  # §13.1: expired/foreign prepay_id shows this
        if fields["signType"] != order.sign_type:
            return "signType与下单签名类型不一致"
    if not fields.get("timeStamp", fields.get("timestamp", "")).isdigit():
        return "timeStamp必须是以秒为单位的数字字符串"
    if order.sign_type == "RSA":
        if order.trade_type == "APP":
            lines = [fields["appid"], fields["timestamp"], fields["noncestr"], fields["prepayid"]]
        else:
            lines = [fields["appId"], fields["timeStamp"], fields["nonceStr"], fields["package"]]
        if rsa_public_key is None or "\n" in "".join(lines) or not _rsa_ok(rsa_public_key, lines, given):
            return "支付验证签名失败"
        return None
    try:
        signing.verify({**fields, "sign": given}, api_key, order.sign_type)
    except signing.SignatureError:
        return "支付验证签名失败"
    return None


class ShopperBase(SimHandler):
    def body_args(self) -> dict[str, Any]:
        ctype = self.request.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            try:
                data = json.loads(self.request.body or b"{}")
            except ValueError:
                raise tornado.web.HTTPError(400, reason="body is not JSON")
            if not isinstance(data, dict):
                raise tornado.web.HTTPError(400, reason="body must be a JSON object")
            return data
        return {k: self.get_body_argument(k) for k in self.request.body_arguments}

    def json(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body, ensure_ascii=False))

    def refusal(self, text: str, status: int = 200) -> None:
        """A cashier sheet with only a refusal (no order to show)."""
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Content-Security-Policy", cashier.CSP)
        self.set_header("Cache-Control", "no-store")
        lang = cashier.language(self.request.headers.get("Accept-Language"))
        self.finish(cashier.sheet(lang, merchant="", body="", amount_fen=0, refusal=text))

    def sheet(self, order: Order, status: int = 200, **kw: Any) -> None:
        """The cashier sheet (cashier.py) for ``order``, in the browser's language."""
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Content-Security-Policy", cashier.CSP)
        self.set_header("Cache-Control", "no-store")
        lang = cashier.language(self.request.headers.get("Accept-Language"))
        self.finish(cashier.sheet(lang, merchant=merchant_name(order, lang), body=order.body,
                                  amount_fen=order.total_fee, **kw))

    def pay_order(self, order: Order, args: dict[str, Any]) -> tuple[dict[str, Any], int]:
        outcome = str(args.get("outcome") or "ok")
        app = self.sim.config.app(order.appid)
        kind = app.kind if app else ""
        user = str(args.get("user") or "")
        if user and not self.sim.oauth.valid_user(user):
            return {"ok": False, "error": "user must be 1-64 characters of [A-Za-z0-9_.-]", "reason": "BAD_USER"}, 400
        openid = self.sim.openid_for(order.appid, user) if user else str(args.get("openid") or "")
        base = {"out_trade_no": order.out_trade_no, "outcome": outcome}
        if outcome not in OUTCOMES:
            return {**base, "ok": False, "error": f"outcome must be one of {', '.join(OUTCOMES)}", "reason": "BAD_OUTCOME"}, 400
        if args.get("payload") is not None:
            merchant = self.sim.config.merchant(order.mch_id)
            keyring = self.sim.v3.keyring(order.mch_id) if order.sign_type == "RSA" else None
            problem = check_payload(order, args["payload"], merchant.api_key, kind,
                                    keyring.merchant_key if keyring is not None else None)
            if problem:
                return {**base, "ok": False, "error": problem, "reason": "BAD_PAYLOAD",
                        "result": front_end_result(order, kind, "fail"), "trade_state": order.trade_state}, 200
        try:
            paid = self.sim.pay.pay(order, outcome, openid=openid, bank_type=str(args.get("bank_type") or ""))
        except ShopperError as exc:
            return {**base, "ok": False, "error": exc.message, "reason": exc.reason,
                    "result": front_end_result(order, kind, "fail"), "trade_state": order.trade_state}, 200
        delivery = self.sim.paid(order) if paid else None
        return {
            **base, "ok": True, "result": front_end_result(order, kind, outcome),
            "trade_state": order.trade_state, "transaction_id": order.transaction_id or None,
            "notify_delivery": delivery.id if delivery else None,
        }, 200


class PayPage(ShopperBase):
    def get(self) -> None:
        prepay_id = self.get_query_argument("prepay_id", "")
        order = self.sim.pay.order_by_prepay(prepay_id) if prepay_id else None
        if order is None or order.prepay_id != prepay_id:
            return self.refusal("未找到支付请求（prepay_id 不存在或已被替换）", 404)
        self.sheet(order, action=self.request.path, hidden={"prepay_id": prepay_id})

    def post(self) -> None:
        args = self.body_args()
        prepay_id = str(args.get("prepay_id") or "")
        order = self.sim.pay.order_by_prepay(prepay_id) if prepay_id else None
        if order is None:
            return self.json({"ok": False, "error": "unknown prepay_id", "reason": "NO_SUCH_PREPAY"}, 404)
        if order.prepay_id != prepay_id:
            return self.json({"ok": False, "error": "缺少参数：total_fee", "reason": "PREPAY_SUPERSEDED"}, 200)
        self.json(*self.pay_order(order, args))


class ScanHandler(ShopperBase):
    def post(self) -> None:
        args = self.body_args()
        code_url = str(args.get("code_url") or "")
        order = self.sim.pay.order_by_code_url(code_url) if code_url else None
        if order is None:
            return self.json({"ok": False, "error": "unknown code_url", "reason": "NO_SUCH_CODE"}, 404)
        if order.code_url != code_url:
            return self.json({"ok": False, "error": "二维码已过期，请刷新页面后重新扫描", "reason": "CODE_EXPIRED"}, 200)
        self.json(*self.pay_order(order, args))


def _domain_ok(url: str, allowed: tuple[str, ...] | None) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return False
    if allowed is None:
        return True
    return any(host == d or host.endswith("." + d) for d in allowed)


class MwebPage(ShopperBase):
    """The H5 cashier (§13.6): every failed check shows WeChat's text and names it in X-Sim-Error."""

    def client_ip(self) -> str:
        if self.sim.trust_forwarded_for:
            forwarded = self.request.headers.get("X-Forwarded-For", "")
            if forwarded.strip():
                return forwarded.split(",")[0].strip()
        conn = self.request.connection
        peer = getattr(getattr(conn, "context", None), "address", None)
        if isinstance(peer, tuple) and peer:
            return str(peer[0])
        return self.request.remote_ip or ""

    def allowed_domains(self, order: Order) -> tuple[str, ...] | None:
        """The merchant's configured H5 domains, else scene_info's wap_url host, else any."""
        configured = self.sim.config.extra.get("h5_domains")
        if isinstance(configured, dict):
            configured = configured.get(order.mch_id)
        if configured:
            return tuple(str(d).lower() for d in configured)
        try:
            h5_info = json.loads(order.scene_info or "{}").get("h5_info", {})
            wap_url = h5_info.get("wap_url") or h5_info.get("app_url") or ""  # V2 wap_url, V3 app_url
        except (ValueError, AttributeError):
            wap_url = ""
        host = (urlsplit(str(wap_url)).hostname or "").lower() if wap_url else ""
        return (host,) if host else None

    def refuse(self, code: str, order: Order | None = None) -> None:
        self.set_header("X-Sim-Error", code)
        if order is None:  # nothing to show but WeChat's words
            return self.refusal(MWEB_ERRORS[code])
        self.sheet(order, refusal=MWEB_ERRORS[code])

    def find(self, args: dict[str, Any]) -> Order | None:
        prepay_id = str(args.get("prepay_id") or "")
        order = self.sim.pay.order_by_prepay(prepay_id) if prepay_id else None
        if (order is None or order.prepay_id != prepay_id or order.trade_type != "MWEB"
                or str(args.get("package") or "") != order.mweb_package or not order.mweb_valid(self.sim.clock.now())):
            return None
        return order

    def get(self) -> None:
        args = {k: self.get_query_argument(k, "") for k in ("prepay_id", "package", "redirect_url")}
        if "micromessenger" in self.request.headers.get("User-Agent", "").lower():
            return self.refuse("IN_WECHAT")
        order = self.find(args)
        if order is None:
            return self.refuse("EXPIRED")
        referer = self.request.headers.get("Referer", "")
        if not referer:
            return self.refuse("NO_REFERER", order)
        allowed = self.allowed_domains(order)
        if not _domain_ok(referer, allowed) or (args["redirect_url"] and not _domain_ok(args["redirect_url"], allowed)):
            return self.refuse("DOMAIN", order)
        if self.client_ip() != order.spbill_create_ip:
            return self.refuse("IP", order)
        self.sheet(order, action=self.request.path, hidden=args)

    def post(self) -> None:
        args = self.body_args()
        order = self.find(args)
        if order is None:
            return self.refuse("EXPIRED")
        redirect_url = str(args.get("redirect_url") or "")
        if redirect_url and not _domain_ok(redirect_url, self.allowed_domains(order)):
            return self.refuse("DOMAIN", order)
        result, status = self.pay_order(order, args)
        if redirect_url and status == 200:
            return self.redirect(redirect_url)  # the merchant's page must query, not trust (§13.6)
        self.set_header("X-Sim-Result", "ok" if result.get("ok") else "fail")
        self.sheet(order, status, result=result)


def merchant_name(order: Order, lang: str) -> str:
    """Who the shopper pays, as the merchant named itself to WeChat: the H5 site's name, else its mch_id."""
    try:
        h5_info = json.loads(order.scene_info or "{}").get("h5_info", {})
        name = str(h5_info.get("wap_name") or h5_info.get("app_name") or "")  # V2 wap_name, V3 app_name
    except (ValueError, AttributeError):
        name = ""
    return name or (f"商户 {order.mch_id}" if lang == "zh" else f"Merchant {order.mch_id}")


def pay_page_url(base: str, prepay_id: str) -> str:
    return f"{base}/_sim/pay?{urlencode({'prepay_id': prepay_id})}"


def routes(sim: Any) -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    kw = {"sim": sim}
    return [
        (r"/_sim/pay", PayPage, kw),
        (r"/_sim/scan", ScanHandler, kw),
        (r"/_sim/mweb", MwebPage, kw),
    ] + cashier.routes(sim)
