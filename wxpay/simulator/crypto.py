"""The simulator's own refund-notify encryption (§12), written apart from our client.

WeChat encrypts the refund result as ``req_info``: AES-256-ECB with the
lower-case hex MD5 of the APIv2 key as the 32-byte key, PKCS7 padding on
16-byte blocks, base64. Kept independent of ``wxpay.refund_crypto`` (the
merchant side) so a shared mistake cannot pass both sides' tests.
"""
from __future__ import annotations

import base64
import hashlib

from Crypto.Cipher import AES

_BLOCK = 16


def _key(api_key: str) -> bytes:
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().encode("ascii")


def encrypt_req_info(plaintext: bytes, api_key: str) -> str:
    """base64(AES-256-ECB(PKCS7-16(plaintext))) as WeChat sends it."""
    pad = _BLOCK - len(plaintext) % _BLOCK
    padded = plaintext + bytes([pad]) * pad
    return base64.b64encode(AES.new(_key(api_key), AES.MODE_ECB).encrypt(padded)).decode("ascii")


def decrypt_req_info(req_info: str, api_key: str) -> bytes:
    """The inverse, for the simulator's own tests (checked against vector T5)."""
    raw = AES.new(_key(api_key), AES.MODE_ECB).decrypt(base64.b64decode(req_info, validate=True))
    pad = raw[-1] if raw else 0
    if not 1 <= pad <= _BLOCK or raw[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad PKCS7 padding")
    return raw[:-pad]


def build_root_xml(fields: dict[str, object]) -> bytes:
    """The plaintext document: flat ``<root>`` with CDATA strings and bare integers."""
    parts = ["<root>"]
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            text = str(value).replace("]]>", "]]]]><![CDATA[>")
            parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
    parts.append("</root>")
    return "".join(parts).encode("utf-8")
