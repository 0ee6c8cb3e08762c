"""The V3 business APIs on the one order book (:class:`~..pay_state.PayState`).

Orders and refunds are shared with V2: an order placed through either
version can be queried, closed and refunded through the other (same mchid),
as at WeChat. This module reads V3 JSON into PayState's moves and writes
PayState's records as V3 JSON; it raises :class:`~.wire.V3Error` with
WeChat's statuses (digest §4, §5). Choices where the digest is silent or
unverified are marked "choice" and listed in docs/simulator.md.
"""
from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime, timedelta
from typing import Any, Mapping
from urllib.parse import urlsplit

from wxpay.errors import ProtocolError
from wxpay.timeutil import parse_rfc3339, rfc3339_time

from ..config import SimConfig, SimMerchant
from ..pay_state import STATE_DESC, Order, PayState, Refund
from .wire import V3Error, param_error

# The path names the trade type (digest §5.1); H5 is MWEB in queries, as in V2.
TRADE_TYPES = {"jsapi": "JSAPI", "native": "NATIVE", "app": "APP", "h5": "MWEB"}
_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-*]{6,32}$")  # §5.1: V3 allows no '|' or '@'
_OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")  # §5.4
_MAX_FEN = 10**10
H5_TYPES = ("Wap", "iOS", "Android")
# One refund record for both versions: V2's statuses as V3 spells them.
V3_REFUND_STATUS = {"SUCCESS": "SUCCESS", "REFUNDCLOSE": "CLOSED", "PROCESSING": "PROCESSING", "CHANGE": "ABNORMAL"}
REFUND_EVENT = {"SUCCESS": ("REFUND.SUCCESS", "退款成功"), "CLOSED": ("REFUND.CLOSED", "退款关闭"),
                "ABNORMAL": ("REFUND.ABNORMAL", "退款异常")}


# --- field readers ----------------------------------------------------------------


def _text(obj: Mapping[str, Any], name: str, path: str, *, required: bool = False, max_bytes: int = 0) -> str:
    if name not in obj:
        if required:
            raise param_error(path + name, "必填字段缺失")
        return ""
    value = obj[name]
    if not isinstance(value, str):
        raise param_error(path + name, "应为字符串", value=value)
    if required and not value:
        raise param_error(path + name, "不能为空字符串")
    if max_bytes and len(value.encode("utf-8")) > max_bytes:
        raise param_error(path + name, f"长度超过{max_bytes}字节", value=value[:64])
    return value


def _object(obj: Mapping[str, Any], name: str, path: str, *, required: bool = False) -> dict[str, Any] | None:
    if name not in obj:
        if required:
            raise param_error(path + name, "必填字段缺失")
        return None
    value = obj[name]
    if not isinstance(value, dict):
        raise param_error(path + name, "应为JSON对象")
    return value


def _fen(obj: Mapping[str, Any], name: str, path: str) -> int:
    if name not in obj:
        raise param_error(path + name, "必填字段缺失")
    value = obj[name]
    if type(value) is not int:  # bool and float are refused: amounts are integer fen
        raise param_error(path + name, "应为整数，单位为分", value=value)
    if not 1 <= value <= _MAX_FEN:
        raise param_error(path + name, "应为大于0的整数，单位为分", value=value)
    return value


def _currency(obj: Mapping[str, Any], path: str) -> str:
    currency = _text(obj, "currency", path) or "CNY"
    if currency != "CNY":
        raise param_error(path + "currency", "境内商户仅支持CNY", value=currency)
    return currency


def _ip(value: str, path: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise param_error(path, "不是合法的IP地址", value=value[:64]) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_notify_url(url: str, path: str, config: SimConfig) -> None:
    """https, absolute, no query or fragment, ≤255 (digest §5.1).

    Sandbox choice: plain http is accepted for loopback hosts (tests and the
    in-process sandbox) and for the hosts in ``v3_http_notify_hosts``.
    """
    parts = urlsplit(url)
    if len(url) > 255 or not parts.netloc or not parts.hostname or parts.query or parts.fragment or "?" in url:
        raise param_error(path, "应为不带参数的https绝对地址，不超过255字符", value=url[:64])
    if parts.scheme == "https":
        return
    allowed = {str(h).lower() for h in config.extra.get("v3_http_notify_hosts", ())}
    if parts.scheme == "http" and (_is_loopback(parts.hostname) or parts.hostname.lower() in allowed):
        return
    raise param_error(path, "通知地址必须是https地址", value=url[:64])


# --- orders (digest §5.1-§5.3) ----------------------------------------------------------


def _check_app(config: SimConfig, merchant: SimMerchant, appid: str, trade_type: str) -> None:
    app = config.app(appid)
    if app is None or appid not in merchant.appids:
        raise V3Error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配，请检查appid是否已绑定到该商户号",
                      {"field": "/appid", "location": "body", "value": appid[:32]})
    if (trade_type == "APP") != (app.kind == "mobile_app"):
        # Choice: the digest names no code; the request is well-formed but the appid's kind does not fit.
        want = "开放平台移动应用" if trade_type == "APP" else "公众号或小程序"
        raise V3Error(400, "INVALID_REQUEST", f"{trade_type}支付须使用{want}的appid")


