"""APIv3 signatures: the strings that get signed, SHA256withRSA, and ``Authorization``.

Every V3 signature is RSA PKCS#1 v1.5 over SHA-256, base64 with padding, of
a few lines each ending in ``\\n``:

- a request (merchant key): method, path with query *as sent*, timestamp,
  nonce, body bytes *as sent* (:func:`request_message`);
- a response or notify (WeChat's key): timestamp, nonce, raw body bytes
  (:func:`response_message`; a 204 signs an empty body line);
- a front-end payload (merchant key): its fields in order (:func:`lines_message`).

This module owns those formats and the ``Authorization`` header, both ways:
:class:`MerchantSigner` writes it, :func:`parse_authorization` reads it (as
WeChat, or the simulator, does). :func:`wechatpay_headers` writes the
``Wechatpay-*`` headers WeChat's side signs replies and notifies with.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from ..errors import ConfigError, InvalidArgumentError, VerificationError
from .keys import RSAPrivateKey, RSAPublicKey, keys_match, load_certificate, load_private_key

__all__ = [
    "SCHEME",
    "Authorization",
    "MerchantSigner",
    "decode_signature",
    "lines_message",
    "make_nonce",
    "parse_authorization",
    "request_message",
    "response_message",
    "rsa_sign",
    "rsa_verify",
    "wechatpay_headers",
]

SCHEME = "WECHATPAY2-SHA256-RSA2048"

_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()

# A field of a signed string must not hold the line separator (it would
# move the line boundaries), and header fields must not hold '"' or ','.
_METHOD = re.compile(r"[A-Z]{1,16}")
_PATH = re.compile(r"/[\x21-\x7E]*")
_TOKEN = re.compile(r"[\x21\x23-\x2B\x2D-\x7E]{1,128}")  # printable ASCII but '"' and ','


def make_nonce() -> str:
    """32 upper-case hex characters from :mod:`secrets`, as WeChat's examples."""
    return secrets.token_hex(16).upper()


def _field(name: str, value: str) -> str:
    if not isinstance(value, str) or "\n" in value:
        raise InvalidArgumentError(f"{name} must be text without a line break")
    return value


def _body(body: bytes | bytearray | memoryview) -> bytes:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        # A str or a dict here means the body would be serialised twice:
        # once to sign, once to send, the classic cause of SIGN_ERROR.
        raise TypeError(f"body must be the exact bytes sent, got {type(body).__name__}")
    return bytes(body)


def request_message(method: str, path_with_query: str, timestamp: int | str, nonce: str, body: bytes) -> bytes:
    """The five-line string a request's signature covers, as UTF-8 bytes."""
    head = (
        f"{_field('method', method)}\n{_field('path', path_with_query)}\n"
        f"{_field('timestamp', str(timestamp))}\n{_field('nonce', nonce)}\n"
    )
    return head.encode("utf-8") + _body(body) + b"\n"


def response_message(timestamp: int | str, nonce: str, body: bytes) -> bytes:
    """The three-line string a response's or notify's signature covers."""
    head = f"{_field('timestamp', str(timestamp))}\n{_field('nonce', nonce)}\n"
    return head.encode("utf-8") + _body(body) + b"\n"


def lines_message(*fields: str) -> bytes:
    """Each field followed by ``\\n`` (front-end payloads)."""
    return "".join(_field("field", f) + "\n" for f in fields).encode("utf-8")


def rsa_sign(private_key: RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5) of ``message``, base64 with padding."""
    return base64.b64encode(private_key.sign(message, _PKCS1V15, _SHA256)).decode("ascii")


def rsa_verify(public_key: RSAPublicKey, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` (raw bytes, not base64) is ``message``'s, under ``public_key``."""
    try:
        public_key.verify(signature, message, _PKCS1V15, _SHA256)
    except InvalidSignature:
        return False
    return True


def decode_signature(text: str) -> bytes:
    """Canonical base64 to bytes, else :class:`VerificationError` (``signature_not_base64``).

    Canonical: the standard alphabet, padding, no whitespace, and unused
    trailing bits zero, so one signature has exactly one spelling (every
    encoder writes that one; a changed spelling is a changed signature).
    """
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError, TypeError):
        raw = None
    # Strict decoding (the alphabet, padding only at the end), then the spelling checks left:
    # the canonical length (no extra padding), and the last group, the only one with unused
    # bits, re-encodes to the text's last four characters.
    tail = len(raw) % 3 if raw else 0
    if (not raw or len(text) != (len(raw) + 2) // 3 * 4
            or (tail and binascii.b2a_base64(raw[-tail:], newline=False) != text[-4:].encode("ascii"))):
        raise VerificationError("The signature is not base64: the message was not signed by WeChat",
                                code="signature_not_base64")
    return raw


# --- Authorization ---------------------------------------------------------


@dataclass(frozen=True)
class Authorization:
    """The five parameters of ``Authorization: WECHATPAY2-SHA256-RSA2048 …``."""

    mchid: str
    nonce_str: str
    timestamp: str
    serial_no: str
    signature: str = field(repr=False)

    def header(self) -> str:
        return _header(self.mchid, self.nonce_str, self.timestamp, self.serial_no, self.signature)


def _header(mchid: str, nonce_str: str, timestamp: str, serial_no: str, signature: str) -> str:
    """The ``Authorization`` value (the one writer of its format; no dataclass built per request)."""
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce_str}",timestamp="{timestamp}",'
        f'serial_no="{serial_no}",signature="{signature}"'
    )


