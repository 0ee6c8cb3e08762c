"""The version-neutral gateway: everything the server asks of WeChat Pay, as one contract.

APIv2 (XML, a shared API key, MD5 or HMAC-SHA256, a client certificate for
refunds) and APIv3 (JSON over REST, RSA both ways, AES-256-GCM notifies) do
the same things in different words. A server talks to :class:`PayGateway`
only, and ``wxpay`` provides one subclass per version
(:class:`wxpay.v2_gateway.V2Gateway`; the APIv3 one implements the same
methods). What crosses the contract is typed and version-neutral:

- amounts are integer fen, times aware UTC;
- WeChat's states in one vocabulary (``SUCCESS``, ``NOTPAY`` … for payments,
  APIv3's ``SUCCESS``/``CLOSED``/``PROCESSING``/``ABNORMAL`` for refunds);
- errors are :mod:`wxpay.errors` classes, the same class for the same cause
  in both versions (``OrderNotExistError``, ``OrderPaidError``,
  ``RefundNotExistError``, ``NoBillError`` …);
- keys, signatures and wire formats never leave the gateway: the payloads a
  page or an app needs come back signed, a notify comes back as a typed
  event or a typed refusal, and the reply to WeChat as bytes to send.

The shape is gidgethub's: this abstract class holds what both versions
share (argument checks, the notify shell that never raises, the verdict
code of each refusal, the status of each outcome, the H5 return URL) and
leaves the wire to abstract methods, each documented with what an
implementation must honour.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, ClassVar, Mapping

from .errors import (
    DecryptError,
    IdentityMismatchError,
    InvalidArgumentError,
    MessageTooLargeError,
    ProtocolError,
    SignatureError,
    WxPayError,
)
from .payloads import AppPayload, BridgePayload, ChooseWXPayPayload, MiniProgramPayload, mweb_redirect

__all__ = [
    "TRADE_TYPES", "PAID_STATES", "REFUND_STATUSES",
    "OrderRequest", "H5Site", "PlacedOrder", "JsapiPayloads", "PaymentFacts",
    "RefundRequest", "RefundAccepted", "RefundFacts", "BillLine", "DayBill",
    "Outcome", "NotifyVerdict", "Refusal", "WireReply", "OrderIdentity",
    "ProvenPayment", "PaymentNotice", "RefundNotice",
    "PayGateway", "refusal_for", "check_order_request", "check_refund_request", "notify_version",
]

log = logging.getLogger("wxpay.gateway")

# How the shopper pays: an Official Account page or a Mini Program (JSAPI), a
# QR code (NATIVE), a mobile browser (MWEB, APIv3's "h5"), an app (APP).
TRADE_TYPES = ("JSAPI", "NATIVE", "MWEB", "APP")

# WeChat's trade states (the same words in both versions). REFUND is a paid
# order that has had a refund since: the money moved.
PAID_STATES = frozenset({"SUCCESS", "REFUND"})

# Refund states in APIv3's words; APIv2's REFUNDCLOSE is CLOSED, CHANGE is ABNORMAL.
REFUND_STATUSES = ("SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL")


# --- orders ---------------------------------------------------------------------------


@dataclass(frozen=True)
class H5Site:
    """The merchant site an H5 (MWEB) payment starts from, as WeChat wants it named."""

    url: str
    name: str


@dataclass(frozen=True)
class OrderRequest:
    """One order to place. ``appid`` is the app the shopper pays in (the
    Official Account, a Mini Program, the mobile app); ``openid`` is the
    shopper's under that appid (JSAPI only)."""

    out_trade_no: str
    trade_type: str
    appid: str
    amount_fen: int
    description: str
    notify_url: str
    client_ip: str
    expires_at: datetime
    openid: str | None = None
    product_id: str | None = None  # NATIVE: what the QR code stands for
    attach: str | None = None
    h5_site: H5Site | None = None  # MWEB


@dataclass(frozen=True)
class PlacedOrder:
    """WeChat's answer to an order: what the shopper's client is handed later.

    ``sign_type`` is what the order's client payloads are signed with (and,
    in APIv2, its notifies): ``MD5``/``HMAC-SHA256`` or ``RSA``. A server
    stores it with the order and passes it back to the payload methods."""

    out_trade_no: str
    trade_type: str
    sign_type: str
    prepay_id: str | None = None  # JSAPI, APP (APIv2 gives one for every trade type)
    code_url: str | None = None   # NATIVE: the QR code's text
    h5_url: str | None = None     # MWEB: where the mobile browser goes


