"""Checkouts, WeChat orders and refunds: their documents and their states.

Which state may follow which is ``service/lifecycle.py``'s, the one writer
of every state move.

A *checkout* is what the merchant sells (amount, description, expiry). A
checkout may need several WeChat *orders* (one per trade type / shopper /
2-hour prepay window); at most one of them should end up paid.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

CHECKOUTS = "checkouts"
ORDERS = "orders"
AUDIT = "audit"
TOKENS = "tokens"
OAUTH_CODES = "oauth_codes"
RUNS = "runs"
REFUNDS = "refunds"
OUTBOX = "outbox"
QUOTAS = "quotas"  # WeChat calls (new orders, OAuth exchanges) per client source and window (service/source_quota.py)
TRUST = "trust"  # what WeChat rotates (APIv3 platform certificates), shared by every process (service/trust.py)

# Set on a checkout in the same atomic write as any status change that the
# merchant hears about by webhook; cleared once the outbox holds the events
# (service/outbox.py explains the write order).
OUTBOX_DUE = "outbox_due_at"

# Set on an open checkout when a close begins (the merchant's cancel, or the
# reconciler at expiry): from then on no new WeChat order may be reserved for
# it. The close ends open → closed, or loses to a payment (open → paid).
CLOSE_MARK = "close_requested_at"

# Checkout statuses.
OPEN = "open"
PAID = "paid"
CLOSED = "closed"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
CHECKOUT_STATUSES = (OPEN, PAID, CLOSED, PARTIALLY_REFUNDED, REFUNDED)
# A checkout in one of these was paid (whatever has been refunded since).
PAID_STATUSES = (PAID, PARTIALLY_REFUNDED, REFUNDED)


def shown_status(status: str, expires_at: datetime, now: datetime) -> str:
    """A checkout's status as the shopper is shown it: "expired" once an
    open checkout's time is up (nothing stores that move; the page and its
    poll both ask here)."""
    return "expired" if status == OPEN and expires_at <= now else status

# Order states.
CREATED = "created"
PREPAID = "prepaid"
FAILED = "failed"
ORDER_STATES = (CREATED, PREPAID, PAID, CLOSED, FAILED)

TRADE_TYPES = ("JSAPI", "NATIVE", "MWEB", "APP")

# Refund states. "pending" until WeChat's notify or refundquery says how it
# ended; "failed" when WeChat refused the request itself (nothing moved).
R_PENDING = "pending"
R_SUCCEEDED = "succeeded"
R_CLOSED = "closed"                  # CLOSED (APIv2 REFUNDCLOSE): the money did not go back
R_NEEDS_ATTENTION = "needs_attention"  # ABNORMAL (APIv2 CHANGE): a human must act
R_FAILED = "failed"
REFUND_STATES = (R_PENDING, R_SUCCEEDED, R_CLOSED, R_NEEDS_ATTENTION, R_FAILED)
# WeChat's refund status (the gateway's words) -> our state. PROCESSING is not an end.
REFUND_STATUS_MAP = {"SUCCESS": R_SUCCEEDED, "CLOSED": R_CLOSED, "ABNORMAL": R_NEEDS_ATTENTION}
# States in which a refund's amount stays reserved against the checkout.
REFUND_HOLDS = (R_PENDING, R_SUCCEEDED, R_NEEDS_ATTENTION)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_FIELD_SETS: dict[type, frozenset[str]] = {}


def _names(cls: type) -> tuple[str, ...]:
    """Field names in declaration order, worked out once per class."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
        _FIELD_SETS[cls] = frozenset(names)
    return names


def _from_doc(cls, doc: dict[str, Any]):
    names = _FIELD_SETS.get(cls) or (_names(cls) and _FIELD_SETS[cls])
    kwargs = {k: v for k, v in doc.items() if k in names}
    if "_id" in doc and "id" in names:
        kwargs["id"] = doc["_id"]
    return cls(**kwargs)


def _to_fields(obj: Any) -> dict[str, Any]:
    """Set fields only; lists and dicts copied one level (they hold plain
    values), which is all ``dataclasses.asdict``'s deep copy bought here."""
    out: dict[str, Any] = {}
    for name in _names(type(obj)):
        value = getattr(obj, name)
        if value is None:
            continue
        if isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, list):
            value = list(value)
        out[name] = value
    return out


