"""What APIv3 needs from ``[wechat]`` before any key file is read.

One owner for these rules: the live check (``validate.py``) and the gateway
wiring (``wiring/gateways.py``, every mode) both ask here, so a merchant
reads the same sentence whichever of the two meets the problem first.
"""
from __future__ import annotations

from .settings import WechatSettings

PUBLIC_KEY_PAIR = "the WeChat Pay public key's ID, PUB_KEY_ID_…, and its pub_key.pem"


def v3_setting_problems(w: WechatSettings) -> list[tuple[str, str]]:
    """``(setting, message)`` per problem; the message reads on from the setting's name."""
    problems: list[tuple[str, str]] = []
    if not w.apiv3_key:
        problems.append(("wechat.apiv3_key", "is not set: the 32-character APIv3 key you set at pay.weixin.qq.com "
                                             "(Account centre, API security; it is not the APIv2 key)"))
    if not w.key_path:
        problems.append(("wechat.key_path", "is not set: APIv3 signs every request with the merchant API private key "
                                            "(apiclient_key.pem from pay.weixin.qq.com)"))
    if not w.merchant_serial_no and not w.cert_path:
        problems.append(("wechat.merchant_serial_no", "is not set and there is no wechat.cert_path to read it from: "
                                                      "the serial of the merchant API certificate "
                                                      "(pay.weixin.qq.com, API security)"))
    if bool(w.wechatpay_public_key_id) != bool(w.wechatpay_public_key_path):
        missing, other = (("wechat.wechatpay_public_key_path", "wechat.wechatpay_public_key_id")
                          if w.wechatpay_public_key_id else
                          ("wechat.wechatpay_public_key_id", "wechat.wechatpay_public_key_path"))
        problems.append((missing, f"is not set: it and {other} must be set together ({PUBLIC_KEY_PAIR})"))
    elif not w.wechatpay_public_key_id and not w.platform_certificates:
        problems.append(("wechat.platform_certificates",
                         "is false and there is no WeChat Pay public key: APIv3 needs a way to verify WeChat: "
                         "wechat.wechatpay_public_key_id and wechat.wechatpay_public_key_path (the WeChat Pay "
                         "public key; merchants since late 2024), or wechat.platform_certificates = true (older "
                         "merchants), or both during WeChat's switch from one to the other"))
    return problems
