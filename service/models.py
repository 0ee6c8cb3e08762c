"""Checkouts and WeChat orders, and the one table of legal state moves.

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

# Checkout statuses.
OPEN = "open"
PAID = "paid"
CLOSED = "closed"
CHECKOUT_STATUSES = (OPEN, PAID, CLOSED)

# Order states.
CREATED = "created"
PREPAID = "prepaid"
FAILED = "failed"
ORDER_STATES = (CREATED, PREPAID, PAID, CLOSED, FAILED)

# Order state machine: target -> states it may be entered from. "paid" may
# follow "closed"/"failed" because WeChat's own orderquery is the truth: a
# shopper can pay in the instant we close, and the money has then moved.
ORDER_MOVES: dict[str, tuple[str, ...]] = {
    PREPAID: (CREATED, PREPAID),
    PAID: (CREATED, PREPAID, FAILED, CLOSED),
    CLOSED: (CREATED, PREPAID),
    FAILED: (CREATED, PREPAID),
}

TRADE_TYPES = ("JSAPI", "NATIVE", "MWEB", "APP")


def _from_doc(cls, doc: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in doc.items() if k in names}
    if "_id" in doc and "id" in names:
        kwargs["id"] = doc["_id"]
    return cls(**kwargs)


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
    updated_at: datetime | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = doc.pop("id")
        return {k: v for k, v in doc.items() if v is not None}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Checkout":
        return _from_doc(cls, doc)

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
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = self.out_trade_no
        return {k: v for k, v in doc.items() if v is not None}

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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
