"""The merchant identity every Pay V2 call is made and checked with."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError
from .signing import MD5, SIGN_TYPES


@dataclass(frozen=True)
class Merchant:
    """One mch_id with its APIv2 key and default appid.

    ``cert_path``/``key_path`` are the PEM files of the merchant API
    certificate, needed only for refunds (mutual TLS); ``key_path`` may be
    omitted when the certificate file also holds the key. The repr masks the
    API key so a merchant object can be logged.
    """

    mch_id: str
    api_key: str
    appid: str
    sign_type: str = MD5
    cert_path: str | None = None
    key_path: str | None = None

    def __post_init__(self) -> None:
        for name in ("mch_id", "api_key", "appid"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"Merchant {name} is required")
        if self.sign_type not in SIGN_TYPES:
            raise ConfigError(
                f"Unsupported sign_type {self.sign_type!r}: use one of {', '.join(SIGN_TYPES)}"
            )
        if self.key_path and not self.cert_path:
            raise ConfigError("Merchant key_path given without cert_path")

    @property
    def has_cert(self) -> bool:
        return bool(self.cert_path)

    def __repr__(self) -> str:
        return (
            f"Merchant(mch_id={self.mch_id!r}, appid={self.appid!r}, api_key='***', "
            f"sign_type={self.sign_type!r}, cert_path={self.cert_path!r}, key_path={self.key_path!r})"
        )

    __str__ = __repr__
