"""Proving a V3 response or notify came from WeChat: verifiers and the validator.

Two roles, as in WeChat's own SDKs:

- a :class:`Verifier` holds WeChat keys by the serial that names them and
  checks one signature: :class:`PublicKeyVerifier` (the WeChat Pay public
  key, ``PUB_KEY_ID_…``), :class:`PlatformCertificateVerifier` (platform
  certificates by serial, several during a rotation, each only inside its
  validity period) and :class:`CombinedVerifier` (both, for the gray switch:
  the serial picks the key);
- the :class:`Validator` reads the ``Wechatpay-*`` headers, refuses stale
  timestamps and probes, and asks its verifier about the **raw body bytes**.

Every failure is one :class:`~wxpay.errors.VerificationError` whose ``code``
names the cause: ``missing_header``, ``malformed_header``,
``unsupported_signature_type``, ``signtest_probe``, ``stale_timestamp``,
``unknown_serial``, ``certificate_not_valid``, ``signature_not_base64``,
``signature_wrong_length``, ``bad_signature``.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Iterable, Mapping, NamedTuple, Protocol, runtime_checkable

from ..errors import ConfigError, VerificationError
from .keys import Certificate, RSAPublicKey
from .signing import SCHEME, decode_signature, response_message, rsa_verify

__all__ = [
    "PROBE_PREFIX",
    "WINDOW_SECONDS",
    "CombinedVerifier",
    "PlatformCertificateVerifier",
    "PublicKeyVerifier",
    "SignedHeaders",
    "Validator",
    "Verifier",
    "read_signed_headers",
]

# WeChat's signature probes: not a signature, must simply fail verification.
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
# The official Go SDK refuses |now - Wechatpay-Timestamp| >= 300 s.
WINDOW_SECONDS = 300


@runtime_checkable
class Verifier(Protocol):
    """Holds WeChat keys by serial; checks one signature."""

    @property
    def preferred_serial(self) -> str:
        """The serial to name in a request's ``Wechatpay-Serial`` header (the key replies should use)."""
        ...

    def knows(self, serial: str) -> bool:
        """Whether ``serial`` names a key this verifier holds."""
        ...

    def verify(self, serial: str, message: bytes, signature: bytes, *, signed_at: int) -> None:
        """Raise :class:`VerificationError` unless ``signature`` is ``message``'s under the key ``serial`` names.

        ``signed_at`` is the signed Unix timestamp (a certificate must be valid then).
        """
        ...


def _check(public_key: RSAPublicKey, message: bytes, signature: bytes) -> None:
    if len(signature) != (public_key.key_size + 7) // 8:
        raise VerificationError(
            f"The signature is {len(signature)} bytes, not one of this key's: the message was not signed by WeChat",
            code="signature_wrong_length",
        )
    if not rsa_verify(public_key, message, signature):
        raise VerificationError(
            "The signature does not verify: the body or headers changed after WeChat signed them, "
            "or the key configured for this serial is not WeChat's",
            code="bad_signature",
        )


def _unknown(serial: str) -> VerificationError:
    return VerificationError(
        f"Wechatpay-Serial {serial[:64]!r} names no WeChat key configured here: "
        "configure the WeChat Pay public key ID or refresh the platform certificates",
        code="unknown_serial",
    )


class PublicKeyVerifier:
    """The WeChat Pay public key, named by its ``PUB_KEY_ID_…`` (compared exactly)."""

    def __init__(self, public_key_id: str, public_key: RSAPublicKey) -> None:
        if not isinstance(public_key_id, str) or not public_key_id:
            raise ConfigError("The WeChat Pay public key ID is empty (it looks like PUB_KEY_ID_…)",
                              code="bad_public_key_id")
        if not isinstance(public_key, RSAPublicKey):
            raise TypeError("public_key must be a loaded RSA public key (wxpay.v3.keys.load_public_key)")
        self.public_key_id = public_key_id
        self.public_key = public_key

    def __repr__(self) -> str:
        return f"PublicKeyVerifier({self.public_key_id!r})"

    @property
    def preferred_serial(self) -> str:
        return self.public_key_id

    def knows(self, serial: str) -> bool:
        return serial == self.public_key_id

    def verify(self, serial: str, message: bytes, signature: bytes, *, signed_at: int) -> None:
        if serial != self.public_key_id:
            raise _unknown(serial)
        _check(self.public_key, message, signature)


