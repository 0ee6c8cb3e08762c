"""What the simulated WeChat Pay knows: orders, refunds and the rules between them.

Pure: no HTTP, no event loop. Each API is a method taking the parsed request
fields and returning the business fields of a SUCCESS reply, or raising
:class:`ReturnFail` (layer 1: unsigned, e.g. a bad signature) or
:class:`PayFail` (layer 2: signed, ``result_code=FAIL`` with ``err_code``).
Every rule cites the protocol digest (``../shared/wechat-protocol.md``) by
section; where the digest leaves a choice open the choice is written here.
"""
from __future__ import annotations

import ipaddress
import json
import re
import secrets
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .. import signing
from ..timeutil import CHINA_TZ, parse_wire_time, wire_time
from .clock import Clock
from .config import SimConfig, SimMerchant

PREPAY_TTL = timedelta(hours=2)  # §4.2: prepay_id and code_url live 2 h
MWEB_TTL = timedelta(minutes=5)  # §4.2, §13.6: mweb_url lives 5 min
CLOSE_MIN_AGE = timedelta(minutes=5)  # §6: no closeorder within 5 min of creation
REFUND_MAX_COUNT = 50  # §7: at most 50 partial refunds per order
REFUND_MAX_AGE = timedelta(days=365)  # §7: TRADE_OVERDUE after one year
REFUND_PAGE = 10  # §8: refundquery lists at most 10 refunds per call
TRADE_TYPES = ("JSAPI", "NATIVE", "APP", "MWEB")

_OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_\-|*@]{6,32}")  # §3 (current docs: ≥6, some pages allow @)
_OUT_REFUND_NO = re.compile(r"[A-Za-z0-9_\-|*@]{1,64}")  # §7
_FEN = re.compile(r"[1-9][0-9]{0,9}")  # §3: integer fen > 0, no decimals
_WIRE_TIME = re.compile(r"[0-9]{14}")
_BILL_DATE = re.compile(r"[0-9]{8}")

STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "CLOSED": "订单已关闭",
    "REFUND": "订单发生过退款",
    "USERPAYING": "需要用户输入支付密码",
    "PAYERROR": "支付失败",
    "REVOKED": "已撤销",  # WeChat's word for a revoked (micropay) order; the simulator's tests set it
}

# Fields whose difference makes a repeated out_trade_no "another order" (§4.4).
# nonce_str/sign change on every call by design; time_start/time_expire are
# recomputed by many SDKs on each call, and spbill_create_ip follows the user.
_FINGERPRINT = (
    "appid", "trade_type", "body", "detail", "attach", "total_fee", "fee_type", "notify_url",
    "openid", "product_id", "goods_tag", "limit_pay", "device_info", "sign_type",
)
_REFUND_FINGERPRINT = ("out_trade_no", "total_fee", "refund_fee")
# One refund record for both versions; V3 names two of V2's final states differently.
V3_REFUND_STATUS_TO_V2 = {"CLOSED": "REFUNDCLOSE", "ABNORMAL": "CHANGE"}


class ReturnFail(Exception):
    """Layer-1 failure: ``return_code=FAIL`` + ``return_msg``, unsigned (§1)."""

    def __init__(self, return_msg: str) -> None:
        super().__init__(return_msg)
        self.return_msg = return_msg


class PayFail(Exception):
    """Layer-2 failure: signed, ``result_code=FAIL``, ``err_code``/``err_code_des`` (§1)."""

    def __init__(self, err_code: str, err_code_des: str) -> None:
        super().__init__(f"{err_code}: {err_code_des}")
        self.err_code = err_code
        self.err_code_des = err_code_des


