"""Checking a V3 request's ``Authorization`` the way WeChat does (digest §2, §9.1).

In order: the header's form and scheme, the merchant (and that it has V3
credentials), the certificate serial, the timestamp within five minutes of
the simulator's clock, then the signature over the method, the path and
query *as received*, the timestamp, the nonce and the raw body bytes. Every
failure is 401 ``SIGN_ERROR`` told apart by its message (the documented
ones); a bad signature carries ``detail.sign_information``.
"""
from __future__ import annotations

import binascii
import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from wxpay.errors import InvalidArgumentError, VerificationError
from wxpay.v3.signing import Authorization, parse_authorization, request_message, rsa_verify

from ..config import SimConfig, SimMerchant
from .keyring import Keyring
from .wire import V3Error

WINDOW_SECONDS = 300  # "不得超过5分钟": 300 s is still accepted, 301 s is not

MSG_FORMAT = "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》"
MSG_SCHEME = "Http头Authorization认证类型不正确"
MSG_SERIAL = "商户证书序列号有误。请使用签名私钥匹配的证书序列号"
MSG_TIMESTAMP = "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟"
MSG_SIGNATURE = "错误的签名，验签失败"
MSG_NO_V3 = "商户未设置APIv3密钥。"
_TRUNCATE = 128


def sign_error(message: str, detail: dict | None = None) -> V3Error:
    return V3Error(401, "SIGN_ERROR", message, detail)


@dataclass(frozen=True)
class Caller:
    """Who signed a request that passed every check."""

    merchant: SimMerchant
    keyring: Keyring
    auth: Authorization


def _signature_bytes(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw or None


def _sign_information(method: str, path: str, message: bytes) -> dict:
    text = message.decode("utf-8", "replace")
    shown = text if len(text) <= _TRUNCATE else text[:_TRUNCATE] + "..."
    return {
        "field": "signature", "issue": "sign not match", "location": "authorization",
        "sign_information": {"method": method, "url": path, "truncated_sign_message": shown,
                             "sign_message_length": len(message)},
    }


def authenticate(
    config: SimConfig,
    keyrings: dict[str, Keyring],
    *,
    method: str,
    paths: Sequence[str],
    header: str | None,
    body: bytes,
    now: datetime,
) -> Caller:
    """The caller of a request, or the 401 (or 400 for an unknown mchid) WeChat answers.

    ``paths`` are the path-with-query spellings the signature may cover: the
    WeChat path first, then (mounted under a prefix) the full one a client
    that signs the whole URL's path sends.
    """
    try:
        auth = parse_authorization(header)
    except VerificationError as exc:
        raise sign_error(MSG_SCHEME if exc.code == "unsupported_scheme" else MSG_FORMAT) from None
    merchant = config.merchant(auth.mchid)
    if merchant is None:
        raise V3Error(400, "MCH_NOT_EXISTS", "商户号不存在",
                      {"field": "mchid", "location": "authorization", "value": auth.mchid[:32]})
    keyring = keyrings.get(merchant.mch_id)
    if keyring is None:
        raise sign_error(MSG_NO_V3)
    if auth.serial_no.upper() != keyring.serial_no:
        raise sign_error(MSG_SERIAL)
    ts = auth.timestamp
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12):
        raise sign_error(MSG_FORMAT)
    if abs(int(now.timestamp()) - int(ts)) > WINDOW_SECONDS:
        raise sign_error(MSG_TIMESTAMP)
    signature = _signature_bytes(auth.signature)
    try:
        messages = [request_message(method, path, ts, auth.nonce_str, body) for path in dict.fromkeys(paths)]
    except InvalidArgumentError:  # a line break in a signed field
        raise sign_error(MSG_FORMAT) from None
    first = messages[0]
    if signature is not None:
        for message in messages:
            if rsa_verify(keyring.merchant_key, message, signature):
                return Caller(merchant, keyring, auth)
    raise sign_error(MSG_SIGNATURE, _sign_information(method, paths[0], first))
