"""The refund notify's ``req_info``: AES-256-ECB under MD5(API key), PKCS7 in 16-byte blocks.

Refund notifies carry no signature, so decrypting with our key is the only
proof they came from WeChat. Every failure is one :class:`DecryptError`
whose message says what to check, never what the key is.
"""
from __future__ import annotations

import base64
import binascii
import hashlib

from Crypto.Cipher import AES

from .errors import DecryptError

_BLOCK = 16


def _aes_key(api_key: str) -> bytes:
    if not api_key:
        raise DecryptError("No API key configured: cannot decrypt the refund notify")
    # WeChat's rule: the 32 ASCII hex characters themselves are the AES-256 key.
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().encode("ascii")


def decrypt_req_info(req_info_b64: str, api_key: str) -> bytes:
    """Decrypt ``req_info`` to the plaintext ``<root>`` XML bytes."""
    if not isinstance(req_info_b64, (str, bytes)) or not req_info_b64:
        raise DecryptError("Refund notify has no req_info")
    try:
        raw = base64.b64decode(req_info_b64, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("req_info is not valid base64") from None
    if not raw or len(raw) % _BLOCK:
        raise DecryptError(
            f"req_info is {len(raw)} bytes, not a whole number of AES blocks: truncated or corrupted"
        )
    plain = AES.new(_aes_key(api_key), AES.MODE_ECB).decrypt(raw)
    pad = plain[-1]
    if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise DecryptError(
            "req_info does not decrypt with this API key (bad padding): "
            "check the APIv2 key in the merchant platform"
        )
    return plain[:-pad]


def encrypt_req_info(plaintext: bytes, api_key: str) -> str:
    """The inverse, as WeChat does it: for tests, the simulator and tools."""
    pad = _BLOCK - len(plaintext) % _BLOCK
    cipher = AES.new(_aes_key(api_key), AES.MODE_ECB)
    return base64.b64encode(cipher.encrypt(plaintext + bytes([pad]) * pad)).decode("ascii")
