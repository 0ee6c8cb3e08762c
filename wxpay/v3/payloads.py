"""What the front end needs to open WeChat's cashier for a V3 order, RSA-signed.

The same payload shapes as V2 (:mod:`wxpay.payloads`, so the page and the
app see one contract), with ``signType: "RSA"`` and ``paySign`` made with the
merchant's private key over the fields in order, each line ending ``\\n``:

- JSAPI bridge / ``wx.chooseWXPay`` and Mini Program: appid, timestamp,
  nonce, ``prepay_id=…`` (the Mini Program's own appid for ``wx.requestPayment``);
- App ``PayReq``: appid, timestamp, nonce, the bare prepay_id (``package``
  is the fixed ``Sign=WXPay`` and not signed).

``signType`` is not part of any signed string.
"""
from __future__ import annotations

from ..payloads import (
    AppPayload,
    BridgePayload,
    ChooseWXPayPayload,
    MiniProgramPayload,
    _nonce,
    _package,
    _require,
    _timestamp,
)
from .models import frozen
from .signing import MerchantSigner, lines_message

__all__ = ["SIGN_TYPE", "app_payload", "jsapi_payloads", "mini_program_payload"]

SIGN_TYPE = "RSA"


def _stamp(signer: MerchantSigner, timestamp: int | str | None) -> str:
    return _timestamp(int(signer.clock()) if timestamp is None else timestamp)


def jsapi_payloads(
    signer: MerchantSigner,
    appid: str,
    prepay_id: str,
    *,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> tuple[BridgePayload, ChooseWXPayPayload]:
    """``getBrandWCPayRequest`` and ``wx.chooseWXPay`` payloads sharing one paySign.

    ``appid`` must be the one the order was placed with.
    """
    _require("appid", appid)
    ts, nc, pkg = _stamp(signer, timestamp), _nonce(nonce), _package(prepay_id)
    pay_sign = signer.sign(lines_message(appid, ts, nc, pkg))
    return (
        frozen(BridgePayload, {"app_id": appid, "time_stamp": ts, "nonce_str": nc, "package": pkg,
                               "sign_type": SIGN_TYPE, "pay_sign": pay_sign}),
        frozen(ChooseWXPayPayload, {"timestamp": ts, "nonce_str": nc, "package": pkg, "sign_type": SIGN_TYPE,
                                    "pay_sign": pay_sign}),
    )


def mini_program_payload(
    signer: MerchantSigner,
    appid: str,
    prepay_id: str,
    *,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> MiniProgramPayload:
    """``wx.requestPayment``: no appId key, but signed over the Mini Program's appid."""
    _require("appid", appid)
    ts, nc, pkg = _stamp(signer, timestamp), _nonce(nonce), _package(prepay_id)
    return MiniProgramPayload(ts, nc, pkg, SIGN_TYPE, signer.sign(lines_message(appid, ts, nc, pkg)))


def app_payload(
    signer: MerchantSigner,
    appid: str,
    prepay_id: str,
    *,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> AppPayload:
    """The App SDK's ``PayReq``; ``partnerid`` is the signer's mchid."""
    _require("appid", appid)
    _require("prepay_id", prepay_id)
    _package(prepay_id)  # refuses a "prepay_id=" prefix here too
    ts, nc = _stamp(signer, timestamp), _nonce(nonce)
    sign = signer.sign(lines_message(appid, ts, nc, prepay_id))
    return AppPayload(appid, signer.mchid, prepay_id, nc, ts, sign)
