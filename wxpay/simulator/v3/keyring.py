"""One merchant's APIv3 trust as WeChat holds it, and which key signs what (digest §1).

The keyring holds the merchant's public key (to verify requests), the APIv3
key (to encrypt notifies and certificates) and WeChat's two signing keys: the
WeChat Pay public key (``PUB_KEY_ID_…``) and a platform certificate. The key
mode, switchable at run time, says which of WeChat's keys the merchant has:

- ``public_key``: only the public key; ``/v3/certificates`` is 404;
- ``platform_cert``: only the platform certificate (legacy merchants);
- ``gray``: both (the switch): a reply is signed with the key the request's
  ``Wechatpay-Serial`` names (the platform certificate when absent), a notify
  with the public key for a configurable share, drawn from a seeded RNG.

A platform certificate signs only inside its validity period.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wxpay.v3.aead import ApiV3Cipher
from wxpay.v3.keys import Certificate, RSAPrivateKey, RSAPublicKey, keys_match, load_certificate
from wxpay.v3.keys import load_private_key as _load_private_key
from wxpay.v3.keys import load_public_key as _load_public_key

from ..config import SimV3, check_key_mode
from .wire import V3Error


@functools.lru_cache(maxsize=64)
def load_private_key(pem: str) -> RSAPrivateKey:
    """Parsed once per process: loading checks the key, which costs tens of ms."""
    return _load_private_key(pem)


@functools.lru_cache(maxsize=64)
def load_public_key(pem: str) -> RSAPublicKey:
    return _load_public_key(pem)


@dataclass(frozen=True)
class SigningKey:
    """One of WeChat's keys: what ``Wechatpay-Serial`` names, and the private half."""

    serial: str
    kind: str  # "public_key" | "platform_cert"
    private_key: RSAPrivateKey
    certificate: Certificate | None = None


class Keyring:
    def __init__(self, mch_id: str, v3: SimV3) -> None:
        self.mch_id = mch_id
        self.v3 = v3
        self.serial_no = v3.serial_no.upper()
        self.set_mode(v3.key_mode, v3.gray_share, v3.gray_seed)

    # --- lazily parsed key material (V2-only runs never pay for it) --------------

    @functools.cached_property
    def merchant_key(self) -> RSAPublicKey:
        return load_public_key(self.v3.merchant_public_key_pem)

    @functools.cached_property
    def cipher(self) -> ApiV3Cipher:
        return ApiV3Cipher(self.v3.apiv3_key)

    @functools.cached_property
    def public_key(self) -> SigningKey:
        private = load_private_key(self.v3.wechatpay_private_key_pem)
        if not keys_match(private, load_public_key(self.v3.wechatpay_public_key_pem)):
            raise ValueError(f"merchant {self.mch_id}: the WeChat Pay public key and its private key do not match")
        return SigningKey(self.v3.public_key_id, "public_key", private)

    @functools.cached_property
    def platform(self) -> SigningKey:
        cert = load_certificate(self.v3.platform_certificate_pem)
        private = load_private_key(self.v3.platform_private_key_pem)
        if not keys_match(private, cert):
            raise ValueError(f"merchant {self.mch_id}: the platform certificate and its private key do not match")
        return SigningKey(cert.serial_no, "platform_cert", private, cert)

    # --- the mode ------------------------------------------------------------------------

    def set_mode(self, key_mode: str, gray_share: float | None = None, gray_seed: int | None = None) -> None:
        share = self.v3.gray_share if gray_share is None else gray_share
        check_key_mode(key_mode, share)
        self.key_mode = key_mode
        self.gray_share = float(share)
        self.gray_seed = gray_seed
        self._rng = random.Random(gray_seed)

    def view(self) -> dict[str, Any]:
        """What /_sim/ shows: serials and mode, never a key."""
        platform = self.platform.certificate
        return {
            "mch_id": self.mch_id, "key_mode": self.key_mode, "gray_share": self.gray_share,
            "gray_seed": self.gray_seed, "merchant_serial_no": self.serial_no,
            "public_key_id": self.v3.public_key_id, "platform_serial_no": self.platform.serial,
            "platform_valid_from": platform.not_before.isoformat() if platform else None,
            "platform_valid_until": platform.not_after.isoformat() if platform else None,
        }

    # --- which key signs -------------------------------------------------------------------

    def _platform_if_valid(self, now: datetime) -> SigningKey | None:
        cert = self.platform.certificate
        return self.platform if cert is not None and cert.valid_at(now) else None

    def keys(self, now: datetime) -> list[SigningKey]:
        """WeChat's keys this merchant has now (the platform certificate only while valid)."""
        out: list[SigningKey] = []
        if self.key_mode in ("platform_cert", "gray"):
            platform = self._platform_if_valid(now)
            if platform is not None:
                out.append(platform)
        if self.key_mode in ("public_key", "gray"):
            out.append(self.public_key)
        return out

    def certificates(self, now: datetime) -> list[Certificate]:
        return [k.certificate for k in self.keys(now) if k.certificate is not None]

    def _none_left(self) -> V3Error:
        cert = self.platform.certificate
        return V3Error(500, "SYSTEM_ERROR", f"simulator: merchant {self.mch_id} is in {self.key_mode} mode but its "
                       f"platform certificate {self.platform.serial} expired on {cert.not_after:%Y-%m-%d} (UTC); "
                       "configure a newer one or switch to the public key")

    def reply_key(self, requested: str | None, now: datetime) -> SigningKey:
        """The key for a reply: the one the request's Wechatpay-Serial names, else the default.

        An unknown name is 400 INVALID_REQUEST (W19). Without the header the
        platform certificate signs if the merchant has one (W5), else the
        public key.
        """
        keys = self.keys(now)
        if requested is not None:
            for key in keys:
                if key.serial == requested or (key.kind == "platform_cert" and key.serial == requested.upper()):
                    return key
            raise V3Error(400, "INVALID_REQUEST", "Wechatpay-Serial请求头的值不是本商户可用的微信支付公钥ID或平台证书序列号",
                          {"field": "Wechatpay-Serial", "location": "header", "value": requested[:64]})
        if not keys:
            raise self._none_left()
        return keys[0]  # platform first in keys()

    def default_key(self, now: datetime) -> SigningKey | None:
        """For replies that cannot honour the header (its own refusal); None if none is usable."""
        keys = self.keys(now)
        return keys[0] if keys else None

    def notify_key(self, now: datetime) -> SigningKey:
        """gray: the public key with probability ``gray_share`` (one draw per notify)."""
        keys = self.keys(now)
        if not keys:
            raise self._none_left()
        if self.key_mode != "gray" or len(keys) == 1:
            return keys[0]
        return self.public_key if self._rng.random() < self.gray_share else keys[0]

    def other_serial(self, key: SigningKey) -> str:
        """A serial that does not name ``key`` (the ``wrong_serial`` fault): WeChat's other key."""
        return self.platform.serial if key.kind == "public_key" else self.v3.public_key_id
