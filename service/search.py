"""The console's search: one box, exact matches on every number an operator may hold.

A shopper or a colleague quotes a checkout id, the merchant's own
reference, the ``out_trade_no`` on a WeChat receipt, WeChat's
``transaction_id`` (the 28 digits in the shopper's bill), a shopper's
``openid`` or a refund number. Each is looked up exactly, through its own
index (store/open.py), and only where its format allows it, so a query
costs at most a handful of indexed reads whatever is typed. Results are
checkouts, newest first, each saying what matched; at most ``MAX_HITS``.

Anything that is not a sensible search (too long, control characters, not
text) is refused with a code, never an error page of ours.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from store.base import Store

from .checkouts import CHECKOUT_ID, REFERENCE
from .errors import InvalidInput
from .guard import store_guard
from .models import CHECKOUTS, ORDERS, REFUNDS, Checkout
from .refunds import OUT_REFUND_NO
from .validation import OPENID, safe_text

MAX_QUERY = 128
MAX_HITS = 50
# WeChat's numbers: an out_trade_no (letters, digits and _-|*@), a
# transaction_id (digits: 28 in WeChat's records), an openid (validation.OPENID).
# Loose on length: the store says whether one exists.
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
TRANSACTION_ID = re.compile(r"[0-9A-Za-z]{1,64}")

FIELDS = ("checkout_id", "merchant_reference", "out_trade_no", "transaction_id", "openid", "out_refund_no")


@dataclass
class Hit:
    checkout: Checkout
    matched: list[str] = field(default_factory=list)  # which of FIELDS matched
    out_trade_nos: list[str] = field(default_factory=list)  # the orders that matched, when an order did


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    truncated: bool  # more matched than MAX_HITS: the newest are shown


def clean_query(raw: Any) -> str:
    """The query as looked up: surrounding spaces dropped (pasted from a
    spreadsheet or a chat), nothing else changed."""
    if not isinstance(raw, str):
        raise InvalidInput("invalid_search", "The search must be text")
    query = raw.strip()
    if len(query) > MAX_QUERY:
        raise InvalidInput("search_too_long", f"A search is at most {MAX_QUERY} characters; paste one number or reference")
    if query and not safe_text(query):
        raise InvalidInput(
            "invalid_search", "The search contains control characters or invisible formatting; paste it again as plain text"
        )
    return query


class CheckoutSearch:
    def __init__(self, store: Store, *, max_hits: int = MAX_HITS) -> None:
        self.store = store
        self.max_hits = max_hits

    async def search(self, raw: Any) -> SearchResult:
        query = clean_query(raw)
        if not query:
            return SearchResult(query, [], False)
        limit = self.max_hits + 1
        hits: dict[str, Hit] = {}
        truncated = False
        order_matches: dict[str, list[tuple[str, str]]] = {}  # checkout id -> (field, out_trade_no)

        def note_orders(docs: list[dict[str, Any]], name: str) -> None:
            for doc in docs:
                order_matches.setdefault(doc["checkout_id"], []).append((name, doc["_id"]))

        with store_guard():
            if CHECKOUT_ID.fullmatch(query):
                doc = await self.store.get(CHECKOUTS, query)
                if doc is not None:
                    hits[doc["_id"]] = Hit(Checkout.from_doc(doc), ["checkout_id"])
            if REFERENCE.fullmatch(query):
                docs = await self.store.find(
                    CHECKOUTS, {"merchant_reference": query}, sort=[("created_at", -1)], limit=limit
                )
                truncated |= len(docs) > self.max_hits
                for doc in docs[: self.max_hits]:
                    hits.setdefault(doc["_id"], Hit(Checkout.from_doc(doc))).matched.append("merchant_reference")
            if OUT_TRADE_NO.fullmatch(query):
                doc = await self.store.get(ORDERS, query)
                if doc is not None:
                    note_orders([doc], "out_trade_no")
            if TRANSACTION_ID.fullmatch(query):
                docs = await self.store.find(ORDERS, {"transaction_id": query}, limit=limit, fields=["checkout_id"])
                truncated |= len(docs) > self.max_hits
                note_orders(docs[: self.max_hits], "transaction_id")
            if OPENID.fullmatch(query):
                docs = await self.store.find(
                    ORDERS, {"openid": query}, sort=[("created_at", -1)], limit=limit, fields=["checkout_id"]
                )
                truncated |= len(docs) > self.max_hits
                note_orders(docs[: self.max_hits], "openid")
            if OUT_REFUND_NO.fullmatch(query):
                doc = await self.store.get(REFUNDS, query)
                if doc is not None:
                    order_matches.setdefault(doc["checkout_id"], []).append(("out_refund_no", doc.get("out_trade_no")))
            missing = sorted(set(order_matches) - set(hits))
            if missing:
                docs = await self.store.find(CHECKOUTS, {"_id": {"$in": missing}}, limit=0)
                for doc in docs:
                    hits[doc["_id"]] = Hit(Checkout.from_doc(doc))
        for checkout_id, matches in order_matches.items():
            hit = hits.get(checkout_id)
            if hit is None:
                continue  # an order whose checkout is gone (never, but not ours to invent)
            for name, out_trade_no in matches:
                if name not in hit.matched:
                    hit.matched.append(name)
                if out_trade_no and out_trade_no not in hit.out_trade_nos:
                    hit.out_trade_nos.append(out_trade_no)
        ordered = sorted(hits.values(), key=lambda h: (h.checkout.created_at, h.checkout.id), reverse=True)
        for hit in ordered:
            hit.matched.sort(key=FIELDS.index)
        return SearchResult(query, ordered[: self.max_hits], truncated or len(ordered) > self.max_hits)
