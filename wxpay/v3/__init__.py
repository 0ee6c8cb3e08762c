"""wxpay.v3: WeChat Pay APIv3, sans-I/O (no sockets, no clocks you cannot inject).

The roles, each in its own module:

- ``keys``: PEM keys and X.509 certificates (serials, validity, matching pairs);
- ``signing``: the signed strings, SHA256withRSA, ``Authorization`` (``MerchantSigner``);
- ``verification``: WeChat keys by serial (``Verifier`` and its three kinds) and the
  ``Validator`` of ``Wechatpay-*`` headers over raw bodies;
- ``aead``: AES-256-GCM with the APIv3 key (``ApiV3Cipher``);
- ``models``: transactions and refunds as dataclasses (notify resources and query replies);
- ``notify``: ``NotifyReader``, verify then decrypt then type (``PaymentEvent``, ``RefundEvent``);
- ``payloads``: RSA-signed front-end payloads (JSAPI bridge, ``wx.chooseWXPay``, Mini Program, App);
- ``err_codes``: error replies (status + ``{code, message, detail}``) to :mod:`wxpay.errors` classes;
- ``certificates``: ``/v3/certificates`` replies decrypted and checked;
- ``bills``: the bill download's step-1 reply and the SHA1 check of the file;
- ``endpoints``: the base URL (V2's ``pay_base``) and what may receive our Authorization;
- ``requests``: every call as a pure value (method, path with query, body bytes signed as sent);
- ``replies``: every reply judged as a pure function (verify, then type; errors by status);
- ``keeper``: the trusted platform certificates and when to download them again;
- ``client``: ``WxPayV3Client``, the one class that does I/O (through ``wxpay.transport``).

The names below are the public API (see docs/wxpay.md, "APIv3 (core)" and "APIv3 client").
"""
from .aead import ALGORITHM, ApiV3Cipher
from .bills import BillDownload, check_bill, parse_bill_download
from .certificates import parse_certificates, read_certificates_reply
from .client import WxPayV3Client
from .endpoints import V3Endpoints
from .keeper import PlatformCertificateKeeper
from .err_codes import error_from_reply
from .keys import (
    Certificate,
    certificate_serial,
    keys_match,
    load_certificate,
    load_private_key,
    load_public_key,
)
from .models import (
    AppPrepay,
    H5Prepay,
    JsapiPrepay,
    NativePrepay,
    Refund,
    RefundAmount,
    Transaction,
    TransactionAmount,
    parse_refund,
    parse_transaction,
)
from .payloads import app_payload, jsapi_payloads, mini_program_payload
from .requests import V3Request, json_body
from .notify import NotifyEvent, NotifyReader, PaymentEvent, RefundEvent, notify_reply
from .signing import (
    SCHEME,
    Authorization,
    MerchantSigner,
    parse_authorization,
    request_message,
    response_message,
    wechatpay_headers,
)
from .verification import (
    CombinedVerifier,
    PlatformCertificateVerifier,
    PublicKeyVerifier,
    SignedHeaders,
    Validator,
    Verifier,
)

__all__ = [
    "ALGORITHM", "ApiV3Cipher",
    "Certificate", "certificate_serial", "keys_match", "load_certificate", "load_private_key", "load_public_key",
    "SCHEME", "Authorization", "MerchantSigner", "parse_authorization", "request_message", "response_message",
    "wechatpay_headers",
    "CombinedVerifier", "PlatformCertificateVerifier", "PublicKeyVerifier", "SignedHeaders", "Validator", "Verifier",
    "Refund", "RefundAmount", "Transaction", "TransactionAmount", "parse_refund", "parse_transaction",
    "NotifyEvent", "NotifyReader", "PaymentEvent", "RefundEvent", "notify_reply",
    "app_payload", "jsapi_payloads", "mini_program_payload",
    "error_from_reply", "parse_certificates", "read_certificates_reply",
    "BillDownload", "check_bill", "parse_bill_download",
    "WxPayV3Client", "V3Endpoints", "PlatformCertificateKeeper", "V3Request", "json_body",
    "JsapiPrepay", "AppPrepay", "NativePrepay", "H5Prepay",
]