class ShopperError(Exception):
    """A payment the simulated WeChat app refuses (expired prepay, paid order...)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


@dataclass
class Order:
    appid: str
    mch_id: str
    out_trade_no: str
    trade_type: str
    body: str
    total_fee: int
    notify_url: str
    spbill_create_ip: str
    sign_type: str
    created_at: datetime
    fingerprint: dict[str, str]
    attach: str = ""
    device_info: str = ""
    fee_type: str = "CNY"
    openid: str = ""
    product_id: str = ""
    scene_info: str = ""
    time_expire: datetime | None = None
    prepay_id: str = ""
    prepay_issued_at: datetime | None = None
    code_url: str = ""
    mweb_package: str = ""
    mweb_issued_at: datetime | None = None
    trade_state: str = "NOTPAY"
    transaction_id: str = ""
    bank_type: str = ""
    paid_at: datetime | None = None
    cash_fee: int = 0
    is_subscribe: str = ""
    closed_at: datetime | None = None
    refunded_fee: int = 0
    refund_nos: list[str] = field(default_factory=list)
    last_pay_result: str = ""
    api: str = "v2"  # the API version the order was placed with: its notify goes out in that form

    def prepay_valid(self, now: datetime) -> bool:
        return bool(self.prepay_issued_at) and now < self.prepay_issued_at + PREPAY_TTL

    def mweb_valid(self, now: datetime) -> bool:
        return bool(self.mweb_issued_at) and now < self.mweb_issued_at + MWEB_TTL


@dataclass
class Refund:
    appid: str
    mch_id: str
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    total_fee: int
    refund_fee: int
    created_at: datetime
    fingerprint: dict[str, str]
    refund_status: str = "PROCESSING"
    success_at: datetime | None = None
    refund_desc: str = ""
    refund_account: str = "REFUND_SOURCE_UNSETTLED_FUNDS"
    refund_recv_accout: str = "支付用户零钱"
    refund_request_source: str = "API"
    notify_url: str = ""
    client_cert: str = ""  # how the (emulated) TLS client certificate was presented
    api: str = "v2"  # the API version the refund was requested with: its notify goes out in that form
    funds_account: str = ""


def _to_json(obj: Any) -> dict[str, Any]:
    out = asdict(obj)
    for name, value in out.items():
        if isinstance(value, datetime):
            out[name] = value.isoformat()
    return out


def _from_json(cls: type, data: Mapping[str, Any]) -> Any:
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, str) and "datetime" in str(f.type):
            value = datetime.fromisoformat(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _need(params: Mapping[str, str], *names: str) -> None:
    for name in names:
        if not params.get(name):
            raise PayFail("LACK_PARAMS", f"缺少参数{name}")


def _max_len(params: Mapping[str, str], name: str, limit: int, code: str, *, as_bytes: bool = False) -> None:
    value = params.get(name) or ""
    size = len(value.encode("utf-8")) if as_bytes else len(value)
    if size > limit:
        raise PayFail(code, f"{name}字段长度超过限制({limit})")


def _check_notify_url(url: str, code: str, name: str = "notify_url") -> None:
    """§4.1: absolute, no query string, ≤256 (the https/public-domain rules are not simulated)."""
    parts = urlsplit(url)
    if len(url) > 256 or parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise PayFail(code, f"{name}参数格式错误，必须是不带参数的http(s)绝对地址")


class PayState:
    """Orders and refunds of every configured merchant, plus the rules (§4–§9)."""

    def __init__(
        self,
        config: SimConfig,
        clock: Clock,
        *,
        openid_belongs: Callable[[str, str], bool] | None = None,
        default_openid: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        # Supplied by the OAuth side: is this openid a user of that appid?
        self.openid_belongs = openid_belongs or (lambda appid, openid: True)
        self.default_openid = default_openid or (lambda appid: "o" + appid[-8:] + "DefaultShopper00")
        self.close_min_age = CLOSE_MIN_AGE
        self.auto_settle_refunds = True
        self.orders: dict[tuple[str, str], Order] = {}
        self.refunds: dict[tuple[str, str], Refund] = {}
        self._by_prepay: dict[str, tuple[str, str]] = {}
        self._by_txn: dict[str, tuple[str, str]] = {}
        self._by_code: dict[str, tuple[str, str]] = {}
        self._by_refund_id: dict[str, tuple[str, str]] = {}
        self.changed: Callable[[], None] = lambda: None

    # --- common envelope (§1, §2) ------------------------------------------

    def authenticate(self, params: Mapping[str, str], *, sign_fail_msg: str = "签名错误") -> tuple[SimMerchant, str]:
        """Find the merchant and check the signature with its key and the declared sign type."""
        mch_id = params.get("mch_id") or ""
        if not mch_id:
            raise ReturnFail("mch_id参数格式错误")
        merchant = self.config.merchant(mch_id)
        if merchant is None:
            raise ReturnFail("商户号mch_id不存在")
        sign_type = params.get("sign_type") or signing.MD5
        if sign_type not in signing.SIGN_TYPES:
            raise ReturnFail("sign_type参数格式错误")
        try:
            signing.verify(params, merchant.api_key, sign_type)
        except signing.SignatureError:
            raise ReturnFail(sign_fail_msg) from None
        return merchant, sign_type

    def check_app(self, params: Mapping[str, str], merchant: SimMerchant, code: str = "PARAM_ERROR") -> None:
        _need(params, "appid", "nonce_str")
        _max_len(params, "nonce_str", 32, code)
        if self.config.app(params["appid"]) is None:
            raise PayFail("APPID_NOT_EXIST", "appid不存在")
        if params["appid"] not in merchant.appids:
            raise PayFail("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")

    # --- lookups ------------------------------------------------------------

    def order(self, mch_id: str, out_trade_no: str) -> Order | None:
        order = self.orders.get((mch_id, out_trade_no))
        if order is not None:
            self._expire(order)
        return order

    def order_by_prepay(self, prepay_id: str) -> Order | None:
        key = self._by_prepay.get(prepay_id)
        return self.order(*key) if key else None

    def order_by_code_url(self, code_url: str) -> Order | None:
        key = self._by_code.get(code_url)
        return self.order(*key) if key else None

    def _order_by_txn(self, mch_id: str, transaction_id: str) -> Order | None:
        key = self._by_txn.get(transaction_id)
        return self.order(*key) if key and key[0] == mch_id else None

    def _expire(self, order: Order) -> None:
        """An unpaid order past its time_expire is closed by timeout (§5 CLOSED)."""
        if order.trade_state in ("NOTPAY", "USERPAYING") and order.time_expire and self.clock.now() >= order.time_expire:
            order.trade_state = "CLOSED"
            order.closed_at = order.time_expire
            self.changed()

    # --- pay/unifiedorder (§4) ---------------------------------------------

    def unified_order(self, params: Mapping[str, str], merchant: SimMerchant, sign_type: str) -> dict[str, Any]:
        now = self.clock.now()
        code = "INVALID_REQUEST"  # §4.3: malformed params
        self.check_app(params, merchant, code)
        _need(params, "body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url", "trade_type")
        trade_type = params["trade_type"]
        if trade_type not in TRADE_TYPES:
            raise PayFail(code, "trade_type参数格式错误，取值为JSAPI、NATIVE、APP或MWEB")
        if not _OUT_TRADE_NO.fullmatch(params["out_trade_no"]):
            raise PayFail(code, "out_trade_no参数格式错误：6-32位字母、数字或_-|*@")
        if not _FEN.fullmatch(params["total_fee"]):
            raise PayFail(code, "total_fee参数格式错误：必须是大于0的整数(单位分)")
        if (params.get("fee_type") or "CNY") != "CNY":
            raise PayFail(code, "fee_type参数错误：境内商户仅支持CNY")
        for name, limit, as_bytes in (
            ("body", 127, True), ("attach", 127, True), ("detail", 6000, False), ("device_info", 32, False),
            ("goods_tag", 32, False), ("product_id", 32, False), ("openid", 128, False),
            ("scene_info", 256, False), ("spbill_create_ip", 64, False),
        ):
            _max_len(params, name, limit, code, as_bytes=as_bytes)
        _check_notify_url(params["notify_url"], code)
        try:
            ipaddress.ip_address(params["spbill_create_ip"])
        except ValueError:
            raise PayFail(code, "spbill_create_ip参数格式错误") from None
        if params.get("limit_pay") not in (None, "", "no_credit"):
            raise PayFail(code, "limit_pay参数错误，仅支持no_credit")
        time_expire = None
        for name in ("time_start", "time_expire"):
            value = params.get(name)
            if value:
                if not _WIRE_TIME.fullmatch(value):
                    raise PayFail(code, f"{name}参数格式错误，格式为yyyyMMddHHmmss")
                try:
                    parsed = parse_wire_time(value)
                except Exception:
                    raise PayFail(code, f"{name}参数格式错误，格式为yyyyMMddHHmmss") from None
                if name == "time_expire":
                    time_expire = parsed
        if time_expire is not None and time_expire - now < timedelta(minutes=1):
            raise PayFail(code, "time_expire时间过短，至少1分钟")  # §4.1 (current: >1 min)
        app = self.config.app(params["appid"])
        if trade_type == "APP" and app.kind != "mobile_app":
            raise PayFail(code, "APP支付须使用开放平台移动应用的appid")
        if trade_type != "APP" and app.kind == "mobile_app":
            raise PayFail(code, f"{trade_type}支付不能使用移动应用的appid")
        if trade_type == "JSAPI":
            _need(params, "openid")
            if not self.openid_belongs(params["appid"], params["openid"]):
                raise PayFail("PARAM_ERROR", "appid和openid不匹配")  # §4.1, S11
        if trade_type == "NATIVE":
            _need(params, "product_id")
        if trade_type == "MWEB":
            _need(params, "scene_info")
            try:
                scene = json.loads(params["scene_info"])
            except ValueError:
                scene = None
            if not isinstance(scene, dict) or not isinstance(scene.get("h5_info"), dict):
                raise PayFail(code, "scene_info参数格式错误，H5支付需要h5_info")
        fingerprint = {name: params.get(name) or "" for name in _FINGERPRINT}
        fingerprint["sign_type"] = sign_type

        key = (merchant.mch_id, params["out_trade_no"])
        order = self.order(*key)
        if order is not None:
            if order.trade_state in ("SUCCESS", "REFUND"):
                raise PayFail("ORDERPAID", "该订单已支付")
            if order.trade_state == "CLOSED":
                raise PayFail("ORDERCLOSED", "该订单已关闭")
            if order.fingerprint != fingerprint:
                raise PayFail("OUT_TRADE_NO_USED", "商户订单号重复")  # §4.4
            order.spbill_create_ip = params["spbill_create_ip"]
        else:
            order = Order(
                appid=params["appid"], mch_id=merchant.mch_id, out_trade_no=params["out_trade_no"],
                trade_type=trade_type, body=params["body"], total_fee=int(params["total_fee"]),
                notify_url=params["notify_url"], spbill_create_ip=params["spbill_create_ip"],
                sign_type=sign_type, created_at=now, fingerprint=fingerprint,
                attach=params.get("attach") or "", device_info=params.get("device_info") or "",
                openid=params.get("openid") or "", product_id=params.get("product_id") or "",
                scene_info=params.get("scene_info") or "", time_expire=time_expire,
            )
            self.add_order(order)
        self.issue_prepay(order, now)
        out: dict[str, Any] = {"trade_type": trade_type, "prepay_id": order.prepay_id}
        if order.device_info:
            out = {"device_info": order.device_info, **out}
        if trade_type == "NATIVE":
            out["code_url"] = order.code_url
        return out

    # --- moves shared by V2 and V3 (one order book for both) -------------------

    def add_order(self, order: Order) -> None:
        self.orders[(order.mch_id, order.out_trade_no)] = order
        self.changed()

    def issue_prepay(self, order: Order, now: datetime) -> None:
        """A fresh prepay_id (and code_url, mweb package) unless the current one is still valid."""
        key = (order.mch_id, order.out_trade_no)
        if not order.prepay_valid(now):  # re-entry after 2 h gets a fresh prepay_id (§4.1 time_expire note)
            order.prepay_id = "wx" + wire_time(now) + secrets.token_hex(10)
            order.prepay_issued_at = now
            self._by_prepay[order.prepay_id] = key
            if order.trade_type == "NATIVE":
                order.code_url = "weixin://wxpay/bizpayurl?pr=" + secrets.token_urlsafe(6)[:7]
                self._by_code[order.code_url] = key
        if order.trade_type == "MWEB" and not order.mweb_valid(now):
            order.mweb_package = _digits(10)
            order.mweb_issued_at = now
        self.changed()

    def close(self, order: Order) -> None:
        order.trade_state = "CLOSED"
        order.closed_at = self.clock.now()
        self.changed()

    def order_by_txn(self, mch_id: str, transaction_id: str) -> Order | None:
        return self._order_by_txn(mch_id, transaction_id)

    def refund_limit(self, order: Order, refund_fee: int, now: datetime) -> str | None:
        """Which refund rule (§7) a new refund of ``refund_fee`` breaks: overdue, too_many, not_enough."""
        if now - order.paid_at > REFUND_MAX_AGE:
            return "overdue"
        if len(order.refund_nos) >= REFUND_MAX_COUNT:
            return "too_many"
        if refund_fee > order.total_fee - order.refunded_fee:
            return "not_enough"
        return None

    def add_refund(self, order: Order, refund: Refund) -> None:
        """Record a new refund of a paid order; settles it at once unless auto_settle_refunds is off."""
        key = (refund.mch_id, refund.out_refund_no)
        self.refunds[key] = refund
        self._by_refund_id[refund.refund_id] = key
        order.refund_nos.append(refund.out_refund_no)
        order.refunded_fee += refund.refund_fee
        order.trade_state = "REFUND"
        if self.auto_settle_refunds:
            self.settle_refund(refund, "SUCCESS")
        self.changed()

    @staticmethod
    def new_refund_id(now: datetime) -> str:
        return "50300" + _digits(6) + now.astimezone(CHINA_TZ).strftime("%Y%m%d") + _digits(10)

    # --- the shopper pays (our addition; §11 fields) -------------------------

    def pay(self, order: Order, outcome: str, *, openid: str = "", bank_type: str = "") -> bool:
        """Apply the shopper's outcome; True when the order became SUCCESS (notify due)."""
        now = self.clock.now()
        self._expire(order)
        if order.trade_state in ("SUCCESS", "REFUND"):
            raise ShopperError("该订单已支付，请勿重复支付", reason="ORDERPAID")
        if order.trade_state == "CLOSED":
            raise ShopperError("订单已关闭", reason="ORDERCLOSED")
        if not order.prepay_valid(now):
            raise ShopperError("缺少参数：total_fee", reason="PREPAY_EXPIRED")  # §13.1: expired prepay_id
        if outcome not in ("ok", "cancel", "fail", "userpaying"):
            raise ShopperError(f"unknown outcome {outcome!r}; use ok, cancel, fail or userpaying", reason="BAD_OUTCOME")
        order.last_pay_result = outcome
        if outcome == "userpaying":
            order.trade_state = "USERPAYING"
        elif outcome in ("cancel", "fail"):
            order.trade_state = "NOTPAY"  # JSAPI/NATIVE/APP/MWEB: the order stays payable
        else:
            if order.trade_type == "JSAPI":
                openid = order.openid
            elif not openid:
                openid = self.default_openid(order.appid)
            elif not self.openid_belongs(order.appid, openid):
                raise ShopperError("appid和openid不匹配", reason="OPENID_MISMATCH")
            order.openid = openid
            order.trade_state = "SUCCESS"
            order.transaction_id = "4200000" + _digits(3) + now.astimezone(CHINA_TZ).strftime("%Y%m%d") + _digits(10)
            order.bank_type = bank_type or "OTHERS"
            order.paid_at = now
            order.cash_fee = order.total_fee
            order.is_subscribe = "N"
            self._by_txn[order.transaction_id] = (order.mch_id, order.out_trade_no)
        self.changed()
        return outcome == "ok"

    def paid_fields(self, order: Order) -> dict[str, Any]:
        """Fields a paid order shows in orderquery and the notify (§5, §11.1)."""
        return {
            "device_info": order.device_info or None,
            "openid": order.openid,
            "is_subscribe": order.is_subscribe,
            "trade_type": order.trade_type,
            "bank_type": order.bank_type,
            "total_fee": order.total_fee,
            "fee_type": order.fee_type,
            "cash_fee": order.cash_fee,
            "transaction_id": order.transaction_id,
            "out_trade_no": order.out_trade_no,
            "attach": order.attach or None,
            "time_end": wire_time(order.paid_at),
        }

    # --- pay/orderquery (§5) -------------------------------------------------

    def _find_order(self, params: Mapping[str, str], merchant: SimMerchant) -> Order:
        if params.get("transaction_id"):
            order = self._order_by_txn(merchant.mch_id, params["transaction_id"])
        elif params.get("out_trade_no"):
            order = self.order(merchant.mch_id, params["out_trade_no"])
        else:
            raise PayFail("LACK_PARAMS", "缺少参数transaction_id或out_trade_no")
        if order is None:
            raise PayFail("ORDERNOTEXIST", "订单不存在")
        return order

    def order_query(self, params: Mapping[str, str], merchant: SimMerchant) -> dict[str, Any]:
        self.check_app(params, merchant)
        order = self._find_order(params, merchant)
        if order.trade_state in ("SUCCESS", "REFUND"):
            out = self.paid_fields(order)
        else:  # §5 / S26: unpaid orders carry no payment details
            out = {"device_info": order.device_info, "out_trade_no": order.out_trade_no,
                   "total_fee": order.total_fee, "attach": order.attach or None}
        out["trade_state"] = order.trade_state
        out["trade_state_desc"] = STATE_DESC[order.trade_state]
        return out

    # --- pay/closeorder (§6) -------------------------------------------------

    def close_order(self, params: Mapping[str, str], merchant: SimMerchant) -> dict[str, Any]:
        self.check_app(params, merchant)
        _need(params, "out_trade_no")
        order = self.order(merchant.mch_id, params["out_trade_no"])
        if order is None:
            raise PayFail("ORDERNOTEXIST", "订单不存在")
        if order.trade_state in ("SUCCESS", "REFUND"):
            raise PayFail("ORDERPAID", "订单已支付，不能发起关单")
        if order.trade_state == "CLOSED":
            raise PayFail("ORDERCLOSED", "订单已关闭，无需重复关单")
        if self.clock.now() - order.created_at < self.close_min_age:
            # §6: the digest names no err_code for this; TRADE_STATE_ERROR is
            # the closeorder code for "state does not allow it" (S17).
            raise PayFail("TRADE_STATE_ERROR", "订单创建后5分钟内不能关单")
        self.close(order)
        return {"result_msg": "OK"}

    # --- secapi/pay/refund (§7) ----------------------------------------------

    def refund(self, params: Mapping[str, str], merchant: SimMerchant, *, client_cert: str) -> tuple[Refund, bool]:
        """Returns the refund and whether it is new (a repeat out_refund_no refunds once)."""
        now = self.clock.now()
        self.check_app(params, merchant)
        _need(params, "out_refund_no", "total_fee", "refund_fee")
        if not _OUT_REFUND_NO.fullmatch(params["out_refund_no"]):
            raise PayFail("PARAM_ERROR", "out_refund_no参数格式错误：最多64位字母、数字或_-|*@")
        for name in ("total_fee", "refund_fee"):
            if not _FEN.fullmatch(params[name]):
                raise PayFail("PARAM_ERROR", f"{name}参数格式错误：必须是大于0的整数(单位分)")
        if (params.get("refund_fee_type") or "CNY") != "CNY":
            raise PayFail("PARAM_ERROR", "refund_fee_type参数错误：仅支持CNY")
        _max_len(params, "refund_desc", 80, "PARAM_ERROR")
        if params.get("notify_url"):
            _check_notify_url(params["notify_url"], "PARAM_ERROR")
        if params.get("refund_account") not in (None, "", "REFUND_SOURCE_UNSETTLED_FUNDS", "REFUND_SOURCE_RECHARGE_FUNDS"):
            raise PayFail("PARAM_ERROR", "refund_account参数错误")
        order = self._find_order(params, merchant)
        if order.trade_state not in ("SUCCESS", "REFUND"):
            raise PayFail("ORDERNOTEXIST", "订单不存在或未支付")  # §7: also for unpaid orders
        fingerprint = {
            "out_trade_no": order.out_trade_no, "total_fee": params["total_fee"], "refund_fee": params["refund_fee"],
        }
        existing = self.refunds.get((merchant.mch_id, params["out_refund_no"]))
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise PayFail("INVALID_REQUEST", "同一out_refund_no的退款参数与原请求不一致")
            return existing, False
        if int(params["total_fee"]) != order.total_fee:
            raise PayFail("INVALID_REQUEST", "订单金额total_fee与原订单不一致")
        refund_fee = int(params["refund_fee"])
        broken = self.refund_limit(order, refund_fee, now)
        if broken == "overdue":
            raise PayFail("TRADE_OVERDUE", "订单已经超过退款期限")
        if broken == "too_many":
            raise PayFail("ERROR", f"订单已经超过可退款的最大次数({REFUND_MAX_COUNT})")
        if broken == "not_enough":
            raise PayFail("NOTENOUGH", "退款金额大于订单剩余可退金额")  # the brief: NOTENOUGH when over the remainder
        refund = Refund(
            appid=params["appid"], mch_id=merchant.mch_id, out_refund_no=params["out_refund_no"],
            refund_id=self.new_refund_id(now),
            out_trade_no=order.out_trade_no, transaction_id=order.transaction_id,
            total_fee=order.total_fee, refund_fee=refund_fee, created_at=now, fingerprint=fingerprint,
            refund_desc=params.get("refund_desc") or "",
            refund_account=params.get("refund_account") or "REFUND_SOURCE_UNSETTLED_FUNDS",
            notify_url=params.get("notify_url") or "", client_cert=client_cert,
        )
        self.add_refund(order, refund)
        return refund, True

    def refund_reply(self, refund: Refund) -> dict[str, Any]:
        return {
            "transaction_id": refund.transaction_id, "out_trade_no": refund.out_trade_no,
            "out_refund_no": refund.out_refund_no, "refund_id": refund.refund_id,
            "refund_fee": refund.refund_fee, "total_fee": refund.total_fee, "fee_type": "CNY",
            "cash_fee": refund.total_fee, "cash_refund_fee": refund.refund_fee,
            "refund_channel": None, "coupon_refund_fee": 0, "coupon_refund_count": 0,
        }

    def settle_refund(self, refund: Refund, status: str) -> None:
        """Move a PROCESSING refund to its final state (§8 refund_status; V3 names accepted too)."""
        status = V3_REFUND_STATUS_TO_V2.get(status, status)
        if status not in ("SUCCESS", "REFUNDCLOSE", "CHANGE"):
            raise ValueError("refund status must be SUCCESS, REFUNDCLOSE (V3: CLOSED) or CHANGE (V3: ABNORMAL)")
        if refund.refund_status != "PROCESSING":
            raise ValueError(f"refund {refund.out_refund_no} is already {refund.refund_status}")
        refund.refund_status = status
        if status == "SUCCESS":
            refund.success_at = self.clock.now()
        else:  # the money did not go back: it is refundable again
            order = self.orders.get((refund.mch_id, refund.out_trade_no))
            if order is not None and status == "REFUNDCLOSE":
                order.refunded_fee -= refund.refund_fee
        self.changed()

    def refund_by_no(self, mch_id: str, out_refund_no: str) -> Refund | None:
        return self.refunds.get((mch_id, out_refund_no))

    # --- pay/refundquery (§8) -------------------------------------------------

    def refund_query(self, params: Mapping[str, str], merchant: SimMerchant) -> dict[str, Any]:
        self.check_app(params, merchant)
        offset = params.get("offset") or ""
        if offset and not offset.isdigit():
            raise PayFail("PARAM_ERROR", "offset参数格式错误")
        if params.get("refund_id") or params.get("out_refund_no"):
            if params.get("refund_id"):
                key = self._by_refund_id.get(params["refund_id"])
                refund = self.refunds.get(key) if key and key[0] == merchant.mch_id else None
            else:
                refund = self.refunds.get((merchant.mch_id, params["out_refund_no"]))
            if refund is None:
                raise PayFail("REFUNDNOTEXIST", "退款订单查询失败")
            order = self.orders[(merchant.mch_id, refund.out_trade_no)]
            listed, total = [refund], 1
        else:
            try:
                order = self._find_order(params, merchant)
            except PayFail as exc:
                if exc.err_code == "ORDERNOTEXIST":
                    raise PayFail("REFUNDNOTEXIST", "订单不存在或没有发生退款") from None
                raise
            all_refunds = [self.refunds[(merchant.mch_id, no)] for no in order.refund_nos]
            if not all_refunds:
                raise PayFail("REFUNDNOTEXIST", "订单没有发生退款")
            start = int(offset or 0)
            total = len(all_refunds)
            if start > total:
                raise PayFail("PARAM_ERROR", "offset超过总退款笔数")
            listed = all_refunds[start:start + REFUND_PAGE]
        out: dict[str, Any] = {
            "transaction_id": order.transaction_id, "out_trade_no": order.out_trade_no,
            "total_fee": order.total_fee, "fee_type": order.fee_type, "cash_fee": order.cash_fee,
            "refund_count": len(listed), "total_refund_count": total,
        }
        for n, refund in enumerate(listed):
            out.update({
                f"out_refund_no_{n}": refund.out_refund_no,
                f"refund_id_{n}": refund.refund_id,
                f"refund_channel_{n}": "ORIGINAL",
                f"refund_fee_{n}": refund.refund_fee,
                f"coupon_refund_fee_{n}": 0,
                f"refund_status_{n}": refund.refund_status,
                f"refund_account_{n}": refund.refund_account,
                f"refund_recv_accout_{n}": refund.refund_recv_accout,
            })
            if refund.success_at:
                out[f"refund_success_time_{n}"] = refund.success_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")
        return out

    # --- persistence ------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "orders": [_to_json(o) for o in self.orders.values()],
            "refunds": [_to_json(r) for r in self.refunds.values()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], config: SimConfig, clock: Clock, **kw: Any) -> "PayState":
        state = cls(config, clock, **kw)
        for raw in data.get("orders", []):
            order = _from_json(Order, raw)
            key = (order.mch_id, order.out_trade_no)
            state.orders[key] = order
            if order.prepay_id:
                state._by_prepay[order.prepay_id] = key
            if order.code_url:
                state._by_code[order.code_url] = key
            if order.transaction_id:
                state._by_txn[order.transaction_id] = key
        for raw in data.get("refunds", []):
            refund = _from_json(Refund, raw)
            key = (refund.mch_id, refund.out_refund_no)
            state.refunds[key] = refund
            state._by_refund_id[refund.refund_id] = key
        return state
