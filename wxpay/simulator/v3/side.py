"""WeChat's V3 side of the simulator: keyrings, bill files, and signing what goes out.

Everything V3 that the simulator sends is signed here: replies (with the key
the request chose, :meth:`V3Side.reply_headers`), notifies (encrypted with the
merchant's APIv3 key, signed with the key mode's choice, :meth:`V3Side.notify`)
and the ``/v3/certificates`` payload. The V3 faults bend them here too:

===========================  ==============================================================
``signtest``                 a ``WECHATPAY/SIGNTEST/`` probe signature (reply); for a notify,
                             a probe copy sent *before* the real attempt, its answer recorded
``wrong_serial``             ``Wechatpay-Serial`` names WeChat's other key, not the signer
``clock_skew``               ``Wechatpay-Timestamp`` off by ``seconds`` (signed as sent)
``tampered_ciphertext``      one byte of an encrypted resource flipped, then signed
``bad_sign``                 the signature covers other bytes
===========================  ==============================================================
"""
from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from wxpay.timeutil import CHINA_TZ, rfc3339_time
from wxpay.v3.signing import wechatpay_headers

from ..config import SimConfig
from ..notifier import Delivery, Outgoing
from ..pay_state import Order, Refund
from . import rules
from .bills import BillFiles
from .keyring import Keyring, SigningKey
from .wire import dumps

PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
REPLY_KINDS = ("signtest", "wrong_serial", "clock_skew", "bad_sign")
NOTIFY_KINDS = ("signtest", "wrong_serial", "clock_skew", "bad_sign", "tampered_ciphertext")


def request_id() -> str:
    return secrets.token_hex(22).upper() + "-0"


def probe_signature() -> str:
    return PROBE_PREFIX + base64.b64encode(secrets.token_bytes(256)).decode("ascii")


def tamper(ciphertext: str) -> str:
    """Flip one bit of the encrypted bytes (the GCM tag check must then fail)."""
    raw = bytearray(base64.b64decode(ciphertext))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


@dataclass(frozen=True)
class Bent:
    """The V3 faults that apply to one reply or notify, as ``kind -> seconds``."""

    kinds: Mapping[str, float]

    def __contains__(self, kind: str) -> bool:
        return kind in self.kinds


NO_FAULTS = Bent({})