def place_order(pay: PayState, config: SimConfig, merchant: SimMerchant, kind: str, body: Mapping[str, Any],
                now: datetime) -> Order:
    """POST /v3/pay/transactions/{jsapi,native,app,h5}: a new order, or the same one again."""
    trade_type = TRADE_TYPES[kind]
    appid = _text(body, "appid", "/", required=True, max_bytes=32)
    description = _text(body, "description", "/", required=True, max_bytes=127)
    out_trade_no = _text(body, "out_trade_no", "/", required=True)
    if not _OUT_TRADE_NO.match(out_trade_no):
        raise param_error("/out_trade_no", "应为6-32位数字、大小写字母或_-*", value=out_trade_no[:64])
    attach = _text(body, "attach", "/", max_bytes=128)
    goods_tag = _text(body, "goods_tag", "/", max_bytes=32)
    notify_url = _text(body, "notify_url", "/", required=True)
    check_notify_url(notify_url, "/notify_url", config)
    amount = _object(body, "amount", "/", required=True)
    total = _fen(amount, "total", "/amount/")
    currency = _currency(amount, "/amount/")
    time_expire = None
    if "time_expire" in body:
        text = _text(body, "time_expire", "/")
        try:
            time_expire = parse_rfc3339(text)
        except ProtocolError:
            raise param_error("/time_expire", "应为RFC 3339格式，如2026-01-01T12:00:00+08:00", value=text[:40]) from None
        if time_expire - now < timedelta(minutes=1):
            raise V3Error(400, "INVALID_REQUEST", "time_expire时间过短，至少1分钟")
    for name in ("detail", "settle_info"):
        _object(body, name, "/")
    if "support_fapiao" in body and not isinstance(body["support_fapiao"], bool):
        raise param_error("/support_fapiao", "应为布尔值")
    scene = _object(body, "scene_info", "/", required=trade_type == "MWEB") or {}
    client_ip = _text(scene, "payer_client_ip", "/scene_info/", required=trade_type == "MWEB", max_bytes=45)
    if client_ip:
        _ip(client_ip, "/scene_info/payer_client_ip")
    if trade_type == "MWEB":
        h5 = _object(scene, "h5_info", "/scene_info/", required=True)
        h5_type = _text(h5, "type", "/scene_info/h5_info/", required=True)
        if h5_type not in H5_TYPES:
            raise param_error("/scene_info/h5_info/type", f"应为{'、'.join(H5_TYPES)}之一", value=h5_type[:16])
    openid = ""
    payer = _object(body, "payer", "/", required=trade_type == "JSAPI")
    if trade_type == "JSAPI":
        openid = _text(payer, "openid", "/payer/", required=True, max_bytes=128)
    _check_app(config, merchant, appid, trade_type)
    if openid and not pay.openid_belongs(appid, openid):
        raise V3Error(400, "PARAM_ERROR", "appid和openid不匹配",  # as V2's simulator (S11)
                      {"field": "/payer/openid", "location": "body", "issue": "openid不属于该appid"})

    fingerprint = {
        "api": "v3", "appid": appid, "trade_type": trade_type, "body": description, "attach": attach,
        "total_fee": str(total), "fee_type": currency, "notify_url": notify_url, "openid": openid,
        "goods_tag": goods_tag, "detail": json.dumps(body.get("detail"), sort_keys=True, ensure_ascii=False),
    }
    order = pay.order(merchant.mch_id, out_trade_no)
    if order is not None:
        if order.trade_state in ("SUCCESS", "REFUND"):
            # Choice: the digest finds no V3 code for this (ORDERPAID is V2's); the issue names ORDERPAID.
            raise V3Error(403, "ORDERPAID", "该订单已支付，请勿重复下单")
        if order.trade_state == "CLOSED":
            raise V3Error(400, "ORDER_CLOSED", "订单已关闭，请使用新的商户订单号下单")
        if order.fingerprint != fingerprint:
            raise V3Error(403, "OUT_TRADE_NO_USED", "商户订单号重复，同一商户订单号的下单参数须一致")
        if client_ip:
            order.spbill_create_ip = client_ip
    else:
        order = Order(
            appid=appid, mch_id=merchant.mch_id, out_trade_no=out_trade_no, trade_type=trade_type,
            body=description, total_fee=total, notify_url=notify_url, spbill_create_ip=client_ip,
            sign_type="RSA", created_at=now, fingerprint=fingerprint, attach=attach, fee_type=currency,
            openid=openid, scene_info=json.dumps(scene, ensure_ascii=False) if scene else "",
            time_expire=time_expire, api="v3",
        )
        pay.add_order(order)
    pay.issue_prepay(order, now)
    return order