@dataclass(frozen=True)
class JsapiPayloads:
    """The two ways a page opens the cashier for one prepay_id, sharing one paySign."""

    bridge: BridgePayload               # WeixinJSBridge.invoke('getBrandWCPayRequest', …)
    choose_wx_pay: ChooseWXPayPayload   # wx.chooseWXPay (JSSDK)


@dataclass(frozen=True)
class PaymentFacts:
    """What WeChat's own records say about one order (orderquery / query by out_trade_no)."""

    out_trade_no: str
    state: str  # SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR
    amount_fen: int | None = None       # the order's amount
    transaction_id: str | None = None
    paid_at: datetime | None = None     # APIv2 time_end, APIv3 success_time
    payer_openid: str | None = None
    payer_fen: int | None = None        # what the shopper paid after coupons (V2 cash_fee, V3 payer_total)
    bank_type: str | None = None
    trade_type: str | None = None
    state_desc: str | None = None

    @property
    def paid(self) -> bool:
        return self.state in PAID_STATES


# --- refunds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundRequest:
    """Give back ``refund_fen`` of a payment of ``total_fen``. The same
    ``out_refund_no`` is refunded once however often it is asked."""

    out_refund_no: str
    out_trade_no: str
    appid: str  # the app the order was paid in (APIv2 signs under it)
    total_fen: int
    refund_fen: int
    notify_url: str | None = None  # None: the one set in the merchant platform (or no notify)
    reason: str | None = None  # shown to the shopper


@dataclass(frozen=True)
class RefundAccepted:
    """WeChat took the refund; how it ends comes by notify or :meth:`PayGateway.query_refund`."""

    out_refund_no: str
    refund_id: str
    refund_fen: int
    status: str | None = None  # APIv3 says at once (PROCESSING, SUCCESS …); APIv2 does not


@dataclass(frozen=True)
class RefundFacts:
    out_refund_no: str
    status: str  # one of REFUND_STATUSES, or WeChat's own word when it is none of them
    refund_fen: int
    refund_id: str | None = None
    out_trade_no: str | None = None
    succeeded_at: datetime | None = None


# --- the day's bill ---------------------------------------------------------------------


@dataclass(frozen=True)
class BillLine:
    """One line of the day's trade bill: a payment, or a refund of one."""

    out_trade_no: str | None
    transaction_id: str | None
    trade_state: str | None        # SUCCESS, REFUND, REVOKED … as the bill shows it
    amount_fen: int | None         # the order amount (the settlement amount when the bill has only that)
    out_refund_no: str | None = None
    refund_id: str | None = None
    refund_fen: int | None = None
    refund_status: str | None = None  # REFUND_STATUSES

    @property
    def is_payment(self) -> bool:
        return self.trade_state == "SUCCESS" and bool(self.out_trade_no)

    @property
    def is_refund(self) -> bool:
        return bool(self.out_refund_no) and (self.trade_state == "REFUND" or bool(self.refund_id))


@dataclass(frozen=True)
class DayBill:
    """The trade bill of one China calendar day."""

    day: date
    lines: tuple[BillLine, ...]


# --- notifies ---------------------------------------------------------------------------


class Outcome(Enum):
    """How a notify ended, in terms both versions answer: accepted, or why not."""

    ACCEPTED = "accepted"          # done (or nothing to do): WeChat may stop
    INVALID = "invalid"            # refused: malformed, forged, not ours, not what the order says
    UNKNOWN = "unknown"            # names an order or refund we do not have
    CONFLICT = "conflict"          # disagrees with WeChat's own records or our state
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"  # unproven notifies over their budget
    UNAVAILABLE = "unavailable"    # we could not finish (store, WeChat's query): retry
    FAILED = "failed"              # our own error: retry


# The status each outcome is answered with. APIv2's WeChat reads the XML's
# return_code, APIv3's the status alone (any non-2xx is a retry).
STATUS: Mapping[Outcome, int] = {
    Outcome.ACCEPTED: 200,
    Outcome.INVALID: 400,
    Outcome.UNKNOWN: 404,
    Outcome.CONFLICT: 409,
    Outcome.TOO_LARGE: 413,
    Outcome.RATE_LIMITED: 429,
    Outcome.UNAVAILABLE: 503,
    Outcome.FAILED: 500,
}