@dataclass
class Checkout:
    id: str
    amount_fen: int
    description: str
    expires_at: datetime
    created_at: datetime
    status: str = OPEN
    merchant_reference: str | None = None
    attach: str | None = None
    return_url: str | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    paid_out_trade_no: str | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    double_paid: bool = False
    orders_made: int = 0           # WeChat orders reserved for it (capped: checkout.max_orders)
    close_requested_at: datetime | None = None  # CLOSE_MARK
    refunded_fen: int = 0          # refunds WeChat completed
    refund_reserved_fen: int = 0   # pending + completed + needs attention
    refund_nos: list[str] = field(default_factory=list)      # reserved, by out_refund_no
    refunds_applied: list[str] = field(default_factory=list)  # settled into the figures above
    outbox_due_at: datetime | None = None  # OUTBOX_DUE: events to write (service/outbox.py)
    updated_at: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = _to_fields(self)
        doc["_id"] = doc.pop("id")
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Checkout":
        return _from_doc(cls, doc)

    @property
    def refundable_fen(self) -> int:
        return max(0, self.amount_fen - self.refund_reserved_fen) if self.status in PAID_STATUSES else 0

    def public(self) -> dict[str, Any]:
        """The merchant API's view (no idempotency internals)."""
        out = {
            "id": self.id,
            "status": self.status,
            "amount_fen": self.amount_fen,
            "description": self.description,
            "merchant_reference": self.merchant_reference,
            "attach": self.attach,
            "return_url": self.return_url,
            "expires_at": _iso(self.expires_at),
            "created_at": _iso(self.created_at),
            "paid_at": _iso(self.paid_at),
            "closed_at": _iso(self.closed_at),
            "paid_out_trade_no": self.paid_out_trade_no,
            "refunded_fen": self.refunded_fen,
            "refundable_fen": self.refundable_fen,
        }
        if self.double_paid:
            out["double_paid"] = True
        return out


@dataclass
class Order:
    out_trade_no: str
    checkout_id: str
    trade_type: str
    appid: str
    mch_id: str
    sign_type: str
    total_fee: int
    created_at: datetime
    state: str = CREATED
    openid: str | None = None
    client_ip: str | None = None
    prepay_id: str | None = None
    prepay_expires_at: datetime | None = None
    code_url: str | None = None
    mweb_url: str | None = None
    transaction_id: str | None = None
    time_end: datetime | None = None
    bank_type: str | None = None
    cash_fee: int | None = None
    paid_at: datetime | None = None
    paid_via: str | None = None  # "notify" | "reconciler"
    closed_at: datetime | None = None
    failure: str | None = None
    next_check_at: datetime | None = None
    checks: int = 0
    close_requested: bool = False
    # Set in the same write as the move to paid, cleared once the checkout,
    # siblings and webhook intent are settled: a crash or store failure in
    # between is finished by the next notify or the reconciler.
    settle_due_at: datetime | None = None
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        doc = _to_fields(self)
        doc["_id"] = self.out_trade_no
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Order":
        return _from_doc(cls, doc)

    def public(self) -> dict[str, Any]:
        return {
            "out_trade_no": self.out_trade_no,
            "trade_type": self.trade_type,
            "state": self.state,
            "total_fee": self.total_fee,
            "transaction_id": self.transaction_id,
            "created_at": _iso(self.created_at),
            "paid_at": _iso(self.paid_at),
        }


@dataclass
class Refund:
    """One refund of one WeChat order; ``_id`` is ``out_refund_no``."""

    out_refund_no: str
    checkout_id: str
    out_trade_no: str
    appid: str
    mch_id: str
    amount_fen: int
    total_fee: int
    created_at: datetime
    state: str = R_PENDING
    kind: str = "merchant"  # "merchant" | "double_payment"
    reason: str | None = None
    request_fingerprint: str | None = None
    submitted: bool = False     # WeChat accepted the request (refund_id known)
    refund_id: str | None = None
    wechat_status: str | None = None
    failure: str | None = None
    succeeded_at: datetime | None = None
    settled_at: datetime | None = None
    applied: bool = False       # its outcome is in the checkout's figures
    checkout_status_after: str | None = None
    next_check_at: datetime | None = None
    checks: int = 0
    updated_at: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = self.out_refund_no
        return {k: v for k, v in doc.items() if v is not None}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Refund":
        return _from_doc(cls, doc)

    def public(self) -> dict[str, Any]:
        return {
            "out_refund_no": self.out_refund_no,
            "checkout_id": self.checkout_id,
            "out_trade_no": self.out_trade_no,
            "amount_fen": self.amount_fen,
            "state": self.state,
            "kind": self.kind,
            "reason": self.reason,
            "refund_id": self.refund_id,
            "failure": self.failure,
            "created_at": _iso(self.created_at),
            "succeeded_at": _iso(self.succeeded_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
