"""wxpay: WeChat Pay (APIv2, APIv3) and Official Account web APIs, async and sans-I/O at the core.

The names below are the public API (see docs/wxpay.md); everything else is
reachable from its module but may change.
"""
from . import errors
from .client import WxPayClient, check_reply
from .endpoints import Endpoints
from .gateway import PayGateway
from .errors import (
    ApiError,
    BusinessError,
    DecryptError,
    IdentityMismatchError,
    InvalidArgumentError,
    LoginBlockedError,
    LoginCodeError,
    LoginCodeUsedError,
    LoginRateLimitedError,
    OAuthCodeError,
    OAuthCodeExpiredError,
    OAuthCodeUsedError,
    OpenidMismatchError,
    ProtocolError,
    ReturnFailError,
    SignatureError,
    TokenInvalidError,
    TransportError,
    UnsafeXMLError,
    WxPayError,
    WxTimeoutError,
)
from .merchant import Merchant
from .mini_program import MiniProgramClient, MiniProgramSession
from .notify import decrypt_refund_notify, notify_reply, read_notify, verify_payment_notify
from .oauth import OAuthClient
from .official import OfficialAccountClient
from .payloads import app_payload, jsapi_payloads, mini_program_payload, mweb_redirect, wx_config
from .signing import HMAC_SHA256, MD5, jssdk_signature, make_nonce, sign, verify
from .transport import TornadoTransport
from .v2_gateway import V2Gateway
from .v3_gateway import V3Gateway
from .v3_settings import V3Settings, check_v3_settings
from .xmlcodec import build_xml, parse_xml

__version__ = "0.1.0"

__all__ = [
    "errors", "WxPayClient", "check_reply", "Endpoints", "PayGateway", "V2Gateway", "V3Gateway", "V3Settings", "check_v3_settings", "Merchant", "OAuthClient", "OfficialAccountClient",
    "MiniProgramClient", "MiniProgramSession",
    "TornadoTransport", "read_notify", "verify_payment_notify", "notify_reply", "decrypt_refund_notify",
    "jsapi_payloads", "wx_config", "mini_program_payload", "app_payload", "mweb_redirect",
    "sign", "verify", "jssdk_signature", "make_nonce", "MD5", "HMAC_SHA256", "build_xml", "parse_xml",
    "WxPayError", "TransportError", "WxTimeoutError", "ProtocolError", "UnsafeXMLError", "SignatureError",
    "ReturnFailError", "BusinessError", "IdentityMismatchError", "DecryptError", "InvalidArgumentError",
    "ApiError", "TokenInvalidError", "OAuthCodeError", "OAuthCodeUsedError", "OAuthCodeExpiredError",
    "OpenidMismatchError", "LoginCodeError", "LoginCodeUsedError", "LoginBlockedError", "LoginRateLimitedError",
]