_PARAMS = re.compile(r'[a-z_]{1,16}="[^",]*"(?:,[a-z_]{1,16}="[^",]*"){0,15}')
_PARAM = re.compile(r'([a-z_]+)="([^",]*)"')
_AUTH_KEYS = ("mchid", "nonce_str", "serial_no", "signature", "timestamp")  # sorted


def parse_authorization(header: str | None) -> Authorization:
    """Read an ``Authorization`` header strictly, as WeChat does before verifying.

    :class:`VerificationError` codes: ``missing_header``, ``unsupported_scheme``
    (another scheme than ``WECHATPAY2-SHA256-RSA2048``) and
    ``malformed_authorization`` (anything but the five non-empty
    ``key="value"`` parameters, each once, in any order, separated by commas
    without spaces).
    """
    if not header:
        raise VerificationError("The Authorization header is missing", code="missing_header")
    scheme, _, params = header.partition(" ")
    if scheme != SCHEME:
        raise VerificationError(f"The Authorization scheme must be {SCHEME}", code="unsupported_scheme")
    pairs = _PARAM.findall(params) if _PARAMS.fullmatch(params) else []
    found = dict(pairs)
    if len(pairs) != 5 or tuple(sorted(found)) != _AUTH_KEYS or not all(found.values()):
        raise VerificationError(
            "The Authorization header is malformed: expected mchid, nonce_str, timestamp, serial_no "
            'and signature, each once, as key="value" separated by commas',
            code="malformed_authorization",
        )
    return Authorization(**found)


class MerchantSigner:
    """Signs with the merchant's private key: requests and front-end payloads.

    ``serial_no`` is the merchant API certificate's serial (upper-case hex),
    which names the key to WeChat. The key never leaves this object; its repr
    shows only mchid and serial.
    """

    def __init__(
        self,
        mchid: str,
        serial_no: str,
        private_key: RSAPrivateKey,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("mchid", mchid), ("serial_no", serial_no)):
            if not isinstance(value, str) or not _TOKEN.fullmatch(value):
                raise InvalidArgumentError(f"{name} must be printable ASCII without quotes or commas")
        if not isinstance(private_key, RSAPrivateKey):
            raise TypeError("private_key must be a loaded RSA private key (wxpay.v3.keys.load_private_key)")
        self.mchid = mchid
        self.serial_no = serial_no
        self._key = private_key
        self.clock = clock

    @classmethod
    def from_pem(
        cls,
        mchid: str,
        private_key_pem: str | bytes,
        *,
        serial_no: str | None = None,
        certificate_pem: str | bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> MerchantSigner:
        """From ``apiclient_key.pem`` and the serial, or the certificate to read it from.

        With both a serial and a certificate, they must agree; with a
        certificate, it must hold the key's public half.
        """
        key = load_private_key(private_key_pem)
        if certificate_pem is not None:
            cert = load_certificate(certificate_pem)
            if not keys_match(key, cert):
                raise ConfigError(
                    "The merchant private key does not belong to the merchant API certificate: "
                    "use apiclient_key.pem and apiclient_cert.pem from the same download",
                    code="key_certificate_mismatch",
                )
            if serial_no is not None and serial_no.upper() != cert.serial_no:
                raise ConfigError(
                    f"The configured serial {serial_no} is not the certificate's ({cert.serial_no})",
                    code="serial_mismatch",
                )
            serial_no = cert.serial_no
        if serial_no is None:
            raise ConfigError("Give the merchant certificate serial or the certificate itself", code="missing_serial")
        return cls(mchid, serial_no, key, clock=clock)

    def __repr__(self) -> str:
        return f"MerchantSigner(mchid={self.mchid!r}, serial_no={self.serial_no!r})"

    def sign(self, message: bytes) -> str:
        """Base64 SHA256withRSA of ``message`` with the merchant key."""
        return rsa_sign(self._key, message)

    def authorization(
        self,
        method: str,
        path_with_query: str,
        body: bytes = b"",
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> str:
        """The ``Authorization`` header value for one request.

        ``path_with_query`` is the absolute path plus ``?query`` exactly as it
        goes on the wire (already percent-encoded); ``body`` the exact bytes
        sent (``b""`` for GET). Timestamp and nonce are fresh unless given.
        """
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise InvalidArgumentError("method must be an upper-case HTTP method such as GET or POST")
        if not isinstance(path_with_query, str) or not _PATH.fullmatch(path_with_query):
            raise InvalidArgumentError(
                "path_with_query must start with '/' and be percent-encoded ASCII (no spaces), as sent")
        ts = str(int(self.clock()) if timestamp is None else int(timestamp))
        nonce = make_nonce() if nonce is None else nonce
        if not isinstance(nonce, str) or not _TOKEN.fullmatch(nonce):
            raise InvalidArgumentError("nonce must be 1-128 printable ASCII characters without quotes or commas")
        signature = rsa_sign(self._key, request_message(method, path_with_query, ts, nonce, body))
        return _header(self.mchid, nonce, ts, self.serial_no, signature)


def wechatpay_headers(
    private_key: RSAPrivateKey,
    serial: str,
    body: bytes,
    *,
    timestamp: int,
    nonce: str,
    request_id: str | None = None,
) -> dict[str, str]:
    """The ``Wechatpay-*`` headers WeChat signs a reply or notify with (its side of the wire).

    ``serial`` is the ``PUB_KEY_ID_…`` or platform-certificate serial of
    ``private_key``. For the simulator and tests; a merchant never signs these.
    """
    headers = {
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": rsa_sign(private_key, response_message(timestamp, nonce, body)),
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SCHEME,
    }
    if request_id is not None:
        headers["Request-ID"] = request_id
    return headers