@dataclass(frozen=True)
class NotifyVerdict:
    """The end of one notify: a stable ``code`` for the audit trail and
    /status (``paid``, ``duplicate``, ``bad_signature``, ``signtest_probe``…),
    its ``outcome``, and a short ``message`` WeChat may read (never a secret)."""

    code: str
    outcome: Outcome
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


@dataclass(frozen=True)
class Refusal:
    """A notify the gateway will not turn into an event.

    ``proven``: its origin was proven before it was refused (WeChat sent it;
    the refusal is about its content), so a server may keep it and log it;
    an unproven one is someone else's and costs as little as possible.
    ``key``: the out_trade_no / out_refund_no it names, when well-formed."""

    verdict: NotifyVerdict
    proven: bool = False
    key: str | None = None


@dataclass(frozen=True)
class WireReply:
    """The bytes to answer a notify with."""

    status: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class OrderIdentity:
    """What a stored order says a notify for it must match: the app and
    merchant it was placed under and the sign type it was signed with."""

    appid: str
    mch_id: str
    sign_type: str


@dataclass(frozen=True)
class ProvenPayment:
    """A payment notify WeChat provably sent, not judged yet.

    Found without a store lookup: look the order up by ``out_trade_no``,
    then :meth:`PayGateway.judge_payment_notify` it against that order.
    ``evidence`` is the version's own parsed notify; only its gateway reads it."""

    out_trade_no: str
    signed_with: str
    evidence: Any = field(repr=False, compare=False)
    record: str | None = field(default=None, repr=False, compare=False)  # see :attr:`RefundNotice.record`


@dataclass(frozen=True)
class PaymentNotice:
    """A verified payment notify that matches its order's identity.

    Not yet the truth: a server asks :meth:`PayGateway.query_order` before
    it believes the payment."""

    out_trade_no: str
    transaction_id: str
    amount_fen: int
    mch_id: str
    appid: str | None = None
    paid_at: datetime | None = None
    payer_openid: str | None = None
    event_id: str | None = None  # APIv3's notify id; APIv2 has none


@dataclass(frozen=True)
class RefundNotice:
    """A verified refund notify (APIv2: its req_info decrypted under our key;
    APIv3: signed by WeChat, then decrypted)."""

    out_refund_no: str
    out_trade_no: str
    refund_id: str
    refund_fen: int
    status: str  # REFUND_STATUSES, or WeChat's own word when it is none of them
    mch_id: str
    appid: str | None = None  # APIv2 names it; APIv3's refund notify does not
    succeeded_at: datetime | None = None
    event_id: str | None = None
    # What a server keeps in its audit trail instead of the raw body, when the
    # raw body is not readable on its own (APIv3: the envelope's fields and the
    # decrypted resource, as JSON text; never a key). ``None``: keep the raw body.
    record: str | None = field(default=None, repr=False, compare=False)


# --- shared logic -------------------------------------------------------------------------


def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message)


def check_order_request(request: OrderRequest) -> None:
    """What every version requires of an order, before any I/O."""
    if not isinstance(request, OrderRequest):
        raise _bad("place_order needs a wxpay.gateway.OrderRequest")
    if request.trade_type not in TRADE_TYPES:
        raise _bad(f"trade_type must be one of {', '.join(TRADE_TYPES)} (got {request.trade_type!r})")
    amount = request.amount_fen
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise _bad("amount_fen must be an int number of fen greater than 0")
    if not isinstance(request.description, str) or not request.description.strip():
        raise _bad("description is required (what the shopper buys)")
    expires = request.expires_at
    if not isinstance(expires, datetime) or expires.tzinfo is None or expires.utcoffset() is None:
        raise _bad("expires_at must be a timezone-aware datetime")
    if request.trade_type == "JSAPI" and not request.openid:
        raise _bad("JSAPI needs the shopper's openid under the order's appid")
    if request.trade_type == "MWEB" and request.h5_site is None:
        raise _bad("MWEB needs h5_site (the merchant site the H5 payment starts from)")


