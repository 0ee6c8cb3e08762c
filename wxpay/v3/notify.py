"""APIv3 notifies: verify the raw body, then decrypt, then type.

WeChat posts a signed JSON envelope whose ``resource`` is AES-256-GCM
encrypted with the APIv3 key. :class:`NotifyReader` checks in this order
and stops at the first failure, so nothing unverified is ever decrypted
or parsed beyond the size check:

1. size (``MessageTooLargeError``);
2. signature over the raw bytes (``VerificationError``: probes, replays,
   unknown serials, any change);
3. the envelope's JSON and its ``event_type`` (``ProtocolError``:
   ``malformed_json``, ``unknown_event_type``, ``event_mismatch``);
4. decryption (``DecryptError``);
5. the resource's fields (``ProtocolError``: ``missing_field``, ``bad_field``)
   and our mchid (``IdentityMismatchError``).

WeChat reads only the status code of the reply (:func:`notify_reply`):
2xx is delivered, anything else is retried.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Union

from ..errors import IdentityMismatchError, MessageTooLargeError, ProtocolError, WxPayError
from ..timeutil import parse_rfc3339
from .aead import ApiV3Cipher
from .models import Refund, Transaction, frozen, parse_json_object, parse_refund, parse_transaction
from .verification import Validator

__all__ = [
    "MAX_NOTIFY_BYTES",
    "NotifyEvent",
    "NotifyReader",
    "PaymentEvent",
    "RefundEvent",
    "notify_reply",
]

log = logging.getLogger(__name__)

# Real notifies are 1-2 KiB; a long promotion_detail in base64 adds a few more.
MAX_NOTIFY_BYTES = 64 * 1024

PAYMENT_EVENTS = frozenset({"TRANSACTION.SUCCESS"})
REFUND_EVENTS = frozenset({"REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"})


@dataclass(frozen=True)
class PaymentEvent:
    """A verified, decrypted ``TRANSACTION.SUCCESS``: compare ``transaction.amount.total`` with the order."""

    id: str
    event_type: str
    create_time: datetime
    summary: str | None
    transaction: Transaction
    serial: str  # the key WeChat signed with (public key ID or platform serial)
    plaintext: bytes = field(default=b"", repr=False, compare=False)  # the decrypted resource, as WeChat sent it


@dataclass(frozen=True)
class RefundEvent:
    """A verified, decrypted ``REFUND.SUCCESS`` / ``REFUND.ABNORMAL`` / ``REFUND.CLOSED``."""

    id: str
    event_type: str
    create_time: datetime
    summary: str | None
    refund: Refund
    serial: str
    plaintext: bytes = field(default=b"", repr=False, compare=False)  # the decrypted resource, as WeChat sent it


NotifyEvent = Union[PaymentEvent, RefundEvent]


class NotifyReader:
    """Reads V3 notifies for one merchant: validator (WeChat's keys), cipher (APIv3 key), mchid."""

    def __init__(
        self,
        validator: Validator,
        cipher: ApiV3Cipher,
        mchid: str,
        *,
        max_bytes: int = MAX_NOTIFY_BYTES,
    ) -> None:
        self.validator = validator
        self.cipher = cipher
        self.mchid = mchid
        self.max_bytes = max_bytes

    def read(self, headers: Mapping[str, str], body: bytes) -> NotifyEvent:
        """The typed event of one notify, or a :class:`~wxpay.errors.WxPayError` naming the first failure."""
        try:
            event = self._read(headers, body)
        except WxPayError as exc:
            log.info("v3 notify rejected: %s: %s", exc.code, exc.message)
            raise
        log.debug("v3 notify verified: %s %s", event.event_type, event.id)
        return event

    def _read(self, headers: Mapping[str, str], body: bytes) -> NotifyEvent:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError("body must be the raw bytes received")
        if len(body) > self.max_bytes:
            raise MessageTooLargeError(f"Notify body is {len(body)} bytes; the limit is {self.max_bytes}")
        signed = self.validator.validate(headers, body)
        what = "Notify"
        envelope = parse_json_object(bytes(body), what)
        event_id = _envelope_str(envelope, "id")
        event_type = _envelope_str(envelope, "event_type")
        create_time = _envelope_time(envelope)
        summary = envelope.get("summary") if isinstance(envelope.get("summary"), str) else None
        if event_type in PAYMENT_EVENTS:
            expected_type = "transaction"
        elif event_type in REFUND_EVENTS:
            expected_type = "refund"
        else:
            raise ProtocolError(
                f"Notify event_type {event_type[:60]!r} is not one this server handles "
                "(TRANSACTION.SUCCESS, REFUND.SUCCESS/ABNORMAL/CLOSED)",
                code="unknown_event_type",
            )
        resource = envelope.get("resource")
        if type(resource) is not dict and not isinstance(resource, Mapping):
            raise ProtocolError("Notify lacks its resource object", code="missing_field")
        original_type = resource.get("original_type")
        if original_type is not None and original_type != expected_type:
            raise ProtocolError(
                f"Notify {event_type} carries a {str(original_type)[:30]!r} resource, not a {expected_type}",
                code="event_mismatch",
            )
        plain = self.cipher.decrypt_resource(resource)
        obj = parse_json_object(plain, f"{event_type} resource")
        if expected_type == "transaction":
            transaction = parse_transaction(obj, what=f"{event_type} resource")
            if transaction.trade_state != "SUCCESS":
                raise ProtocolError(
                    f"{event_type} carries trade_state {transaction.trade_state!r}", code="event_mismatch")
            self._check_mchid(transaction.mchid, event_type)
            return frozen(PaymentEvent, {"id": event_id, "event_type": event_type, "create_time": create_time,
                                         "summary": summary, "transaction": transaction, "serial": signed.serial,
                                         "plaintext": plain})
        refund = parse_refund(obj, what=f"{event_type} resource")
        if f"REFUND.{refund.refund_status}" != event_type:
            raise ProtocolError(f"{event_type} carries refund_status {refund.refund_status!r}", code="event_mismatch")
        if refund.refund_status == "SUCCESS" and refund.success_time is None:
            raise ProtocolError(f"{event_type} resource lacks the required field success_time", code="missing_field")
        self._check_mchid(refund.mchid, event_type)
        return frozen(RefundEvent, {"id": event_id, "event_type": event_type, "create_time": create_time,
                                    "summary": summary, "refund": refund, "serial": signed.serial,
                                    "plaintext": plain})

    def _check_mchid(self, mchid: str | None, event_type: str) -> None:
        if mchid is None:
            raise ProtocolError(f"{event_type} resource lacks the required field mchid", code="missing_field")
        if mchid != self.mchid:
            raise IdentityMismatchError(
                f"{event_type} names mchid {str(mchid)[:20]!r}, not ours: it is not for this merchant")


def _envelope_str(envelope: Mapping[str, Any], name: str) -> str:
    value = envelope.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"Notify lacks the required field {name}", code="missing_field")
    return value


def _envelope_time(envelope: Mapping[str, Any]) -> datetime:
    text = _envelope_str(envelope, "create_time")
    try:
        return parse_rfc3339(text)
    except ProtocolError:
        raise ProtocolError("Notify field create_time must be an RFC 3339 time", code="bad_field") from None


def notify_reply(ok: bool, message: str | None = None) -> tuple[int, bytes]:
    """(status, body) to answer WeChat with; only the status counts.

    Success is 204 with no body. Failure is 500 with
    ``{"code":"FAIL","message":…}`` so WeChat retries later.
    """
    if ok:
        return 204, b""
    body = {"code": "FAIL", "message": message or "FAIL"}
    return 500, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
