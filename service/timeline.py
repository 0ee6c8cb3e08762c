"""A checkout's whole story, in order: what the console's checkout page shows.

Gathered from what the server keeps anyway: the checkout and its orders and
refunds (their timestamps), the audit trail (every notify with its verdict,
every call to WeChat with its result and latency, the reconciler's findings,
cancels, double payments, the operators' actions) and the webhook outbox
(each delivery attempt). Nothing is recorded for the timeline's sake.

What a verified message said is shown as it was recorded: an APIv2 notify's
raw XML, an APIv3 notify's envelope and decrypted resource (its raw body is
ciphertext). A message refused before its proof of origin was never kept,
only its size and digest, and that is what the timeline says of it. No key
is ever in a record, so none can appear here.

Bounded: at most ``MAX_RECORDS`` audit records and ``MAX_EVENTS`` webhook
events (``truncated`` says when a checkout had more), each read through an
index (store/open.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.base import Store

from .audit import CONSOLE, WECHAT_CALL, Audit
from .checkouts import CheckoutService
from .guard import store_guard
from .models import OUTBOX, R_SUCCEEDED, Checkout, Order, Refund
from .orders import OrderBook
from .refunds import RefundService
from .webhooks import public_event

MAX_RECORDS = 500
MAX_EVENTS = 100

GOOD, BAD, WARN, NEUTRAL = "good", "bad", "warn", "neutral"


@dataclass(frozen=True)
class Money:
    """An amount to show in yuan and fen."""

    fen: int


@dataclass
class Entry:
    at: datetime
    source: str  # checkout | order | refund | notify | wechat | webhook | console | reconciler | audit
    title: str
    tone: str = NEUTRAL
    facts: list[tuple[str, Any]] = field(default_factory=list)  # label -> str | int | datetime | Money
    raw: str | None = None  # what a verified message said, as recorded (never a key)
    raw_label: str | None = None


@dataclass
class CheckoutFile:
    checkout: Checkout
    orders: list[Order]
    refunds: list[Refund]
    events: list[dict[str, Any]]  # webhook events, as the merchant API shows them
    entries: list[Entry]
    truncated: bool

    @property
    def refunds_pending_fen(self) -> int:
        """Reserved but not yet completed (pending, or needing a person)."""
        return max(0, self.checkout.refund_reserved_fen - self.checkout.refunded_fen)


class Timelines:
    def __init__(
        self, store: Store, checkouts: CheckoutService, orders: OrderBook, refunds: RefundService, audit: Audit,
        *, max_records: int = MAX_RECORDS, max_events: int = MAX_EVENTS,
    ) -> None:
        self.store = store
        self.checkouts = checkouts
        self.orders = orders
        self.refunds = refunds
        self.audit = audit
        self.max_records = max_records
        self.max_events = max_events

    async def of(self, checkout_id: str) -> CheckoutFile:
        """Everything about one checkout; ``NotFound`` for an unknown id."""
        checkout = await self.checkouts.get(checkout_id)
        orders = await self.orders.for_checkout(checkout.id)
        refunds = await self.refunds.for_checkout(checkout.id)
        records, more = await self.audit.about(
            checkout_id=checkout.id,
            out_trade_nos=[o.out_trade_no for o in orders],
            out_refund_nos=[r.out_refund_no for r in refunds],
            limit=self.max_records,
        )
        with store_guard():
            docs = await self.store.find(
                OUTBOX, {"checkout_id": checkout.id}, sort=[("created_at", 1)], limit=self.max_events + 1
            )
        more = more or len(docs) > self.max_events
        events = [public_event(d) | {"body": d.get("body"), "resent": d.get("resent", 0)} for d in docs[: self.max_events]]
        entries = _checkout_entries(checkout)
        for order in orders:
            entries += _order_entries(order)
        for refund in refunds:
            entries += _refund_entries(refund)
        entries += [_record_entry(r) for r in records]
        for doc in docs[: self.max_events]:
            entries += _webhook_entries(doc)
        entries.sort(key=lambda e: e.at)  # stable: same-instant entries keep their causal order above
        return CheckoutFile(checkout, orders, refunds, events, entries, more)


# -- the entries ------------------------------------------------------------------


def _checkout_entries(c: Checkout) -> list[Entry]:
    out = [Entry(c.created_at, "checkout", "Checkout created", NEUTRAL, [
        ("amount", Money(c.amount_fen)), ("description", c.description),
        ("merchant reference", c.merchant_reference or "—"), ("expires", c.expires_at),
    ])]
    if c.close_requested_at:
        out.append(Entry(c.close_requested_at, "checkout", "Close started: no new WeChat order can begin", WARN))
    if c.paid_at:
        out.append(Entry(c.paid_at, "checkout", "Checkout paid", GOOD, [("by order", c.paid_out_trade_no or "—")]))
    if c.closed_at:
        out.append(Entry(c.closed_at, "checkout", "Checkout closed", NEUTRAL))
    return out


def _order_entries(o: Order) -> list[Entry]:
    facts: list[tuple[str, Any]] = [("out_trade_no", o.out_trade_no), ("trade type", o.trade_type),
                                    ("amount", Money(o.total_fee)), ("signed", o.sign_type)]
    if o.openid:
        facts.append(("openid", o.openid))
    if o.client_ip:
        facts.append(("client IP", o.client_ip))
    out = [Entry(o.created_at, "order", f"WeChat order {o.out_trade_no} started", NEUTRAL, facts)]
    if o.paid_at:
        paid: list[tuple[str, Any]] = [("out_trade_no", o.out_trade_no), ("transaction_id", o.transaction_id or "—"),
                                       ("confirmed by", o.paid_via or "—")]
        if o.time_end:
            paid.append(("paid at WeChat", o.time_end))
        if o.cash_fee is not None:
            paid.append(("shopper paid", Money(o.cash_fee)))
        if o.bank_type:
            paid.append(("bank", o.bank_type))
        out.append(Entry(o.paid_at, "order", f"Order {o.out_trade_no} paid (confirmed with WeChat)", GOOD, paid))
    if o.closed_at:
        out.append(Entry(o.closed_at, "order", f"Order {o.out_trade_no} closed", NEUTRAL))
    if o.state == "failed":
        out.append(Entry(o.updated_at or o.created_at, "order", f"Order {o.out_trade_no} failed", BAD,
                         [("why", o.failure or "—")]))
    return out


def _refund_entries(r: Refund) -> list[Entry]:
    what = "Double payment refund" if r.kind == "double_payment" else "Refund"
    facts: list[tuple[str, Any]] = [("out_refund_no", r.out_refund_no), ("amount", Money(r.amount_fen)),
                                    ("of order", r.out_trade_no)]
    if r.reason:
        facts.append(("reason (shown to the shopper)", r.reason))
    out = [Entry(r.created_at, "refund", f"{what} of {_yuan(r.amount_fen)} requested", NEUTRAL, facts)]
    if r.state != "pending" and r.settled_at:
        tone = GOOD if r.state == R_SUCCEEDED else (WARN if r.state == "needs_attention" else BAD)
        end = [("out_refund_no", r.out_refund_no), ("state", r.state)]
        if r.refund_id:
            end.append(("refund_id", r.refund_id))
        if r.failure:
            end.append(("why", r.failure))
        if r.succeeded_at:
            end.append(("completed at WeChat", r.succeeded_at))
        out.append(Entry(r.settled_at, "refund", f"{what} {r.state}", tone, end))  # our clock, as every other entry
    return out


ENDPOINTS = {
    "place_order": "order placed",
    "query_order": "order query",
    "close_order": "order close",
    "query_refund": "refund query",
}


def _record_entry(doc: dict[str, Any]) -> Entry:
    kind, verdict, at = doc.get("kind"), str(doc.get("verdict")), doc["at"]
    ok = doc.get("ok")
    facts: list[tuple[str, Any]] = []
    for name in ("out_trade_no", "out_refund_no", "api_version"):
        if doc.get(name):
            facts.append((name, doc[name]))
    if doc.get("latency_ms") is not None:
        facts.append(("took", f"{doc['latency_ms']:g} ms"))
    if kind in ("notify", "refund_notify"):
        what = "Payment notify" if kind == "notify" else "Refund notify"
        verified = doc.get("verified", "raw" in doc)
        facts.append(("proof of origin", "verified" if verified else "not verified"))
        if kind == "notify" and verdict == "paid":
            # Its orderquery is not recorded apart (the notify path writes one record): it is within "took".
            facts.append(("confirmed by", "WeChat's orderquery, before the verdict"))
        if "size" in doc:
            facts.append(("size", f"{doc['size']} bytes"))
        raw, label = None, None
        if doc.get("raw") is not None:
            raw = _pretty(doc["raw"])
            label = ("decrypted resource, as recorded" if doc.get("wire_sha256") else "raw body, as received") + (
                " (cut at 16 KiB)" if doc.get("raw_truncated") else "")
        elif doc.get("sha256"):
            facts.append(("sha256", doc["sha256"]))
            facts.append(("kept", "digest only" + (" (a repeat of one already kept)" if verified else
                                                   " (refused before its proof of origin)")))
        return Entry(at, "notify", f"{what}: {verdict}", GOOD if ok else BAD, facts, raw, label)
    if kind == WECHAT_CALL:
        name = ENDPOINTS.get(str(doc.get("endpoint")), str(doc.get("endpoint")))
        if ok:
            title = f"WeChat {name}: ok" + (f" ({doc['result']})" if doc.get("result") else "")
        else:
            title = f"WeChat {name} failed: {verdict}"
            if doc.get("cause"):
                facts.append(("cause", doc["cause"]))
            if doc.get("err_code"):
                facts.append(("WeChat code", doc["err_code"]))
        return Entry(at, "wechat", title, GOOD if ok else BAD, facts)
    if kind == "refund_call":
        if doc.get("amount_fen") is not None:
            facts.append(("amount", Money(int(doc["amount_fen"]))))
        for name in ("error", "err_code"):
            if doc.get(name):
                facts.append((name, doc[name]))
        tone = {"accepted": GOOD, "rejected": BAD}.get(verdict, WARN)
        return Entry(at, "wechat", f"WeChat refund request: {verdict}", tone, facts)
    if kind == "refund_query":
        return Entry(at, "wechat", f"Refund query settled it: {verdict}", GOOD if verdict == R_SUCCEEDED else WARN, facts)
    if kind == "reconciler":
        return Entry(at, "reconciler", f"Reconciler: {verdict}", GOOD if verdict == "paid" else WARN, facts)
    if kind == "cancel":
        return Entry(at, "checkout", "Cancelled: every WeChat order closed", NEUTRAL, facts)
    if kind == "double_payment":
        facts += [("reason", doc.get("reason") or "—"), ("first payment", doc.get("first_out_trade_no") or "—")]
        return Entry(at, "order", "Double payment: this payment is refunded automatically", BAD, facts)
    if kind == "double_payment_refund":
        return Entry(at, "refund", "Double payment refund created", WARN, facts)
    if kind == CONSOLE:
        return _console_entry(doc, facts)
    return Entry(at, "audit", f"{kind}: {verdict}", GOOD if ok else NEUTRAL, facts)


def _console_entry(doc: dict[str, Any], facts: list[tuple[str, Any]]) -> Entry:
    action, verdict = doc.get("action", "?"), str(doc.get("verdict"))
    facts = [("from", doc.get("source") or "?")] + facts
    if doc.get("day"):
        facts.append(("China day", doc["day"]))
    if doc.get("amount_fen") is not None:
        facts.append(("amount", Money(int(doc["amount_fen"]))))
    if doc.get("event_id"):
        facts.append(("event", doc["event_id"]))
    if doc.get("message") and verdict not in ("done", "started"):
        facts.append(("said", doc["message"]))
    tone = {"done": GOOD, "started": WARN}.get(verdict, BAD)
    outcome = {"done": "done", "started": "started (no outcome recorded)"}.get(verdict, f"refused: {verdict}")
    return Entry(doc["at"], "console", f"Console: {action} by {doc.get('user') or '?'}: {outcome}", tone, facts)


def _webhook_entries(doc: dict[str, Any]) -> list[Entry]:
    kind = doc.get("type", "?")
    out = [Entry(doc["created_at"], "webhook", f"Webhook {kind} queued", NEUTRAL, [("event", doc["_id"])],
                 _pretty(doc.get("body")), "body sent to the merchant")]
    for h in doc.get("history", []):
        at = h.get("at")
        if not isinstance(at, datetime):
            continue
        facts: list[tuple[str, Any]] = [("event", doc["_id"]), ("HTTP status", h.get("status") or "no answer")]
        if h.get("ms") is not None:
            facts.append(("took", f"{h['ms']:g} ms"))
        if h.get("error"):
            facts.append(("error", h["error"]))
            out.append(Entry(at, "webhook", f"Webhook {kind} attempt {h.get('attempt')} failed", BAD, facts))
        else:
            out.append(Entry(at, "webhook", f"Webhook {kind} delivered (attempt {h.get('attempt')})", GOOD, facts))
    if doc.get("state") == "failed" and isinstance(doc.get("failed_at"), datetime):
        out.append(Entry(doc["failed_at"], "webhook", f"Webhook {kind} gave up after {doc.get('attempts')} attempts",
                         BAD, [("event", doc["_id"]), ("last error", doc.get("last_error") or "—")]))
    return out


def _pretty(text: Any) -> str | None:
    """JSON indented for reading; anything else (APIv2's XML) exactly as kept."""
    if not isinstance(text, str):
        return None
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.dumps(json.loads(text), ensure_ascii=False, indent=2, sort_keys=True)
        except ValueError:
            return text
    return text


def _yuan(fen: int) -> str:
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}¥{whole:,}.{cents:02d}"
