"""RSA keys and X.509 certificates for APIv3, loaded once from PEM.

APIv3 trusts three kinds of key material: the merchant's private key (and
the serial of its API certificate), WeChat Pay's public key (named by a
``PUB_KEY_ID_…``), and WeChat's platform certificates (named by serial).
Everything here parses, describes and compares them; nothing signs.

Errors are :class:`~wxpay.errors.ConfigError` with a code per kind of
material; a message names what was wrong, never the key's content.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import ConfigError

__all__ = [
    "Certificate",
    "RSAPrivateKey",
    "RSAPublicKey",
    "certificate_serial",
    "keys_match",
    "load_certificate",
    "load_private_key",
    "load_public_key",
    "serial_hex",
]

RSAPrivateKey = rsa.RSAPrivateKey
RSAPublicKey = rsa.RSAPublicKey

# WeChat's keys are RSA-2048; a shorter key is a mistake, never a real key.
MIN_KEY_BITS = 2048


def _pem_bytes(pem: str | bytes, what: str, code: str) -> bytes:
    if isinstance(pem, str):
        pem = pem.encode("ascii", "replace")
    if not isinstance(pem, (bytes, bytearray)) or not pem.strip():
        raise ConfigError(f"{what}: empty; give the PEM text (-----BEGIN ...)", code=code)
    return bytes(pem)


def _check_rsa(key: object, what: str, code: str) -> None:
    if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        raise ConfigError(f"{what} is not an RSA key; WeChat Pay APIv3 uses RSA-2048", code=code)
    if key.key_size < MIN_KEY_BITS:
        raise ConfigError(f"{what} is RSA-{key.key_size}; WeChat Pay APIv3 uses RSA-2048", code=code)


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """The merchant's ``apiclient_key.pem`` (PKCS#8 or PKCS#1, unencrypted).

    Loading checks the key's consistency, which costs tens of milliseconds:
    load once per process, not per request.
    """
    what, code = "Merchant private key", "bad_private_key"
    data = _pem_bytes(pem, what, code)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{what} is password-protected; give the unencrypted apiclient_key.pem", code=code) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{what} is not a PEM private key (expected -----BEGIN PRIVATE KEY-----, apiclient_key.pem)",
            code=code,
        ) from None
    _check_rsa(key, what, code)
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """WeChat Pay's public key (``pub_key.pem``: -----BEGIN PUBLIC KEY-----)."""
    what, code = "WeChat Pay public key", "bad_public_key"
    data = _pem_bytes(pem, what, code)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{what} is not a PEM public key (expected -----BEGIN PUBLIC KEY-----, pub_key.pem)",
            code=code,
        ) from None
    _check_rsa(key, what, code)
    return key


def serial_hex(serial: int) -> str:
    """A certificate serial as WeChat writes it: upper-case hex, no padding (``%X``)."""
    return f"{serial:X}"


@dataclass(frozen=True)
class Certificate:
    """An X.509 certificate reduced to what APIv3 uses; times are aware UTC."""

    serial_no: str
    not_before: datetime
    not_after: datetime
    public_key: rsa.RSAPublicKey = field(repr=False, compare=False)
    pem: str = field(repr=False)

    def valid_at(self, when: datetime | int | float) -> bool:
        """Whether ``when`` (aware datetime or Unix seconds) is inside the validity period."""
        if not isinstance(when, datetime):
            when = datetime.fromtimestamp(when, timezone.utc)
        return self.not_before <= when <= self.not_after


def load_certificate(pem: str | bytes) -> Certificate:
    """A merchant API certificate or a WeChat platform certificate (PEM)."""
    what, code = "Certificate", "bad_certificate"
    data = _pem_bytes(pem, what, code)
    try:
        cert = x509.load_pem_x509_certificate(data)
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{what} is not a PEM X.509 certificate (expected -----BEGIN CERTIFICATE-----)", code=code) from None
    _check_rsa(public_key, f"{what}'s key", code)
    return Certificate(
        serial_no=serial_hex(cert.serial_number),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        public_key=public_key,
        pem=data.decode("ascii", "replace"),
    )


def certificate_serial(pem: str | bytes) -> str:
    """The serial of a certificate PEM, as ``serial_no`` in ``Authorization`` wants it."""
    return load_certificate(pem).serial_no


def _public_numbers(key: rsa.RSAPrivateKey | rsa.RSAPublicKey | Certificate) -> rsa.RSAPublicNumbers:
    if isinstance(key, Certificate):
        key = key.public_key
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"expected an RSA key or a Certificate, got {type(key).__name__}")
    return key.public_numbers()


def keys_match(private_key: rsa.RSAPrivateKey, other: rsa.RSAPublicKey | Certificate) -> bool:
    """Whether ``other`` (public key or certificate) is the public half of ``private_key``.

    A merchant who uploads a certificate and a key from two different
    downloads gets 401 SIGN_ERROR on every call; this finds it before any.
    """
    return _public_numbers(private_key) == _public_numbers(other)