class PlatformCertificateVerifier:
    """WeChat platform certificates by serial (case-insensitive hex).

    A certificate verifies only messages signed inside its validity period.
    """

    def __init__(self, certificates: Iterable[Certificate]) -> None:
        by_serial: dict[str, Certificate] = {}
        for cert in certificates:
            if not isinstance(cert, Certificate):
                raise TypeError("certificates must be wxpay.v3.keys.Certificate objects (load_certificate)")
            by_serial[cert.serial_no.upper()] = cert
        if not by_serial:
            raise ConfigError("No platform certificate given: download them from /v3/certificates, "
                              "or configure the WeChat Pay public key instead", code="no_platform_certificates")
        self._by_serial = by_serial

    def __repr__(self) -> str:
        return f"PlatformCertificateVerifier({sorted(self._by_serial)!r})"

    @property
    def certificates(self) -> tuple[Certificate, ...]:
        return tuple(self._by_serial.values())

    @property
    def preferred_serial(self) -> str:
        """The certificate that expires last (the newest during a rotation)."""
        return max(self._by_serial.values(), key=lambda c: (c.not_after, c.serial_no)).serial_no

    def knows(self, serial: str) -> bool:
        return isinstance(serial, str) and serial.upper() in self._by_serial

    def verify(self, serial: str, message: bytes, signature: bytes, *, signed_at: int) -> None:
        cert = self._by_serial.get(serial.upper())
        if cert is None:
            raise _unknown(serial)
        if not cert.valid_at(signed_at):
            raise VerificationError(
                f"Platform certificate {cert.serial_no} was not valid at the signed time "
                f"(valid {cert.not_before:%Y-%m-%d} to {cert.not_after:%Y-%m-%d} UTC): refresh the certificates",
                code="certificate_not_valid",
            )
        _check(cert.public_key, message, signature)


class CombinedVerifier:
    """Several verifiers; the serial picks the one that knows it (the gray switch).

    The first one's serial is the preferred one: put the public key first to
    ask WeChat for replies signed with it.
    """

    def __init__(self, *verifiers: Verifier) -> None:
        if not verifiers:
            raise ConfigError("CombinedVerifier needs at least one verifier", code="no_verifier")
        self.verifiers = verifiers

    def __repr__(self) -> str:
        return f"CombinedVerifier{self.verifiers!r}"

    @property
    def preferred_serial(self) -> str:
        return self.verifiers[0].preferred_serial

    def knows(self, serial: str) -> bool:
        return any(v.knows(serial) for v in self.verifiers)

    def verify(self, serial: str, message: bytes, signature: bytes, *, signed_at: int) -> None:
        for verifier in self.verifiers:
            if verifier.knows(serial):
                verifier.verify(serial, message, signature, signed_at=signed_at)
                return
        raise _unknown(serial)


# --- the headers -----------------------------------------------------------


class SignedHeaders(NamedTuple):
    """The ``Wechatpay-*`` headers of one reply or notify (not yet trusted by themselves).

    A named tuple: immutable like a frozen dataclass, built in a fraction of
    its time (one is built per reply and per notify).
    """

    timestamp: str
    nonce: str
    serial: str
    signature: str
    signature_type: str | None = None
    request_id: str | None = None

    @property
    def is_probe(self) -> bool:
        """A ``WECHATPAY/SIGNTEST/`` probe: WeChat checking that we refuse it."""
        return self.signature.startswith(PROBE_PREFIX)


_NAMES = {
    "wechatpay-timestamp": "timestamp",
    "wechatpay-nonce": "nonce",
    "wechatpay-serial": "serial",
    "wechatpay-signature": "signature",
    "wechatpay-signature-type": "signature_type",
    "request-id": "request_id",
}
_FIELDS = SignedHeaders._fields
_new_headers = tuple.__new__  # SignedHeaders from all six values, without the generated __new__'s frame
_MAX_HEADER = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Header names seen so far -> field (or None): a reply carries a dozen names, the same ones every
# time, so each spelling is normalised once. Bounded: names an outsider invents are not kept.
_KEYS: dict[str, str | None] = {}
_MAX_KEYS = 512


def _header_key(name: str) -> str | None:
    """``Wechatpay-Serial``, ``wechatpay-serial``, ``HTTP_WECHATPAY_SERIAL`` → the field name."""
    try:
        return _KEYS[name]
    except KeyError:
        pass
    key = name.strip().lower().replace("_", "-")
    if key.startswith("http-"):
        key = key[5:]
    field = _NAMES.get(key)
    if len(_KEYS) < _MAX_KEYS:
        _KEYS[name] = field
    return field


_VISIBLE = bytes(range(0x21, 0x7F))  # printable ASCII but the space


def _missing(found: Mapping[str, str]) -> VerificationError:
    for key in _FIELDS[:4]:
        if not found.get(key):
            name = "Wechatpay-" + key.capitalize()
            return VerificationError(
                f"The {name} header is missing: the message is not signed (a proxy may strip Wechatpay-* headers)",
                code="missing_header",
            )
    raise AssertionError("no header is missing")