def find_order(pay: PayState, mch_id: str, *, out_trade_no: str = "", transaction_id: str = "") -> Order:
    order = (pay.order_by_txn(mch_id, transaction_id) if transaction_id
             else pay.order(mch_id, out_trade_no))
    if order is None:
        raise V3Error(404, "ORDER_NOT_EXIST", "订单不存在")
    return order


def transaction_json(order: Order, *, as_paid: bool = False) -> dict[str, Any]:
    """The transaction object of a query reply and of the payment notify (digest §6.3).

    Keys in the order of the vectors' plaintext A1, so the same order makes
    the same bytes. Unpaid orders omit the payment fields. ``as_paid``: the
    payment notify's resource, the transaction as it succeeded (``SUCCESS``),
    even when a retry goes out after a refund turned the order ``REFUND``.
    """
    paid = order.trade_state in ("SUCCESS", "REFUND")
    state = "SUCCESS" if as_paid and paid else order.trade_state
    out: dict[str, Any] = {"mchid": order.mch_id, "appid": order.appid, "out_trade_no": order.out_trade_no}
    if paid:
        out["transaction_id"] = order.transaction_id
        out["trade_type"] = order.trade_type
    out["trade_state"] = state
    out["trade_state_desc"] = STATE_DESC[state]
    if paid:
        out["bank_type"] = order.bank_type
    if order.attach:
        out["attach"] = order.attach
    if paid:
        out["success_time"] = rfc3339_time(order.paid_at)
        out["payer"] = {"openid": order.openid}
        out["amount"] = {"total": order.total_fee, "payer_total": order.cash_fee, "currency": order.fee_type,
                         "payer_currency": order.fee_type}
    else:
        out["amount"] = {"total": order.total_fee, "currency": order.fee_type}
    return out


def close_order(pay: PayState, merchant: SimMerchant, out_trade_no: str, body: Mapping[str, Any]) -> None:
    """POST …/out-trade-no/{no}/close → 204; no five-minute rule in V3 (digest §5.3)."""
    _text(body, "mchid", "/", required=True)
    order = find_order(pay, merchant.mch_id, out_trade_no=out_trade_no)
    if order.trade_state in ("SUCCESS", "REFUND"):
        raise V3Error(403, "ORDERPAID", "订单已支付，不能关单，请当作已支付的订单处理")  # choice, as for placing
    if order.trade_state == "CLOSED":
        raise V3Error(400, "ORDER_CLOSED", "订单已关闭，无需重复关单")
    pay.close(order)


# --- refunds (digest §5.4, §5.5) -----------------------------------------------------------


