"""A merchant's APIv3 configuration, typed, and what is wrong with it.

:class:`V3Settings` is what a server reads from its configuration and hands
to :class:`~wxpay.v3_gateway.V3Gateway`: the merchant's own key material
(private key, the serial of its API certificate, the APIv3 key) and how
WeChat is verified (the WeChat Pay public key and its ``PUB_KEY_ID_…``,
platform-certificate mode, or both during WeChat's gray switch).

:func:`check_v3_settings` is the one owner of the rules: it reads every
item, one line per problem, so a server's live-mode check can print them
all at once (``config/`` does not import ``wxpay``: the wiring layer builds
the settings, calls the check and prints its lines). The gateway's
constructor applies the same rules and refuses the fatal ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from .endpoints import Endpoints
from .errors import ConfigError
from .v3.aead import ApiV3Cipher
from .v3.keys import (
    Certificate,
    RSAPrivateKey,
    RSAPublicKey,
    keys_match,
    load_certificate,
    load_private_key,
    load_public_key,
)

__all__ = ["EXPIRY_WARNING_DAYS", "KEY_MODES", "V3KeyMaterial", "V3Settings", "check_v3_settings",
           "fatal_v3_problems", "load_v3_key_material"]

# public_key: merchants onboarded since late 2024; platform_cert: older ones;
# gray: both, while WeChat moves the merchant from one to the other.
KEY_MODES = ("public_key", "platform_cert", "gray")
EXPIRY_WARNING_DAYS = 30

_MCHID = re.compile(r"[0-9A-Za-z]{1,32}")
_APPID = re.compile(r"[0-9A-Za-z_]{1,32}")
_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")
# Both examples in WeChat's documentation have 34 digits and a field report 32:
# the digits are opaque, the shape is not.
_PUBLIC_KEY_ID = re.compile(r"PUB_KEY_ID_[0-9]{1,53}")


@dataclass(frozen=True, repr=False)
class V3Settings:
    """One merchant's APIv3 settings (PEM texts, not file paths: reading files is the caller's).

    - ``appids``: every appid bound to the merchant (Official Account, Mini
      Program, mobile app);
    - ``merchant_private_key_pem`` and ``merchant_serial_no``: ``apiclient_key.pem``
      and the serial of the merchant API certificate it belongs to;
    - ``merchant_certificate_pem`` (``apiclient_cert.pem``) or
      ``merchant_public_key_pem``: optional, only to check that key and
      serial belong together before WeChat answers 401 to every call;
    - ``apiv3_key``: the 32-character APIv3 key (not the APIv2 key);
    - ``public_key_id`` and ``public_key_pem``: the WeChat Pay public key;
    - ``platform_certificates``: verify with WeChat's platform certificates,
      downloaded and refreshed (``platform_certificate_pems``: ones to trust
      from the start); with the public key as well, the gray switch;
    - ``pay_base``: WeChat's base URL (a simulator's in sandbox).

    The repr shows no key.
    """

    mchid: str
    appids: tuple[str, ...]
    merchant_private_key_pem: str
    merchant_serial_no: str
    apiv3_key: str
    public_key_id: str | None = None
    public_key_pem: str | None = None
    platform_certificates: bool = False
    platform_certificate_pems: tuple[str, ...] = ()
    merchant_certificate_pem: str | None = None
    merchant_public_key_pem: str | None = None
    pay_base: str = Endpoints.pay_base

    def __post_init__(self) -> None:
        for name in ("appids", "platform_certificate_pems"):
            value = getattr(self, name)
            if isinstance(value, (list, set, frozenset)):
                object.__setattr__(self, name, tuple(value))

    @property
    def key_mode(self) -> str | None:
        """``public_key``, ``platform_cert``, ``gray`` (both), or ``None`` (neither: refused)."""
        public = bool(self.public_key_id or self.public_key_pem)
        if public and self.platform_certificates:
            return "gray"
        if public:
            return "public_key"
        return "platform_cert" if self.platform_certificates else None

    def __repr__(self) -> str:
        return (f"V3Settings(mchid={self.mchid!r}, appids={self.appids!r}, merchant_serial_no="
                f"{self.merchant_serial_no!r}, key_mode={self.key_mode!r}, public_key_id={self.public_key_id!r}, "
                f"pay_base={self.pay_base!r})")


@dataclass(frozen=True, repr=False)
class V3KeyMaterial:
    """The parsed keys of valid settings (built once: parsing a private key costs tens of ms)."""

    private_key: RSAPrivateKey
    public_key: RSAPublicKey | None
    platform_certificates: tuple[Certificate, ...] = field(default=())

    def __repr__(self) -> str:
        return "V3KeyMaterial(<keys>)"


@dataclass(frozen=True)
class _Problem:
    line: str
    fatal: bool = True


class _Reader:
    """Reads settings item by item, keeping one line per problem and what parsed."""

    def __init__(self, settings: V3Settings, now: datetime, expiry_days: float) -> None:
        self.s = settings
        self.now = now
        self.horizon = now + timedelta(days=expiry_days)
        self.problems: list[_Problem] = []

    def bad(self, name: str, message: str, *, fatal: bool = True) -> None:
        self.problems.append(_Problem(f"{name}: {message}", fatal))

    def _text(self, name: str, value: object, pattern: re.Pattern[str], rule: str) -> bool:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            shown = repr(value[:60]) if isinstance(value, str) else type(value).__name__
            self.bad(name, f"must be {rule} (got {shown})")
            return False
        return True

    def _expiry(self, name: str, cert: Certificate, what: str, *, expired_is_fatal: bool) -> None:
        if cert.not_after <= self.now:
            self.bad(name, f"{what} {cert.serial_no} expired on {cert.not_after:%Y-%m-%d %H:%M} UTC",
                     fatal=expired_is_fatal)
        elif cert.not_after <= self.horizon:
            days = (cert.not_after - self.now).days
            self.bad(name, f"{what} {cert.serial_no} expires on {cert.not_after:%Y-%m-%d %H:%M} UTC "
                           f"(in {days} days): renew it in the merchant platform (API security)", fatal=False)

    # --- the items -----------------------------------------------------------------------

    def identity(self) -> None:
        s = self.s
        self._text("mchid", s.mchid, _MCHID, "the merchant id of the merchant platform (digits)")
        if not isinstance(s.appids, tuple) or not s.appids:
            self.bad("appids", "name at least one appid bound to the merchant (Official Account, Mini Program, app)")
        else:
            for appid in s.appids:
                self._text("appids", appid, _APPID, "an appid (letters, digits and _, at most 32)")
        try:
            Endpoints(pay_base=s.pay_base)
        except ConfigError as exc:
            self.bad("pay_base", exc.message)

    def merchant_key(self) -> RSAPrivateKey | None:
        s = self.s
        serial_ok = self._text("merchant_serial_no", s.merchant_serial_no, _SERIAL,
                               "the merchant API certificate's serial number (hex; 40 characters in the "
                               "merchant platform, API security)")
        try:
            key = load_private_key(s.merchant_private_key_pem)
        except ConfigError as exc:
            self.bad("merchant_private_key", exc.message)
            return None
        if s.merchant_certificate_pem is not None:
            try:
                cert = load_certificate(s.merchant_certificate_pem)
            except ConfigError as exc:
                self.bad("merchant_certificate", exc.message)
            else:
                if not keys_match(key, cert):
                    self.bad("merchant_private_key", "does not belong to the merchant certificate: use "
                             "apiclient_key.pem and apiclient_cert.pem from the same download")
                if serial_ok and s.merchant_serial_no.upper() != cert.serial_no:
                    self.bad("merchant_serial_no", f"{s.merchant_serial_no} is not the merchant certificate's "
                             f"serial ({cert.serial_no}): WeChat would answer 401 SIGN_ERROR to every call")
                self._expiry("merchant_certificate", cert, "the merchant API certificate", expired_is_fatal=True)
        if s.merchant_public_key_pem is not None:
            try:
                public = load_public_key(s.merchant_public_key_pem)
            except ConfigError as exc:
                self.bad("merchant_public_key", exc.message)
            else:
                if not keys_match(key, public):
                    self.bad("merchant_private_key", "does not match the merchant public key: the key and the "
                             "certificate (and its serial) must come from the same download")
        return key

    def apiv3_key(self) -> None:
        try:
            ApiV3Cipher(self.s.apiv3_key)
        except ConfigError as exc:
            self.bad("apiv3_key", exc.message)

    def wechat_public_key(self, merchant_key: RSAPrivateKey | None) -> RSAPublicKey | None:
        s = self.s
        if s.public_key_id is None and s.public_key_pem is None:
            return None
        if s.public_key_id is None or s.public_key_pem is None:
            missing = "public_key_id" if s.public_key_id is None else "public_key_pem"
            self.bad(missing, "the WeChat Pay public key needs both its ID (PUB_KEY_ID_…) and its PEM (pub_key.pem)")
        if s.public_key_id is not None:
            self._text("public_key_id", s.public_key_id, _PUBLIC_KEY_ID,
                       "the WeChat Pay public key ID, PUB_KEY_ID_ followed by digits, as the merchant platform "
                       "shows it (API security)")
        if s.public_key_pem is None:
            return None
        try:
            public = load_public_key(s.public_key_pem)
        except ConfigError as exc:
            self.bad("public_key_pem", exc.message)
            return None
        if merchant_key is not None and keys_match(merchant_key, public):
            self.bad("public_key_pem", "is the merchant's own public key, not WeChat Pay's: download pub_key.pem "
                     "from the merchant platform (API security, WeChat Pay public key)")
        return public

    def platform_certificates(self) -> tuple[Certificate, ...]:
        s = self.s
        if s.platform_certificate_pems and not s.platform_certificates:
            self.bad("platform_certificate_pems", "given while platform-certificate mode is off "
                     "(platform_certificates = false): turn it on or leave them out")
        out = []
        for n, pem in enumerate(s.platform_certificate_pems):
            try:
                cert = load_certificate(pem)
            except ConfigError as exc:
                self.bad(f"platform_certificate_pems[{n}]", exc.message)
                continue
            self._expiry(f"platform_certificate_pems[{n}]", cert, "WeChat platform certificate",
                         expired_is_fatal=False)
            if cert.not_after > self.now:
                out.append(cert)
        return tuple(out)

    def mode(self) -> None:
        if self.s.key_mode is None:
            self.bad("key_mode", "configure how to verify WeChat: the WeChat Pay public key (public_key_id "
                     "and public_key_pem; merchants since late 2024), platform certificates "
                     "(platform_certificates = true; older merchants), or both during WeChat's switch")

    def read(self) -> V3KeyMaterial | None:
        self.identity()
        key = self.merchant_key()
        self.apiv3_key()
        public = self.wechat_public_key(key)
        certificates = self.platform_certificates()
        self.mode()
        if key is None:
            return None
        return V3KeyMaterial(key, public, certificates)


def _now(now: datetime | float | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ConfigError("now must be a timezone-aware datetime")
        return now
    return datetime.fromtimestamp(now, timezone.utc)


def _read(settings: V3Settings, now: datetime | float | None,
          expiry_days: float) -> tuple[list[_Problem], V3KeyMaterial | None]:
    if not isinstance(settings, V3Settings):
        raise ConfigError("APIv3 settings must be a wxpay.v3_settings.V3Settings")
    reader = _Reader(settings, _now(now), expiry_days)
    material = reader.read()
    return reader.problems, material


def check_v3_settings(
    settings: V3Settings,
    *,
    now: datetime | float | None = None,
    expiry_days: float = EXPIRY_WARNING_DAYS,
) -> list[str]:
    """Every problem of ``settings``, one line each (``field: what is wrong``); ``[]`` when none.

    Offline: keys parse, belong together (given the merchant certificate or
    public key), the serial and ``PUB_KEY_ID_…`` have their shape, the APIv3
    key is 32 bytes, a certificate does not expire within ``expiry_days``.
    Lines about a certificate that merely expires soon (or a configured
    platform certificate already expired, which is skipped) are warnings
    the gateway still starts with; :func:`fatal_v3_problems` lists only
    what it refuses.
    """
    return [p.line for p in _read(settings, now, expiry_days)[0]]


def fatal_v3_problems(settings: V3Settings, *, now: datetime | float | None = None) -> list[str]:
    """The lines of :func:`check_v3_settings` that the gateway refuses to start with."""
    return [p.line for p in _read(settings, now, 0)[0] if p.fatal]


def load_v3_key_material(settings: V3Settings, *, now: datetime | float | None = None) -> V3KeyMaterial:
    """The parsed keys, or ``ConfigError`` listing every fatal problem (one per line)."""
    problems, material = _read(settings, now, 0)
    fatal = [p.line for p in problems if p.fatal]
    if fatal or material is None:
        raise ConfigError("The APIv3 settings are not usable:\n" + "\n".join(fatal), code="bad_v3_settings")
    return material