def check_refund_request(request: RefundRequest) -> None:
    if not isinstance(request, RefundRequest):
        raise _bad("refund needs a wxpay.gateway.RefundRequest")
    for name in ("total_fen", "refund_fen"):
        value = getattr(request, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _bad(f"{name} must be an int number of fen greater than 0")
    if request.refund_fen > request.total_fen:
        raise _bad(f"refund_fen {request.refund_fen} exceeds the payment's {request.total_fen}")


def refusal_for(exc: WxPayError, *, proven: bool = False, key: str | None = None) -> Refusal:
    """The one mapping from why a notify failed to its verdict, for both versions.

    A failure of the proof itself keeps its own code (APIv2's ``bad_signature``;
    APIv3's finer ``signtest_probe``, ``stale_timestamp``, ``unknown_serial`` …;
    ``undecryptable`` and APIv3's decryption codes); a notify that proved its
    origin but reports no success (``return_code``/``result_code`` FAIL) is
    accepted as ``ignored_<code>``: nothing to apply, nothing to retry."""
    if isinstance(exc, MessageTooLargeError):
        verdict = NotifyVerdict("too_large", Outcome.TOO_LARGE, "body too large")
    elif isinstance(exc, SignatureError):  # APIv3's VerificationError included
        verdict = NotifyVerdict(exc.code, Outcome.INVALID, "signature error")
    elif isinstance(exc, DecryptError):
        verdict = NotifyVerdict(exc.code, Outcome.INVALID, "does not decrypt")
    elif isinstance(exc, IdentityMismatchError):
        verdict = NotifyVerdict("identity_mismatch", Outcome.INVALID, "appid or mch_id mismatch")
    elif isinstance(exc, ProtocolError):
        verdict = NotifyVerdict(exc.code, Outcome.INVALID, "malformed notify")
    else:
        verdict = NotifyVerdict(f"ignored_{exc.code}", Outcome.ACCEPTED, "OK")
    return Refusal(verdict, proven=proven, key=key)


def notify_version(headers: Mapping[str, str], body: bytes) -> str:
    """``"v3"`` for a notify shaped like APIv3's (a JSON object), else ``"v2"``.

    Only the shape: the body's first byte after white space. The version's
    gateway then proves the notify or refuses it, so a body dressed as the
    other version gains nothing. The ``Wechatpay-*`` headers are not looked
    at, so a proxy that strips them sends the notify to the APIv3 gateway,
    which refuses it as ``missing_header`` (the cause an operator needs)."""
    return "v3" if body.lstrip(b" \t\r\n")[:1] == b"{" else "v2"


_INTERNAL = NotifyVerdict("internal_error", Outcome.FAILED, "internal error")
_TOO_LARGE = NotifyVerdict("too_large", Outcome.TOO_LARGE, "body too large")


class PayGateway(ABC):
    """What a server asks of WeChat Pay, whichever version the merchant uses.

    Built once from the configuration; the only object above ``wxpay``
    that holds the merchant's keys, and it never hands them out."""

    api_version: ClassVar[str]

    def __init__(self, *, mch_id: str, sign_type: str, max_notify_bytes: int) -> None:
        self.mch_id = mch_id
        self.sign_type = sign_type  # what new orders are signed with
        self.max_notify_bytes = max_notify_bytes

    # -- orders ------------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> PlacedOrder:
        """Place one order with WeChat (APIv2 unifiedorder; APIv3 POST
        /v3/pay/transactions/{jsapi,native,h5,app}).

        An implementation must: refuse bad arguments with
        ``InvalidArgumentError`` before any I/O; not retry on its own (a
        repeat is the caller's choice); raise ``OrderPaidError`` when WeChat
        says the out_trade_no is paid already, ``OrderClosedError`` when it
        is closed, ``OutTradeNoUsedError`` when it was placed with other
        fields; raise ``TransportError``/``ProtocolError``/``SignatureError``/
        ``IdentityMismatchError`` when the answer is missing or untrustworthy
        (the order may exist at WeChat); and fill the field of
        :class:`PlacedOrder` that its trade type needs."""
        check_order_request(request)
        return await self._place_order(request)

    @abstractmethod
    async def _place_order(self, request: OrderRequest) -> PlacedOrder: ...

    @abstractmethod
    def signs(self, sign_type: str) -> bool:
        """Whether this gateway can sign client payloads for an order of
        ``sign_type`` (a server reuses a stored prepay_id only then: APIv2
        signs MD5 and HMAC-SHA256 with its key, APIv3 only RSA)."""

    @abstractmethod
    def jsapi_payloads(self, *, appid: str, prepay_id: str, sign_type: str) -> JsapiPayloads:
        """The bridge's ``getBrandWCPayRequest`` object and ``wx.chooseWXPay``'s,
        for the order's ``appid``, signed with the order's ``sign_type``
        (APIv3: ``signType`` "RSA", paySign with the merchant's private key).
        Raise ``InvalidArgumentError`` for a sign type it does not :meth:`signs`."""

    @abstractmethod
    def mini_program_payload(self, *, appid: str, prepay_id: str, sign_type: str) -> MiniProgramPayload:
        """``wx.requestPayment``'s object, signed over the Mini Program's ``appid``."""

    @abstractmethod
    def app_payload(self, *, appid: str, prepay_id: str, sign_type: str) -> AppPayload:
        """The App SDK's ``PayReq`` (``partnerid`` is our mch_id)."""

    def h5_return_url(self, h5_url: str, return_to: str) -> str:
        """Where to send a mobile browser for an H5 payment so it comes back
        to ``return_to`` afterwards (the same rule in both versions)."""
        return mweb_redirect(h5_url, return_to)

    @abstractmethod
    async def query_order(self, out_trade_no: str) -> PaymentFacts:
        """WeChat's record of one order. Retries on its own (safe to repeat).
        Raise ``OrderNotExistError`` when WeChat has no such order (APIv3's
        404 ORDER_NOT_EXIST / RESOURCE_NOT_EXISTS included); verify the
        reply's signature and that it names our merchant before any field
        is returned."""

    @abstractmethod
    async def close_order(self, out_trade_no: str, *, appid: str | None = None) -> None:
        """Close an unpaid order (``appid``: the one it was placed under). Retries
        on its own. Raise ``OrderPaidError`` when WeChat says it is paid,
        ``OrderClosedError`` when it is closed already (callers treat that
        as done). WeChat refuses to close an order younger than five
        minutes; that is the caller's rule to keep."""

    # -- refunds ------------------------------------------------------------------------------

    async def refund(self, request: RefundRequest) -> RefundAccepted:
        """Ask for a refund. An implementation retries it on its own (the same
        out_refund_no refunds once; APIv2 over the client certificate) and
        raises ``BusinessError`` subclasses for WeChat's refusals (``retryable``
        set when WeChat asks to try again), ``ConfigError`` when it cannot
        refund at all (no certificate), a ``TransportError`` when the outcome
        is unknown."""
        check_refund_request(request)
        return await self._refund(request)

    @abstractmethod
    async def _refund(self, request: RefundRequest) -> RefundAccepted: ...

    @abstractmethod
    async def query_refund(self, out_refund_no: str, *, appid: str | None = None) -> RefundFacts:
        """How one refund stands. Retries on its own. Raise
        ``RefundNotExistError`` when WeChat does not know it (or its answer
        does not list it). ``status`` in :data:`REFUND_STATUSES` words."""

    # -- the day's bill -----------------------------------------------------------------------

    @abstractmethod
    async def day_bill(self, day: date) -> DayBill:
        """The trade bill (every payment and refund) of China day ``day``.
        Raise ``NoBillError`` when WeChat has none for that day, and
        ``BillNotReadyError`` while it is being made; check the file's
        integrity where the version offers a way (APIv3's SHA1)."""

    # -- notifies -------------------------------------------------------------------------------

    async def read_payment_notify(self, headers: Mapping[str, str], body: bytes) -> ProvenPayment | Refusal:
        """Prove a payment notify's origin from the raw request, with no
        store lookup: a forgery must cost a server nothing but CPU.

        Never raises: a refusal carries a stable verdict code (see
        :func:`refusal_for`). An implementation checks the size first, then
        the proof over the raw bytes (APIv2: the signature, with the sign
        type the notify shows or its length implies, because the order's own
        is not known yet; APIv3: the ``Wechatpay-*`` headers, the serial's
        key, the time window, a SIGNTEST probe refused as ``signtest_probe``),
        and parses no more than it needs before that. APIv3 may decrypt here
        (its proof does not depend on the order)."""
        if len(body) > self.max_notify_bytes:
            return Refusal(_TOO_LARGE)
        try:
            return await self._read_payment_notify(headers, body)
        except WxPayError as exc:
            return refusal_for(exc)
        except Exception:
            log.exception("payment notify could not be read")
            return Refusal(_INTERNAL)

    @abstractmethod
    async def _read_payment_notify(self, headers: Mapping[str, str], body: bytes) -> ProvenPayment | Refusal: ...

    def judge_payment_notify(self, proven: ProvenPayment, order: OrderIdentity) -> PaymentNotice | Refusal:
        """Judge a proven notify against the order it names.

        An implementation must refuse one whose proof does not hold for the
        order's own sign type (APIv2: a notify may omit ``sign_type``, so the
        first proof guessed it; ``bad_signature``, not proven), one naming
        another appid or mch_id (``identity_mismatch``, proven), malformed
        fields (proven), and accept as ``ignored_<code>`` one that reports no
        successful payment. Never raises."""
        try:
            return self._judge_payment_notify(proven, order)
        except WxPayError as exc:
            return refusal_for(exc, proven=True, key=proven.out_trade_no)
        except Exception:
            log.exception("payment notify could not be judged")
            return Refusal(_INTERNAL, key=proven.out_trade_no)

    @abstractmethod
    def _judge_payment_notify(self, proven: ProvenPayment, order: OrderIdentity) -> PaymentNotice | Refusal: ...

    async def read_refund_notify(self, headers: Mapping[str, str], body: bytes) -> RefundNotice | Refusal:
        """Prove, decrypt and type a refund notify, with no store lookup.

        Never raises. APIv2: the outer appid must be one of ours and the
        mch_id ours; ``req_info`` must decrypt under our key (that is the
        only proof: a refusal before it is unproven). APIv3: the signature
        first, then the resource decrypts under the APIv3 key, for our mchid."""
        if len(body) > self.max_notify_bytes:
            return Refusal(_TOO_LARGE)
        try:
            return await self._read_refund_notify(headers, body)
        except WxPayError as exc:
            return refusal_for(exc)
        except Exception:
            log.exception("refund notify could not be read")
            return Refusal(_INTERNAL)

    @abstractmethod
    async def _read_refund_notify(self, headers: Mapping[str, str], body: bytes) -> RefundNotice | Refusal: ...

    def notify_reply(self, verdict: NotifyVerdict) -> WireReply:
        """What to answer WeChat for ``verdict``: APIv2 XML SUCCESS/FAIL with
        the outcome's status; APIv3 204 with no body, or the outcome's status
        with ``{"code": "FAIL", "message": …}``."""
        return self._wire_reply(verdict, STATUS[verdict.outcome])

    @abstractmethod
    def _wire_reply(self, verdict: NotifyVerdict, status: int) -> WireReply: ...

    # -- what an operator may see -------------------------------------------------------------------

    def describe(self) -> Mapping[str, Any]:
        """Public facts for a status page: the version, the merchant, how WeChat
        is verified (key IDs, certificate serials and their expiry). Never a key."""
        return {"api_version": self.api_version, "mch_id": self.mch_id, "sign_type": self.sign_type}

    # -- trust that WeChat rotates (APIv3 platform certificates) -----------------------------------
    #
    # A server keeps this state in its store, shared by every process, and
    # lets one process refresh it under a lease (like the access_token);
    # the others load what it saved. APIv2 has nothing to keep.

    def keeps_trust(self) -> bool:
        """Whether this gateway holds trust that WeChat rotates (APIv3 platform
        certificates, even before the first download). ``False``: the trust
        methods below do nothing and a server runs no refresh task."""
        return False

    def trust_state(self) -> Mapping[str, Any] | None:
        """What to store (JSON, public material only), or ``None`` when there is nothing."""
        return None

    def load_trust_state(self, state: Mapping[str, Any]) -> None:
        """Take the stored state (another process refreshed it); what is
        trusted already stays trusted. Raise ``ConfigError`` for a state it
        cannot read."""
        return None

    def trust_refresh_due(self) -> bool:
        """Whether :meth:`refresh_trust` should run now (a certificate nears
        its end, or the periodic refresh is due)."""
        return False

    async def refresh_trust(self) -> Mapping[str, Any] | None:
        """Download and verify what WeChat trusts now; return the state to
        store (``None``: nothing to store). On failure raise, and keep
        trusting what was trusted."""
        return None