class V3Side:
    def __init__(self, config: SimConfig, clock: Any, faults: Any) -> None:
        self.config = config
        self.clock = clock
        self.faults = faults
        self.keyrings: dict[str, Keyring] = {m.mch_id: Keyring(m.mch_id, m.v3) for m in config.merchants if m.v3}
        self.bills = BillFiles()
        # Nonce sources, replaceable like the clock (the vector tests fix them): the
        # Wechatpay-Nonce header, and the 12-character AES-GCM nonce (None: fresh).
        self.make_nonce: Callable[[], str] = lambda: secrets.token_hex(16)
        self.make_aead_nonce: Callable[[], str] | None = None
        # The ``signtest`` fault's probe signature (random base64 after the prefix), replaceable too.
        self.make_probe_signature: Callable[[], str] = probe_signature

    def keyring(self, mch_id: str) -> Keyring | None:
        return self.keyrings.get(mch_id)

    # --- signing -----------------------------------------------------------------------

    def sign(self, keyring: Keyring, key: SigningKey, body: bytes, bent: Bent = NO_FAULTS,
             *, with_request_id: bool = True) -> dict[str, str]:
        """The ``Wechatpay-*`` headers for ``body``, bent by the faults in ``bent``."""
        timestamp = int(self.clock.now().timestamp()) + int(bent.kinds.get("clock_skew", 0))
        signed_body = body + b" " if "bad_sign" in bent else body
        headers = wechatpay_headers(key.private_key, key.serial, signed_body, timestamp=timestamp,
                                    nonce=self.make_nonce(), request_id=request_id() if with_request_id else None)
        if "signtest" in bent:
            headers["Wechatpay-Signature"] = self.make_probe_signature()
        if "wrong_serial" in bent:
            headers["Wechatpay-Serial"] = keyring.other_serial(key)
        return headers

    def take(self, endpoint: str, kinds: tuple[str, ...]) -> Bent:
        """Consume one shot of each matching V3 fault for one outgoing message."""
        found: dict[str, float] = {}
        for kind in kinds:
            fault = self.faults.take(endpoint, kind)
            if fault is not None:
                found[kind] = fault.seconds
        return Bent(found)

    # --- /v3/certificates ------------------------------------------------------------------

    def _aead_nonce(self) -> str | None:
        return self.make_aead_nonce() if self.make_aead_nonce is not None else None

    def certificates_body(self, keyring: Keyring, now: datetime, bent: Bent = NO_FAULTS) -> bytes:
        data = []
        for cert in keyring.certificates(now):
            resource = keyring.cipher.encrypt_resource(
                cert.pem.encode("ascii"), associated_data="certificate", nonce=self._aead_nonce())
            if "tampered_ciphertext" in bent:
                resource["ciphertext"] = tamper(resource["ciphertext"])
            # Keys in the order WeChat writes them here (unlike a notify's resource).
            encrypted = {k: resource[k] for k in ("algorithm", "nonce", "associated_data", "ciphertext")}
            data.append({"serial_no": cert.serial_no, "effective_time": rfc3339_time(cert.not_before),
                         "expire_time": rfc3339_time(cert.not_after), "encrypt_certificate": encrypted})
        return dumps({"data": data})

    # --- notifies ------------------------------------------------------------------------

    @staticmethod
    def event_id(delivery: Delivery) -> str:
        """Stable across a delivery's retries, as WeChat's (receivers dedupe by it)."""
        created = datetime.fromisoformat(delivery.created_at).astimezone(CHINA_TZ)
        return f"EV-{created:%Y%m%d%H%M%S}{delivery.id:014d}"

    def envelope(self, keyring: Keyring, event_id: str, create_time: str, event_type: str, summary: str,
                 original_type: str, plaintext: bytes, *, tampered: bool = False) -> bytes:
        resource = keyring.cipher.encrypt_resource(plaintext, associated_data=original_type,
                                                   original_type=original_type, nonce=self._aead_nonce())
        if tampered:
            resource["ciphertext"] = tamper(resource["ciphertext"])
        return dumps({"id": event_id, "create_time": create_time, "resource_type": "encrypt-resource",
                      "event_type": event_type, "summary": summary, "resource": resource})

    def notify(self, delivery: Delivery, record: Order | Refund) -> Outgoing:
        """One attempt of a V3 notify: fresh nonce and signature, same event id and facts."""
        keyring = self.keyrings.get(delivery.mch_id)
        if keyring is None:
            raise ValueError(f"merchant {delivery.mch_id} has no APIv3 credentials")
        endpoint = "notify" if delivery.kind == "pay" else "refund_notify"
        bent = self.take(endpoint, NOTIFY_KINDS)
        if isinstance(record, Order):
            plaintext = dumps(rules.transaction_json(record, as_paid=True))
            event_type, summary, original_type = "TRANSACTION.SUCCESS", "支付成功", "transaction"
        else:
            plaintext = dumps(rules.refund_notify_json(record))
            event_type, summary = rules.REFUND_EVENT[rules.refund_status(record)]
            original_type = "refund"
        create_time = rfc3339_time(datetime.fromisoformat(delivery.created_at))
        body = self.envelope(keyring, self.event_id(delivery), create_time, event_type, summary, original_type,
                             plaintext, tampered="tampered_ciphertext" in bent)
        key = keyring.notify_key(self.clock.now())
        headers = {"Content-Type": "application/json", **self.sign(keyring, key, body, bent)}
        probe = None
        if "signtest" in bent:
            # The probe goes out as extra traffic; the real notify follows, properly signed.
            probe = Outgoing(body, headers, headers["Wechatpay-Serial"])
            headers = {"Content-Type": "application/json",
                       **self.sign(keyring, key, body, Bent({k: v for k, v in bent.kinds.items() if k != "signtest"}))}
        return Outgoing(body, headers, headers["Wechatpay-Serial"], probe)
