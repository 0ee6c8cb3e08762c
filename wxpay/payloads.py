"""What the front end needs to open WeChat's cashier, signed on the server.

Each payload is a frozen dataclass whose ``to_dict()`` has exactly the keys
WeChat's JavaScript (or the APP SDK) expects, spelled as WeChat spells them:
``timeStamp`` for the bridge and Mini Programs, ``timestamp`` for JSSDK.
The key never leaves the server; only the signature does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import quote, urlsplit

from .errors import InvalidArgumentError
from .signing import SIGN_TYPES, jssdk_signature, make_nonce, sign, sign_canonical

__all__ = [
    "AppPayload",
    "BridgePayload",
    "ChooseWXPayPayload",
    "MiniProgramPayload",
    "WxConfig",
    "app_payload",
    "jsapi_payloads",
    "mini_program_payload",
    "mweb_redirect",
    "wx_config",
]


@dataclass(frozen=True)
class BridgePayload:
    """``WeixinJSBridge.invoke('getBrandWCPayRequest', ...)`` inside WeChat."""

    app_id: str
    time_stamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str

    def to_dict(self) -> dict[str, str]:
        return {
            "appId": self.app_id,
            "timeStamp": self.time_stamp,
            "nonceStr": self.nonce_str,
            "package": self.package,
            "signType": self.sign_type,
            "paySign": self.pay_sign,
        }


@dataclass(frozen=True)
class ChooseWXPayPayload:
    """``wx.chooseWXPay(...)``: the bridge's signature, lower-case ``timestamp``, no appId."""

    timestamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str

    def to_dict(self) -> dict[str, str]:
        return {
            "timestamp": self.timestamp,
            "nonceStr": self.nonce_str,
            "package": self.package,
            "signType": self.sign_type,
            "paySign": self.pay_sign,
        }


@dataclass(frozen=True)
class WxConfig:
    """``wx.config(...)``: JSSDK permission for the page, SHA1-signed with the ticket."""

    app_id: str
    timestamp: int
    nonce_str: str
    signature: str
    js_api_list: tuple[str, ...] = ("chooseWXPay",)
    debug: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "debug": self.debug,
            "appId": self.app_id,
            "timestamp": self.timestamp,
            "nonceStr": self.nonce_str,
            "signature": self.signature,
            "jsApiList": list(self.js_api_list),
        }


@dataclass(frozen=True)
class MiniProgramPayload:
    """``wx.requestPayment(...)``: no appId key, yet signed over the Mini Program's appid."""

    time_stamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str

    def to_dict(self) -> dict[str, str]:
        return {
            "timeStamp": self.time_stamp,
            "nonceStr": self.nonce_str,
            "package": self.package,
            "signType": self.sign_type,
            "paySign": self.pay_sign,
        }


@dataclass(frozen=True)
class AppPayload:
    """The APP SDK's ``PayReq``: six lower-case keys plus ``sign``."""

    appid: str
    partnerid: str
    prepayid: str
    noncestr: str
    timestamp: str
    sign: str
    package: str = field(default="Sign=WXPay")

    def to_dict(self) -> dict[str, str]:
        return {
            "appid": self.appid,
            "partnerid": self.partnerid,
            "prepayid": self.prepayid,
            "package": self.package,
            "noncestr": self.noncestr,
            "timestamp": self.timestamp,
            "sign": self.sign,
        }


# --- builders ----------------------------------------------------------------


def _timestamp(value: int | str | None) -> str:
    """Ten-digit Unix seconds as text; milliseconds are a classic mistake, refuse them."""
    if value is None:
        return str(int(time.time()))
    if isinstance(value, bool):
        raise InvalidArgumentError("timestamp must be Unix seconds, not a bool")
    text = str(value)
    if len(text) != 10 or not text.isascii() or not text.isdigit():
        raise InvalidArgumentError(
            f"timestamp must be 10-digit Unix seconds (not milliseconds), got {text!r}"
        )
    return text


def _nonce(value: str | None) -> str:
    if value is None:
        return make_nonce()
    if not value or len(value) > 32:
        raise InvalidArgumentError("nonce must be 1 to 32 characters")
    return value


def _sign_type(value: str) -> str:
    if value not in SIGN_TYPES:
        raise InvalidArgumentError(
            f"sign_type {value!r} is not supported: use the order's sign type, MD5 or HMAC-SHA256"
        )
    return value


