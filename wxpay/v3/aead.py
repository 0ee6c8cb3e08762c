"""AEAD_AES_256_GCM with the APIv3 key: notify resources and platform certificates.

WeChat encrypts every notify ``resource`` and every certificate in
``/v3/certificates`` this way: key = the APIv3 key's 32 bytes, nonce = the
``nonce`` string's bytes (12 characters), associated data = the
``associated_data`` string's bytes (may be empty), ciphertext = base64 of
the encrypted bytes followed by the 16-byte tag.

A wrong APIv3 key, a changed ciphertext, tag or associated data all fail
the same tag check: one :class:`~wxpay.errors.DecryptError` (``undecryptable``).
Other codes: ``unsupported_algorithm``, ``malformed_ciphertext``, ``bad_nonce``.
"""
from __future__ import annotations

import base64
import binascii
import secrets
import string
from typing import Any, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError, DecryptError

__all__ = ["ALGORITHM", "ApiV3Cipher"]

ALGORITHM = "AEAD_AES_256_GCM"
_TAG_BYTES = 16
_NONCE_ALPHABET = string.ascii_letters + string.digits


def _text_bytes(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise DecryptError(f"The resource's {name} is not a string", code="malformed_ciphertext")
    return value.encode("utf-8")


class ApiV3Cipher:
    """AES-256-GCM under one APIv3 key (checked once: exactly 32 bytes).

    The key is the 32-character APIv3 key set in the merchant platform
    (API security), not the V2 API key. The repr never shows it.
    """

    def __init__(self, apiv3_key: str | bytes) -> None:
        key = apiv3_key.encode("utf-8") if isinstance(apiv3_key, str) else apiv3_key
        if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
            size = len(key) if isinstance(key, (bytes, bytearray)) else 0
            raise ConfigError(
                f"The APIv3 key must be exactly 32 bytes (32 ASCII characters), got {size}: "
                "copy it from the merchant platform, API security, APIv3 key",
                code="bad_apiv3_key",
            )
        self._aead = AESGCM(bytes(key))

    def __repr__(self) -> str:
        return "ApiV3Cipher(<APIv3 key>)"

    def decrypt(self, *, nonce: str, associated_data: str, ciphertext: str) -> bytes:
        """The plaintext bytes of one base64 ``ciphertext`` (ciphertext ‖ tag)."""
        nonce_bytes = _text_bytes("nonce", nonce)
        aad = _text_bytes("associated_data", associated_data)
        if not isinstance(ciphertext, str):
            raise DecryptError("The resource's ciphertext is not a string", code="malformed_ciphertext")
        try:
            raw = binascii.a2b_base64(ciphertext, strict_mode=True)  # the base64 alphabet only, padding at the end
        except (binascii.Error, ValueError):
            raise DecryptError("The resource's ciphertext is not base64", code="malformed_ciphertext") from None
        if len(raw) < _TAG_BYTES:
            raise DecryptError(
                f"The resource's ciphertext is {len(raw)} bytes, shorter than the 16-byte tag: truncated",
                code="malformed_ciphertext",
            )
        try:
            return self._aead.decrypt(nonce_bytes, raw, aad)
        except InvalidTag:
            raise DecryptError(
                "The resource does not decrypt with this APIv3 key (GCM tag mismatch): the APIv3 key "
                "configured here differs from the merchant platform's, or the resource was altered",
            ) from None
        except ValueError:  # nonce length outside what GCM accepts
            raise DecryptError("The resource's nonce is not usable (empty or too long)", code="bad_nonce") from None

    def encrypt(self, *, nonce: str, associated_data: str, plaintext: bytes) -> str:
        """Base64 of ciphertext ‖ tag, as WeChat writes it (for the simulator and tests)."""
        try:
            raw = self._aead.encrypt(nonce.encode("utf-8"), bytes(plaintext), associated_data.encode("utf-8"))
        except ValueError:
            raise DecryptError("The nonce is not usable (empty or too long)", code="bad_nonce") from None
        return base64.b64encode(raw).decode("ascii")

    def decrypt_resource(self, resource: Mapping[str, Any]) -> bytes:
        """A notify ``resource`` (or ``encrypt_certificate``) object → plaintext bytes."""
        if type(resource) is not dict and not isinstance(resource, Mapping):
            raise DecryptError("The encrypted resource is not a JSON object", code="malformed_ciphertext")
        algorithm = resource.get("algorithm")
        if algorithm != ALGORITHM:
            raise DecryptError(
                f"The resource's algorithm is {str(algorithm)[:40]!r}; only {ALGORITHM} is supported",
                code="unsupported_algorithm",
            )
        return self.decrypt(
            nonce=resource.get("nonce"),
            associated_data=resource.get("associated_data", ""),
            ciphertext=resource.get("ciphertext"),
        )

    def encrypt_resource(
        self,
        plaintext: bytes,
        *,
        associated_data: str,
        original_type: str | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """A ``resource`` object as WeChat sends it; a fresh 12-character nonce unless given."""
        nonce = nonce if nonce is not None else "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(12))
        resource = {
            "algorithm": ALGORITHM,
            "ciphertext": self.encrypt(nonce=nonce, associated_data=associated_data, plaintext=plaintext),
            "associated_data": associated_data,
            "nonce": nonce,
        }
        if original_type is not None:
            resource = {"original_type": original_type, **resource}
        return resource