def refund(pay: PayState, config: SimConfig, merchant: SimMerchant, body: Mapping[str, Any],
           now: datetime) -> tuple[Refund, bool]:
    """POST /v3/refund/domestic/refunds: the refund and whether it is new (same out_refund_no: same refund)."""
    transaction_id = _text(body, "transaction_id", "/", max_bytes=32)
    out_trade_no = _text(body, "out_trade_no", "/", max_bytes=32)
    if not transaction_id and not out_trade_no:
        raise param_error("/out_trade_no", "transaction_id和out_trade_no必须二选一")
    out_refund_no = _text(body, "out_refund_no", "/", required=True)
    if not _OUT_REFUND_NO.match(out_refund_no):
        raise param_error("/out_refund_no", "应为1-64位数字、大小写字母或_-|*@", value=out_refund_no[:64])
    reason = _text(body, "reason", "/", max_bytes=80)
    notify_url = _text(body, "notify_url", "/")
    if "notify_url" in body:
        check_notify_url(notify_url, "/notify_url", config)
    funds_account = _text(body, "funds_account", "/")
    if funds_account not in ("", "AVAILABLE"):
        raise param_error("/funds_account", "仅支持AVAILABLE", value=funds_account[:32])
    amount = _object(body, "amount", "/", required=True)
    refund_fee = _fen(amount, "refund", "/amount/")
    total = _fen(amount, "total", "/amount/")
    _currency(amount, "/amount/")
    if "goods_detail" in body and not isinstance(body["goods_detail"], list):
        raise param_error("/goods_detail", "应为数组")
    order = (pay.order_by_txn(merchant.mch_id, transaction_id) if transaction_id
             else pay.order(merchant.mch_id, out_trade_no))
    if order is None or order.trade_state not in ("SUCCESS", "REFUND"):
        raise V3Error(404, "RESOURCE_NOT_EXISTS", "订单不存在或未支付")
    if transaction_id and out_trade_no and out_trade_no != order.out_trade_no:
        raise V3Error(400, "INVALID_REQUEST", "transaction_id与out_trade_no不是同一笔订单")
    fingerprint = {"out_trade_no": order.out_trade_no, "total_fee": str(total), "refund_fee": str(refund_fee)}
    existing = pay.refund_by_no(merchant.mch_id, out_refund_no)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise V3Error(400, "INVALID_REQUEST", "同一out_refund_no的退款参数与原请求不一致")
        return existing, False
    if total != order.total_fee:
        raise V3Error(400, "INVALID_REQUEST", "amount.total与原订单金额不一致")
    broken = pay.refund_limit(order, refund_fee, now)
    if broken == "overdue":
        raise V3Error(400, "INVALID_REQUEST", "订单已超过退款期限（一年）")
    if broken == "too_many":
        raise V3Error(400, "INVALID_REQUEST", "订单已经超过可退款的最大次数(50)")
    if broken == "not_enough":
        raise V3Error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")  # digest §4: refund > remaining
    new = Refund(
        appid=order.appid, mch_id=merchant.mch_id, out_refund_no=out_refund_no, refund_id=pay.new_refund_id(now),
        out_trade_no=order.out_trade_no, transaction_id=order.transaction_id, total_fee=order.total_fee,
        refund_fee=refund_fee, created_at=now, fingerprint=fingerprint, refund_desc=reason,
        notify_url=notify_url, client_cert="not needed (APIv3)", api="v3", funds_account=funds_account,
    )
    pay.add_refund(order, new)
    return new, True


def find_refund(pay: PayState, mch_id: str, out_refund_no: str) -> Refund:
    found = pay.refund_by_no(mch_id, out_refund_no)
    if found is None:
        raise V3Error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    return found


def refund_status(refund: Refund) -> str:
    return V3_REFUND_STATUS.get(refund.refund_status, refund.refund_status)


def refund_json(refund: Refund) -> dict[str, Any]:
    """The refund object of the refund reply and the refund query (digest §5.4)."""
    out: dict[str, Any] = {
        "refund_id": refund.refund_id, "out_refund_no": refund.out_refund_no,
        "transaction_id": refund.transaction_id, "out_trade_no": refund.out_trade_no,
        "channel": "ORIGINAL", "user_received_account": refund.refund_recv_accout,
    }
    if refund.success_at is not None:
        out["success_time"] = rfc3339_time(refund.success_at)
    out.update({
        "create_time": rfc3339_time(refund.created_at), "status": refund_status(refund),
        "funds_account": refund.funds_account or "UNSETTLED",
        "amount": {"total": refund.total_fee, "refund": refund.refund_fee, "from": [],
                   "payer_total": refund.total_fee, "payer_refund": refund.refund_fee,
                   "settlement_refund": refund.refund_fee, "settlement_total": refund.total_fee,
                   "discount_refund": 0, "currency": "CNY"},
    })
    return out


def refund_notify_json(refund: Refund) -> dict[str, Any]:
    """The refund notify's plaintext, keys in the order of the vectors' A2."""
    out: dict[str, Any] = {
        "mchid": refund.mch_id, "out_trade_no": refund.out_trade_no, "transaction_id": refund.transaction_id,
        "out_refund_no": refund.out_refund_no, "refund_id": refund.refund_id, "refund_status": refund_status(refund),
    }
    if refund.success_at is not None:
        out["success_time"] = rfc3339_time(refund.success_at)
    out["user_received_account"] = refund.refund_recv_accout
    out["amount"] = {"total": refund.total_fee, "refund": refund.refund_fee, "payer_total": refund.total_fee,
                     "payer_refund": refund.refund_fee}
    return out
