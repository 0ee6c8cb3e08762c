"""The gateway on APIv3: JSON over REST, RSA both ways, AES-256-GCM notifies.

Everything on the wire is done by :mod:`wxpay.v3` (the client, the notify
reader, the RSA payloads, the certificate keeper); this class translates
between it and the version-neutral contract of :mod:`wxpay.gateway`. It is
built from :class:`~wxpay.v3_settings.V3Settings` and keeps the keys inside
the objects that use them (the signer, the cipher, the verifiers): no
attribute hands one out.

Choices the contract leaves to each version, made here:

- **Sign type.** Orders placed here are ``RSA``: their page, Mini Program
  and App payloads are signed with the merchant's private key. An order
  placed under APIv2 (``MD5``/``HMAC-SHA256``) cannot be signed here: its
  prepay_id needs the APIv2 key, and WeChat takes only RSA for APIv3 orders
  and only MD5/HMAC for APIv2 ones. After a move to APIv3 a server should
  not reuse such a prepay_id (``signs()`` says so): it queries the order
  (the shopper may have paid: confirm it), and otherwise places a new order
  under a new out_trade_no (the old one gets ``OUT_TRADE_NO_USED`` under
  APIv3) and closes the old one or lets it expire. Queries, close, refunds
  and refund queries work on APIv2 orders unchanged (one order book).
- **A notify's sign type.** An APIv3 notify proves itself by WeChat's RSA
  signature (the key its ``Wechatpay-Serial`` names), whatever the order's
  own sign type, so :meth:`judge_payment_notify` checks the order's appid
  and mch_id and does not consult ``OrderIdentity.sign_type``; ``signed_with``
  is ``RSA``. (WeChat notifies an order in the form of the API it was
  placed with: an APIv2 order paid after the switch sends APIv2 XML, which
  this gateway refuses unproven, ``missing_header``. A server that wants
  those notifies holds its APIv2 gateway beside this one,
  :class:`wxpay.gateways.Gateways`, which hands each notify to the gateway
  of its shape.)
- **Unknown serials in notifies** are refused unproven, never looked up by
  a certificate download: a forged notify costs nothing but CPU. Rotations
  are learnt by the periodic refresh (:meth:`trust_refresh_due`), well
  inside WeChat's 24 hours of retries; replies to our own calls may still
  trigger one bounded download (the client's rule).
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime, timezone
from typing import Any, Callable, Mapping

from .errors import (
    ConfigError,
    IdentityMismatchError,
    InvalidArgumentError,
    MessageTooLargeError,
    OrderClosedError,
    OrderNotExistError,
    OrderPaidError,
    OutTradeNoUsedError,
    ProtocolError,
    ResourceNotExistError,
    VerificationError,
    WxPayError,
)
from .gateway import (
    DayBill,
    JsapiPayloads,
    NotifyVerdict,
    OrderIdentity,
    OrderRequest,
    Outcome,
    PayGateway,
    PaymentFacts,
    PaymentNotice,
    PlacedOrder,
    ProvenPayment,
    RefundAccepted,
    RefundFacts,
    RefundNotice,
    RefundRequest,
    Refusal,
    WireReply,
    refusal_for,
)
from .payloads import AppPayload, MiniProgramPayload
from .retry import RetryPolicy, Sleep
from .transport import DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, Observer
from .v2_gateway import bill_lines
from .v3 import payloads as v3payloads
from .v3.aead import ApiV3Cipher
from .v3.client import WxPayV3Client
from .v3.endpoints import V3Endpoints
from .v3.keeper import PlatformCertificateKeeper
from .v3.keys import load_certificate
from .v3.models import Refund, Transaction
from .v3.notify import MAX_NOTIFY_BYTES, NotifyEvent, NotifyReader, PaymentEvent, RefundEvent
from .v3.signing import MerchantSigner
from .v3.verification import PublicKeyVerifier
from .v3_settings import V3Settings, load_v3_key_material

__all__ = ["SIGN_TYPE", "V3Gateway", "wire_reply"]

SIGN_TYPE = v3payloads.SIGN_TYPE  # "RSA"

# The contract's trade types -> APIv3's order paths (the Mini Program pays through jsapi).
_KINDS = {"JSAPI": "jsapi", "NATIVE": "native", "MWEB": "h5", "APP": "app"}
H5_APP_NAME_MAX = 32  # characters of the H5 site's name sent as h5_info.app_name

_MIGRATION_HINT = (
    "APIv3 signs only its own orders (signType RSA); an order placed under APIv2 (MD5 or HMAC-SHA256) "
    "needs the APIv2 key. Do not reuse its prepay_id: query the order (it may be paid), otherwise place a "
    "new order under a new out_trade_no and close the old one"
)


class V3Gateway(PayGateway):
    """:class:`~wxpay.gateway.PayGateway` over a :class:`~wxpay.v3.client.WxPayV3Client`.

    ``settings`` says who the merchant is and how WeChat is verified
    (``ConfigError`` listing every fatal problem otherwise, see
    :func:`~wxpay.v3_settings.check_v3_settings`). The rest are the seams:
    ``transport`` (default Tornado's), ``observer`` (a ``CallRecord`` per
    attempt), ``clock`` (Unix seconds: signatures, the 300 s window and the
    certificate schedule all read it), ``sleep`` and ``retry`` (the retry
    policy of calls safe to repeat).
    """

    api_version = "v3"

    def __init__(
        self,
        settings: V3Settings,
        *,
        transport: Any = None,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        retry: RetryPolicy | None = None,
        max_notify_bytes: int = MAX_NOTIFY_BYTES,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        if not isinstance(settings, V3Settings):
            raise ConfigError("V3Gateway needs a wxpay.v3_settings.V3Settings")
        material = load_v3_key_material(settings, now=clock())
        super().__init__(mch_id=settings.mchid, sign_type=SIGN_TYPE, max_notify_bytes=max_notify_bytes)
        self.appids = frozenset(settings.appids)
        self.key_mode = settings.key_mode
        self.public_key_id = settings.public_key_id
        signer = MerchantSigner(settings.mchid, settings.merchant_serial_no.upper(), material.private_key,
                                clock=clock)
        cipher = ApiV3Cipher(settings.apiv3_key)
        public_key = None
        if material.public_key is not None and settings.public_key_id is not None:
            public_key = PublicKeyVerifier(settings.public_key_id, material.public_key)
        keeper = None
        if settings.platform_certificates:
            keeper = PlatformCertificateKeeper(material.platform_certificates, clock=clock)
        self._signer = signer
        self._keeper = keeper
        self._merchant_cert_expiry = (load_certificate(settings.merchant_certificate_pem).not_after
                                      if settings.merchant_certificate_pem is not None else None)
        self._client = WxPayV3Client(
            signer, cipher, public_key=public_key, certificates=keeper, transport=transport,
            endpoints=V3Endpoints(settings.pay_base), retry=retry, observer=observer, sleep=sleep, clock=clock,
            connect_timeout=connect_timeout, request_timeout=request_timeout,
        )
        self._reader = NotifyReader(self._client.validator, cipher, settings.mchid, max_bytes=max_notify_bytes)

    def __repr__(self) -> str:
        return (f"V3Gateway(mch_id={self.mch_id!r}, key_mode={self.key_mode!r}, "
                f"appids={sorted(self.appids)!r})")

    # -- orders ------------------------------------------------------------------------------

    async def _place_order(self, request: OrderRequest) -> PlacedOrder:
        kind = _KINDS[request.trade_type]
        fields: dict[str, Any] = dict(
            appid=request.appid, description=request.description, out_trade_no=request.out_trade_no,
            notify_url=request.notify_url, total=request.amount_fen, time_expire=request.expires_at,
            attach=request.attach,
        )
        client = self._client
        try:
            if kind == "jsapi":
                prepay = await client.create_jsapi_order(
                    openid=request.openid, scene_info={"payer_client_ip": request.client_ip}, **fields)
            elif kind == "app":
                prepay = await client.create_app_order(scene_info={"payer_client_ip": request.client_ip}, **fields)
            elif kind == "native":
                prepay = await client.create_native_order(
                    scene_info={"payer_client_ip": request.client_ip}, **fields)
            else:
                site = request.h5_site
                assert site is not None  # checked by place_order
                prepay = await client.create_h5_order(
                    payer_client_ip=request.client_ip, h5_type="Wap",
                    scene_info={"h5_info": {"app_name": site.name[:H5_APP_NAME_MAX], "app_url": site.url}},
                    **fields)
        except (OutTradeNoUsedError, OrderClosedError) as exc:
            await self._raise_if_paid(request.out_trade_no, exc)
            raise
        return PlacedOrder(
            out_trade_no=request.out_trade_no,
            trade_type=request.trade_type,
            sign_type=SIGN_TYPE,
            prepay_id=getattr(prepay, "prepay_id", None),
            code_url=getattr(prepay, "code_url", None),
            h5_url=getattr(prepay, "h5_url", None),
        )

    async def _raise_if_paid(self, out_trade_no: str, refused: WxPayError) -> None:
        """APIv3 has no sure code for "already paid" (APIv2's ORDERPAID): WeChat may
        refuse a paid out_trade_no as used or closed, so its own record decides.
        One query, not a retry of the order; if it fails, the refusal stands."""
        try:
            facts = await self.query_order(out_trade_no)
        except WxPayError:
            return
        if facts.paid:
            raise OrderPaidError(
                f"WeChat refused the order ({refused.err_code or refused.code}) and its record of "
                f"{out_trade_no} says {facts.state}: the order is paid already; treat it as paid",
                err_code=refused.err_code, err_code_des=refused.err_code_des, http_status=refused.http_status,
                request_id=refused.request_id,
            ) from refused

    def signs(self, sign_type: str) -> bool:
        return sign_type == SIGN_TYPE

    def _check_sign_type(self, sign_type: str) -> None:
        if not self.signs(sign_type):
            raise InvalidArgumentError(f"An APIv3 gateway cannot sign for an order of sign type {sign_type!r}. "
                                       + _MIGRATION_HINT)

    def jsapi_payloads(self, *, appid: str, prepay_id: str, sign_type: str) -> JsapiPayloads:
        """Signed with the merchant's private key, ``signType`` RSA; an APIv2 order's
        sign type is refused (see the module's note on migration)."""
        self._check_sign_type(sign_type)
        bridge, choose = v3payloads.jsapi_payloads(self._signer, appid, prepay_id)
        return JsapiPayloads(bridge, choose)

    def mini_program_payload(self, *, appid: str, prepay_id: str, sign_type: str) -> MiniProgramPayload:
        self._check_sign_type(sign_type)
        return v3payloads.mini_program_payload(self._signer, appid, prepay_id)

    def app_payload(self, *, appid: str, prepay_id: str, sign_type: str) -> AppPayload:
        self._check_sign_type(sign_type)
        return v3payloads.app_payload(self._signer, appid, prepay_id)

    async def query_order(self, out_trade_no: str) -> PaymentFacts:
        try:
            tx = await self._client.query_by_out_trade_no(out_trade_no)
        except ResourceNotExistError as exc:
            raise _retyped(OrderNotExistError, exc, f"WeChat has no order {out_trade_no}") from exc
        return _facts(tx)

    async def close_order(self, out_trade_no: str, *, appid: str | None = None) -> None:
        """``appid`` is not needed (APIv3 closes by mchid and out_trade_no); APIv3
        has no five-minute rule, a caller's own rule may still apply."""
        try:
            await self._client.close_order(out_trade_no)
        except ResourceNotExistError as exc:
            raise _retyped(OrderNotExistError, exc, f"WeChat has no order {out_trade_no} to close") from exc

    # -- refunds ------------------------------------------------------------------------------

    async def _refund(self, request: RefundRequest) -> RefundAccepted:
        refund = await self._client.refund(
            out_refund_no=request.out_refund_no, refund=request.refund_fen, total=request.total_fen,
            out_trade_no=request.out_trade_no, reason=request.reason, notify_url=request.notify_url,
            retry=True,  # safe: WeChat refunds one out_refund_no once
        )
        return RefundAccepted(out_refund_no=refund.out_refund_no, refund_id=refund.refund_id,
                              refund_fen=refund.amount.refund, status=refund.refund_status)

    async def query_refund(self, out_refund_no: str, *, appid: str | None = None) -> RefundFacts:
        return _refund_facts(await self._client.query_refund(out_refund_no))

    # -- the day's bill -----------------------------------------------------------------------

    async def day_bill(self, day: date) -> DayBill:
        """Both steps: step 1 signed, the file checked against its SHA1, then typed."""
        return DayBill(day, bill_lines(await self._client.trade_bill(day, "ALL")))

    # -- notifies -------------------------------------------------------------------------------

    def _read_event(self, headers: Mapping[str, str], body: bytes) -> NotifyEvent | Refusal:
        """Verify (headers, serial, window, probes, raw body), then decrypt and type.

        A failure of the proof is unproven; anything refused after it (the
        envelope, decryption under our APIv3 key, the fields, our mchid) is
        about a message WeChat provably sent.
        """
        try:
            return self._reader.read(headers, body)
        except (VerificationError, MessageTooLargeError) as exc:
            return refusal_for(exc)
        except WxPayError as exc:
            return refusal_for(exc, proven=True)

    async def _read_payment_notify(self, headers: Mapping[str, str], body: bytes) -> ProvenPayment | Refusal:
        event = self._read_event(headers, body)
        if isinstance(event, Refusal):
            return event
        if not isinstance(event, PaymentEvent):
            return Refusal(NotifyVerdict("event_mismatch", Outcome.INVALID, "not a payment notify"), proven=True)
        return ProvenPayment(event.transaction.out_trade_no, SIGN_TYPE, evidence=event, record=_audit_record(event))

    def _judge_payment_notify(self, proven: ProvenPayment, order: OrderIdentity) -> PaymentNotice | Refusal:
        event = proven.evidence
        if not isinstance(event, PaymentEvent):
            raise ProtocolError("This proven notify was not read by an APIv3 gateway", code="wrong_gateway")
        tx = event.transaction
        if tx.mchid != order.mch_id or tx.appid != order.appid:
            raise IdentityMismatchError(
                f"The notify for {tx.out_trade_no} names appid {tx.appid!r} and mchid {tx.mchid!r}, "
                "not the order's")
        assert tx.amount is not None and tx.transaction_id is not None  # a paid transaction has them
        return PaymentNotice(
            out_trade_no=tx.out_trade_no,
            transaction_id=tx.transaction_id,
            amount_fen=tx.amount.total,
            mch_id=tx.mchid,
            appid=tx.appid,
            paid_at=tx.success_time,
            payer_openid=tx.openid,
            event_id=event.id,
        )

    async def _read_refund_notify(self, headers: Mapping[str, str], body: bytes) -> RefundNotice | Refusal:
        event = self._read_event(headers, body)
        if isinstance(event, Refusal):
            return event
        if not isinstance(event, RefundEvent):
            return Refusal(NotifyVerdict("event_mismatch", Outcome.INVALID, "not a refund notify"), proven=True)
        refund = event.refund
        assert refund.mchid is not None  # the reader refuses a resource that does not name our mchid
        return RefundNotice(
            out_refund_no=refund.out_refund_no,
            out_trade_no=refund.out_trade_no,
            refund_id=refund.refund_id,
            refund_fen=refund.amount.refund,
            status=refund.refund_status,
            mch_id=refund.mchid,
            succeeded_at=refund.success_time,
            event_id=event.id,
            record=_audit_record(event),
        )

    def _wire_reply(self, verdict: NotifyVerdict, status: int) -> WireReply:
        return wire_reply(verdict, status)

    # -- what an operator may see -------------------------------------------------------------------

    def describe(self) -> Mapping[str, Any]:
        """The key mode, the IDs and serials in use, and when each certificate ends (no key)."""
        out: dict[str, Any] = {
            "api_version": self.api_version, "mch_id": self.mch_id, "sign_type": self.sign_type,
            "key_mode": self.key_mode, "merchant_serial_no": self._signer.serial_no,
            "merchant_certificate_expires_at": self._merchant_cert_expiry,
            "public_key_id": self.public_key_id,
        }
        keeper = self._keeper
        if keeper is not None:
            out["platform_certificates"] = [
                {"serial_no": c.serial_no, "not_before": c.not_before, "not_after": c.not_after}
                for c in sorted(keeper.certificates, key=lambda c: c.not_after)
            ]
            out["platform_certificates_fetched_at"] = (
                datetime.fromtimestamp(keeper.fetched_at, timezone.utc) if keeper.fetched_at is not None else None)
        return out

    # -- trust that WeChat rotates --------------------------------------------------------------
    #
    # Platform-certificate mode (alone, or with the public key during the gray
    # switch) keeps the downloaded certificates in the keeper; a public-key
    # merchant has nothing to keep, so these do nothing for it.

    def keeps_trust(self) -> bool:
        """Platform-certificate mode (alone or in the gray switch), from before the first download."""
        return self._keeper is not None

    def trust_state(self) -> Mapping[str, Any] | None:
        """The keeper's state (public certificates and two times), once it trusts a certificate."""
        keeper = self._keeper
        if keeper is None or not keeper.certificates:
            return None
        return keeper.to_dict()

    def load_trust_state(self, state: Mapping[str, Any]) -> None:
        """Certificates another process downloaded join ours (``ConfigError`` for a state that is not the keeper's)."""
        if self._keeper is not None:
            self._keeper.load_dict(state)

    def trust_refresh_due(self) -> bool:
        """The keeper's schedule: no certificate yet, the newest within 7 days of its end,
        12 h since the last download; never sooner than a minute after the last attempt."""
        return self._keeper is not None and self._keeper.due()

    async def refresh_trust(self) -> Mapping[str, Any] | None:
        """Download ``/v3/certificates`` now, verified with what is trusted (the first time
        with what it carries); a public-key merchant's WeChat answers 404, raised as
        ``PlatformCertificatesUnavailableError``. Previous certificates stay trusted on failure."""
        if self._keeper is None:
            return None
        await self._client.refresh_certificates()
        return self._keeper.to_dict()


# --- translation ------------------------------------------------------------------------------


def _facts(tx: Transaction) -> PaymentFacts:
    amount = tx.amount
    return PaymentFacts(
        out_trade_no=tx.out_trade_no,
        state=tx.trade_state,
        amount_fen=amount.total if amount is not None else None,
        transaction_id=tx.transaction_id,
        paid_at=tx.success_time,
        payer_openid=tx.openid,
        payer_fen=amount.payer_total if amount is not None else None,
        bank_type=tx.bank_type,
        trade_type=tx.trade_type,
        state_desc=tx.trade_state_desc,
    )


def _refund_facts(refund: Refund) -> RefundFacts:
    return RefundFacts(
        out_refund_no=refund.out_refund_no,
        status=refund.refund_status,
        refund_fen=refund.amount.refund,
        refund_id=refund.refund_id,
        out_trade_no=refund.out_trade_no,
        succeeded_at=refund.success_time,
    )


def wire_reply(verdict: NotifyVerdict, status: int) -> WireReply:
    """APIv3's answer to a notify: WeChat reads the status only, 204 for done,
    else the outcome's status (a retry) with ``{"code": "FAIL", "message": …}``."""
    if verdict.ok:
        return WireReply(204, None, b"")
    body = {"code": "FAIL", "message": verdict.message or "FAIL"}
    return WireReply(status, "application/json; charset=utf-8",
                     json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _audit_record(event: NotifyEvent) -> str:
    """What the audit trail keeps of a verified APIv3 notify: the envelope's
    fields and the decrypted resource (the raw body is ciphertext, useless
    without the APIv3 key, which is never kept)."""
    try:
        resource: Any = json.loads(event.plaintext)
    except ValueError:  # typed already, so it parsed: this is only a guard
        resource = event.plaintext.decode("utf-8", "replace")
    return json.dumps(
        {"id": event.id, "event_type": event.event_type, "create_time": event.create_time.isoformat(),
         "summary": event.summary, "wechatpay_serial": event.serial, "resource": resource},
        ensure_ascii=False, separators=(",", ":"))


def _retyped(cls: type[WxPayError], error: WxPayError, text: str) -> WxPayError:
    wechat = f" (WeChat {error.http_status} {error.err_code}: {error.err_code_des})" if error.err_code else ""
    return cls(text + wechat, err_code=error.err_code, err_code_des=error.err_code_des,
               http_status=error.http_status, detail=error.detail, request_id=error.request_id)