def read_signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The ``Wechatpay-*`` headers of a reply or notify, by any spelling of their names.

    Refuses a missing one (``missing_header``), one given twice under two
    spellings or with control characters (``malformed_header``), and a
    ``Wechatpay-Signature-Type`` other than ``WECHATPAY2-SHA256-RSA2048``
    (``unsupported_signature_type``).
    """
    try:
        names = _PLANS[tuple(headers)]
    except KeyError:
        names = _plan(tuple(headers))
    except TypeError:  # a name that is not hashable: read one by one
        names = None
    signed = None
    if names is not None:
        # The values checked all at once: when their concatenation is short and visible ASCII
        # (no space, no control character), every value is readable and already stripped.
        values = list(map(headers.get, names))
        try:
            joined = "".join(filter(None, values))
        except TypeError:  # a value that is not text
            joined = " "
        if (values[0] and values[1] and values[2] and values[3] and len(joined) <= _MAX_HEADER
                and joined.isascii() and not joined.encode("ascii").translate(None, _VISIBLE)):
            signed = _new_headers(SignedHeaders, values)
    if signed is None:  # anything else (a space to strip, non-ASCII, a repeat, a gap) is read one by one
        found = _read_one_by_one(headers)
        get = found.get
        signed = _new_headers(SignedHeaders, (get("timestamp"), get("nonce"), get("serial"), get("signature"),
                                              get("signature_type"), get("request_id")))
        if not (signed[0] and signed[1] and signed[2] and signed[3]):
            raise _missing(found)
    signature_type = signed[4]
    if signature_type is not None and signature_type != SCHEME:
        raise VerificationError(f"Wechatpay-Signature-Type must be {SCHEME}", code="unsupported_signature_type")
    return signed


# The header names of a reply, in order -> the name of each field in it (a name absent from the
# reply for a field it lacks), or None when a field is missing or named twice. A server sees the
# same few name lists on every reply and notify. Bounded: lists an outsider invents are not kept.
_PLANS: dict[tuple, tuple[str, ...] | None] = {}
_MAX_PLANS = 256
_ABSENT = ""  # no header is named "" (a list with one is read one by one)


def _plan(names: tuple) -> tuple[str, ...] | None:
    by_field: dict[str, str] = {}
    plan: tuple[str, ...] | None = None
    for name in names:
        key = _header_key(name) if isinstance(name, str) else None
        if key is not None:
            if key in by_field:
                break  # one field under two spellings
            by_field[key] = name
    else:
        if _ABSENT not in names and all(f in by_field for f in _FIELDS[:4]):
            plan = tuple(by_field.get(f, _ABSENT) for f in _FIELDS)
    if len(_PLANS) < _MAX_PLANS:
        _PLANS[names] = plan
    return plan


def _read_one_by_one(headers: Mapping[str, str]) -> dict[str, str]:
    """Field -> stripped value, refusing the first header repeated or unreadable (the exact rule)."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        key = _header_key(name) if isinstance(name, str) else None
        if key is None:
            continue
        if (key in found or not isinstance(value, str) or len(value) > _MAX_HEADER
                or not (value.isprintable() or _CONTROL.search(value) is None)):
            raise VerificationError(f"The {name} header is malformed or repeated", code="malformed_header")
        found[key] = value.strip()
    return found


class Validator:
    """Checks the signature of a reply or notify: headers, time window, serial, raw body.

    ``clock`` returns Unix seconds (injectable for tests); ``window`` is the
    allowed distance between it and ``Wechatpay-Timestamp``, refused when
    reached (the Go SDK's ``>= 300``).
    """

    def __init__(self, verifier: Verifier, *, clock: Callable[[], float] = time.time,
                 window: int = WINDOW_SECONDS) -> None:
        if not isinstance(verifier, Verifier):
            raise TypeError("verifier must provide preferred_serial, knows() and verify()")
        self.verifier = verifier
        self._clock = clock
        self.window = window

    def validate(self, headers: Mapping[str, str], body: bytes) -> SignedHeaders:
        """Return the headers once ``body`` (the raw bytes received) is proven WeChat's.

        Check order: headers, signature type, probe, timestamp, window,
        serial, base64, length, signature. A 204 passes ``b""``.
        """
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError("body must be the raw bytes received, before any JSON parsing")
        signed = read_signed_headers(headers)
        ts, nonce, serial, signature = signed[:4]
        if signature.startswith(PROBE_PREFIX):
            raise VerificationError(
                "A WECHATPAY/SIGNTEST/ signature probe: refused, as WeChat expects", code="signtest_probe"
            )
        if not (len(ts) <= 12 and ts.isascii() and ts.isdigit()):
            raise VerificationError("Wechatpay-Timestamp is not Unix seconds", code="malformed_header")
        signed_at = int(ts)
        now = int(self._clock())
        if abs(now - signed_at) >= self.window:
            raise VerificationError(
                f"Wechatpay-Timestamp is {now - signed_at} s from our clock (limit {self.window - 1} s): "
                "a replay, or this machine's clock is wrong (check NTP)",
                code="stale_timestamp",
            )
        verifier = self.verifier
        if not verifier.knows(serial):
            raise _unknown(serial)
        raw_signature = decode_signature(signature)
        verifier.verify(serial, response_message(ts, nonce, body), raw_signature, signed_at=signed_at)
        return signed
