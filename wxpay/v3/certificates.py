"""``GET /v3/certificates``: WeChat's platform certificates, decrypted and checked.

The reply lists each certificate encrypted with the APIv3 key (AES-256-GCM,
associated data ``certificate``) and is itself signed by one of them. Only
WeChat and the merchant know the APIv3 key, so a certificate that decrypts
is WeChat's; the reply's signature is then checked with a verifier we
already trust, or, on the first download (which cannot be checked with a
key we do not have yet), with the certificates it carries.

Merchants onboarded with a WeChat Pay public key have no platform
certificates: WeChat answers 404 ``RESOURCE_NOT_EXISTS``, which becomes
:class:`~wxpay.errors.PlatformCertificatesUnavailableError`.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from ..errors import ConfigError, PlatformCertificatesUnavailableError, ProtocolError
from .aead import ApiV3Cipher
from .err_codes import error_from_reply
from .keys import Certificate, load_certificate
from .models import parse_json_object
from .verification import PlatformCertificateVerifier, Validator, Verifier

__all__ = ["CERTIFICATES_PATH", "parse_certificates", "read_certificates_reply"]

CERTIFICATES_PATH = "/v3/certificates"


def _entry(item: Any, n: int, cipher: ApiV3Cipher) -> Certificate:
    if not isinstance(item, Mapping):
        raise ProtocolError(f"Certificate {n} of the reply is not an object", code="bad_field")
    serial_no = item.get("serial_no")
    encrypted = item.get("encrypt_certificate")
    if not isinstance(serial_no, str) or not serial_no or not isinstance(encrypted, Mapping):
        raise ProtocolError(f"Certificate {n} lacks serial_no or encrypt_certificate", code="missing_field")
    pem = cipher.decrypt_resource(encrypted)
    try:
        cert = load_certificate(pem)
    except ConfigError:
        raise ProtocolError(f"Certificate {serial_no} decrypted to something that is not a PEM certificate",
                            code="bad_field") from None
    if cert.serial_no != serial_no.upper():
        raise ProtocolError(
            f"Certificate listed as {serial_no} is really {cert.serial_no}", code="certificate_mismatch")
    return cert


def parse_certificates(body: bytes, cipher: ApiV3Cipher) -> tuple[Certificate, ...]:
    """Decrypt every certificate of a ``/v3/certificates`` reply body (not its signature: see below)."""
    obj = parse_json_object(body, "The certificates reply")
    data = obj.get("data")
    if not isinstance(data, list) or not data:
        raise ProtocolError("The certificates reply lists no certificate", code="missing_field")
    return tuple(_entry(item, n, cipher) for n, item in enumerate(data))


def read_certificates_reply(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    cipher: ApiV3Cipher,
    *,
    verifier: Verifier | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[Certificate, ...]:
    """The platform certificates of one ``/v3/certificates`` reply, once it proves itself.

    Non-200 replies raise their typed error; a 404 ``RESOURCE_NOT_EXISTS``
    raises :class:`PlatformCertificatesUnavailableError`. A 200 is decrypted,
    then its signature is checked: with ``verifier`` (the keys already
    trusted) when given, so a refresh must be signed by a key we trust;
    without one (the first download) with the certificates it carries.
    Pick the newest with ``PlatformCertificateVerifier(certs).preferred_serial``;
    each certificate's ``not_after`` says when to download again.
    """
    if status != 200:
        error = error_from_reply(status, body, request_id=_request_id(headers))
        if status == 404 and (error.err_code or "").replace("_", "").upper() == "RESOURCENOTEXISTS":
            raise PlatformCertificatesUnavailableError(
                "This merchant has no platform certificates (it was onboarded with a WeChat Pay public key): "
                "configure the WeChat Pay public key and its PUB_KEY_ID_… instead of platform certificates"
                + (f" (WeChat: {error.err_code_des})" if error.err_code_des else ""),
                err_code=error.err_code, err_code_des=error.err_code_des, http_status=status,
                request_id=error.request_id,
            )
        raise error
    certificates = parse_certificates(body, cipher)
    trusted: Verifier = verifier if verifier is not None else PlatformCertificateVerifier(certificates)
    Validator(trusted, clock=clock).validate(headers, body)
    return certificates


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "request-id":
            return value
    return None