def _require(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{name} is required")
    return value


def _package(prepay_id: str) -> str:
    _require("prepay_id", prepay_id)
    if prepay_id.startswith("prepay_id="):
        raise InvalidArgumentError("pass the bare prepay_id; the 'prepay_id=' prefix is added here")
    return f"prepay_id={prepay_id}"


def _pay_sign(appid: str, ts: str, nonce: str, package: str, sign_type: str, key: str) -> str:
    # The five fields are fixed and all non-empty, so stringA is written out in
    # ASCII order (appId < nonceStr < package < signType < timeStamp) rather
    # than sorted per call; the tests check it against signing.sign.
    string_a = f"appId={appid}&nonceStr={nonce}&package={package}&signType={sign_type}&timeStamp={ts}"
    return sign_canonical(string_a, key, sign_type)


def jsapi_payloads(
    appid: str,
    prepay_id: str,
    key: str,
    sign_type: str,
    *,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> tuple[BridgePayload, ChooseWXPayPayload]:
    """Both JSAPI payloads for one prepay_id, sharing one timestamp, nonce and paySign.

    ``sign_type`` must be the one the order was created with, or WeChat's
    cashier refuses the signature.
    """
    _require("appid", appid)
    st = _sign_type(sign_type)
    ts, nc, pkg = _timestamp(timestamp), _nonce(nonce), _package(prepay_id)
    pay_sign = _pay_sign(appid, ts, nc, pkg, st, key)
    return (
        BridgePayload(appid, ts, nc, pkg, st, pay_sign),
        ChooseWXPayPayload(ts, nc, pkg, st, pay_sign),
    )


def wx_config(
    appid: str,
    jsapi_ticket: str,
    page_url: str,
    *,
    js_api_list: Sequence[str] = ("chooseWXPay",),
    timestamp: int | str | None = None,
    nonce: str | None = None,
    debug: bool = False,
) -> WxConfig:
    """``wx.config`` for ``page_url`` (anything after ``#`` is ignored, as JSSDK does)."""
    _require("appid", appid)
    _require("jsapi_ticket", jsapi_ticket)
    _require("page_url", page_url)
    ts, nc = _timestamp(timestamp), _nonce(nonce)
    signature = jssdk_signature(jsapi_ticket, nc, ts, page_url)
    return WxConfig(appid, int(ts), nc, signature, tuple(js_api_list), debug)


def mini_program_payload(
    appid: str,
    prepay_id: str,
    key: str,
    sign_type: str,
    *,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> MiniProgramPayload:
    """``wx.requestPayment`` payload; ``appid`` is the Mini Program's own appid."""
    _require("appid", appid)
    st = _sign_type(sign_type)
    ts, nc, pkg = _timestamp(timestamp), _nonce(nonce), _package(prepay_id)
    return MiniProgramPayload(ts, nc, pkg, st, _pay_sign(appid, ts, nc, pkg, st, key))


def app_payload(
    appid: str,
    mch_id: str,
    prepay_id: str,
    key: str,
    sign_type: str,
    *,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> AppPayload:
    """APP ``PayReq``; ``appid`` is the Open Platform mobile-app appid, not the OA's."""
    _require("appid", appid)
    _require("mch_id", mch_id)
    _require("prepay_id", prepay_id)
    st = _sign_type(sign_type)
    ts, nc = _timestamp(timestamp), _nonce(nonce)
    params = {
        "appid": appid,
        "partnerid": mch_id,
        "prepayid": prepay_id,
        "package": "Sign=WXPay",
        "noncestr": nc,
        "timestamp": ts,
    }
    return AppPayload(appid, mch_id, prepay_id, nc, ts, sign(params, key, st))


def _http_url(name: str, url: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidArgumentError(f"{name} must be an absolute http(s) URL")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidArgumentError(f"{name} must not contain spaces or control characters")


def mweb_redirect(mweb_url: str, redirect_url: str) -> str:
    """``mweb_url`` with the return page appended as WeChat wants it (URL-encoded).

    The return page's domain must be the H5 domain configured at WeChat; it
    is reached whether or not the user paid, so it must ask the server.
    """
    _http_url("mweb_url", mweb_url)
    _http_url("redirect_url", redirect_url)
    sep = "&" if "?" in mweb_url else "?"
    return f"{mweb_url}{sep}redirect_url={quote(redirect_url, safe='')}"
