"""Refunds of paid checkouts, and the automatic refund of a double payment.

A refund is written first (state ``pending``), then its amount is reserved
on the checkout, then WeChat is asked (through the gateway: APIv2 over the
client certificate). Each step is idempotent by ``out_refund_no``, so a retried
request, a second process or the reconciler can repeat any of them:

- the refund document's ``_id`` *is* the ``out_refund_no`` (one refund per
  number, whoever asks twice);
- the reservation records the number in ``checkout.refund_nos`` in the
  same compare-and-set that raises ``refund_reserved_fen``, so it happens
  once and can never exceed the amount paid;
- WeChat itself refunds one ``out_refund_no`` once;
- the final outcome is folded into the checkout's figures once
  (``checkout.refunds_applied``), again in one compare-and-set.

Final states come from the refund notify (``service/refund_notify.py``) or
from the refund query the reconciler runs for refunds whose notify never
came. Every refund call is recorded in the audit trail. Every state move
is the lifecycle's (service/lifecycle.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from store.base import DuplicateKey, Store, find_every
from wxpay.errors import (
    BusinessError,
    ConfigError,
    RefundNotExistError,
    ReturnFailError,
    WxPayError,
)
from wxpay.gateway import PayGateway, RefundRequest

from .audit import Audit
from .checkouts import IDEMPOTENCY_KEY, CheckoutService
from .clock import utcnow
from .errors import Conflict, InvalidInput, NotFound, ServiceError, UpstreamError
from .guard import store_guard
from .lifecycle import CHECKOUT, REFUND, REFUNDABLE, Lifecycle
from .models import (
    CHECKOUTS,
    CLOSED,
    PARTIALLY_REFUNDED,
    REFUND_STATUS_MAP,
    REFUNDED,
    REFUNDS,
    R_CLOSED,
    R_FAILED,
    R_NEEDS_ATTENTION,
    R_PENDING,
    R_SUCCEEDED,
    Checkout,
    Order,
    Refund,
)
from .orders import OrderBook
from .outbox import Outbox
from .validation import json_object, matches, safe_text

log = logging.getLogger("wxpay_server.refunds")

MAX_REFUNDS = 50  # WeChat's limit of partial refunds per order
OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
REASON_MAX_CHARS = 80  # WeChat's refund_desc: shown to the shopper
FIELDS = frozenset({"amount_fen", "out_refund_no", "reason"})
DOUBLE_REASON = "Duplicate payment refunded automatically"
CLOSED_REASON = "Order closed before payment; refunded automatically"
_CAS_TRIES = 20


def new_out_refund_no() -> str:
    return "R" + secrets.token_hex(15)


def key_out_refund_no(checkout_id: str, key: str) -> str:
    """The same Idempotency-Key on the same checkout always names the same refund."""
    return "K" + hashlib.sha256(f"{checkout_id}\n{key}".encode()).hexdigest()[:40]


def double_payment_refund_no(out_trade_no: str) -> str:
    """Deterministic, so however often the extra payment is seen it is refunded once."""
    return "D" + out_trade_no


def _expect_value(doc: Mapping[str, Any], name: str) -> Any:
    """A compare-and-set condition on a counter that may be absent in old documents."""
    return doc[name] if name in doc else {"$exists": False}


class RefundService:
    def __init__(
        self,
        store: Store,
        orders: OrderBook,
        checkouts: CheckoutService,
        gateway: PayGateway,
        lifecycle: Lifecycle,
        outbox: Outbox,
        audit: Audit,
        *,
        notify_url: str,
        query_after: timedelta = timedelta(seconds=60),
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.orders = orders
        self.checkouts = checkouts
        self.gateway = gateway
        self.lifecycle = lifecycle
        self.outbox = outbox
        self.audit = audit
        self.notify_url = notify_url
        self.query_after = query_after
        self.now = now

    # -- reading ----------------------------------------------------------------

    async def get(self, out_refund_no: str) -> Refund | None:
        with store_guard():
            doc = await self.store.get(REFUNDS, out_refund_no)
        return Refund.from_doc(doc) if doc else None

    async def for_checkout(self, checkout_id: str) -> list[Refund]:
        with store_guard():
            docs = await find_every(self.store, REFUNDS, {"checkout_id": checkout_id}, sort=[("created_at", 1)])
        return [Refund.from_doc(d) for d in docs]

    async def list_for(self, checkout_id: str) -> list[Refund]:
        await self.checkouts.get(checkout_id)  # 404 for an unknown checkout
        return await self.for_checkout(checkout_id)

    # -- the merchant's request ----------------------------------------------------

    def validate(self, data: Any) -> dict[str, Any]:
        data = json_object(data, FIELDS)
        amount = data.get("amount_fen")
        if type(amount) is not int or amount <= 0:
            raise InvalidInput("invalid_amount", "amount_fen must be a positive integer number of fen (1 yuan = 100 fen)")
        out: dict[str, Any] = {"amount_fen": amount}
        no = data.get("out_refund_no")
        if no is not None:
            if not matches(OUT_REFUND_NO, no):
                raise InvalidInput(
                    "invalid_out_refund_no", "out_refund_no must be 1-64 characters of letters, digits and _-|*@"
                )
            out["out_refund_no"] = no
        reason = data.get("reason")
        if reason is not None:
            if not safe_text(reason) or len(reason) > REASON_MAX_CHARS:
                raise InvalidInput(
                    "invalid_reason",
                    f"reason must be one line of at most {REASON_MAX_CHARS} characters (shown to the shopper), without "
                    "control characters, bidi overrides, line separators or unpaired surrogates",
                )
            out["reason"] = reason or None
        return out

    async def create(
        self, checkout_id: str, data: Any, *, idempotency_key: str | None = None
    ) -> tuple[Refund, bool]:
        """Refund part or all of a paid checkout; ``(refund, created)``.

        The same ``out_refund_no`` (or Idempotency-Key) with the same request
        returns the first refund instead of refunding twice; with another
        amount it is a conflict.
        """
        fields = self.validate(data)
        checkout = await self.checkouts.get(checkout_id)
        if idempotency_key is not None and not matches(IDEMPOTENCY_KEY, idempotency_key):
            raise InvalidInput("invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters")
        out_refund_no = fields.get("out_refund_no") or (
            key_out_refund_no(checkout.id, idempotency_key) if idempotency_key else new_out_refund_no()
        )
        fingerprint = hashlib.sha256(
            json.dumps({"checkout": checkout.id, "amount_fen": fields["amount_fen"], "reason": fields.get("reason")},
                       sort_keys=True).encode()
        ).hexdigest()
        existing = await self.get(out_refund_no)
        if existing is not None:
            return await self._repeat(existing, fingerprint), False
        self._check_refundable(checkout, fields["amount_fen"])
        order = await self.orders.require(checkout.paid_out_trade_no or "")
        refund = Refund(
            out_refund_no=out_refund_no,
            checkout_id=checkout.id,
            out_trade_no=order.out_trade_no,
            appid=order.appid,
            mch_id=order.mch_id,
            amount_fen=fields["amount_fen"],
            total_fee=order.total_fee,
            reason=fields.get("reason"),
            request_fingerprint=fingerprint,
            created_at=self.now(),
            updated_at=self.now(),
            # If this process stops before WeChat answers, the reconciler takes over.
            next_check_at=self.now() + self.query_after,
        )
        try:
            with store_guard():
                await self.store.insert(REFUNDS, refund.to_doc())
        except DuplicateKey:  # a concurrent twin won
            twin = await self.get(out_refund_no)
            if twin is None:
                raise Conflict("refund_in_progress", "A refund with this number is being created; retry") from None
            return await self._repeat(twin, fingerprint), False
        try:
            await self._reserve(refund)
        except ServiceError:
            await self.lifecycle.discard(REFUND, out_refund_no, where={"state": R_PENDING, "submitted": False})
            raise
        return await self.submit(refund), True

    async def preview(self, checkout_id: str, data: Any) -> tuple[Checkout, dict[str, Any]]:
        """What :meth:`create` would check before refunding, and nothing else:
        the validated request and the checkout as it is now, or the error
        ``create`` would raise (the console's confirmation step asks this)."""
        fields = self.validate(data)
        checkout = await self.checkouts.get(checkout_id)
        self._check_refundable(checkout, fields["amount_fen"])
        return checkout, fields

    async def _repeat(self, existing: Refund, fingerprint: str) -> Refund:
        if existing.request_fingerprint != fingerprint:
            raise Conflict(
                "out_refund_no_reused",
                "This out_refund_no (or Idempotency-Key) was used for a different refund; use a new one",
                out_refund_no=existing.out_refund_no,
            )
        if existing.state == R_PENDING and not existing.submitted:
            await self._reserve(existing)  # an earlier attempt may have stopped before it
            return await self.submit(existing)
        return existing

    @staticmethod
    def _check_refundable(checkout: Checkout, amount: int) -> None:
        if checkout.status not in REFUNDABLE and checkout.status != REFUNDED:
            raise Conflict("checkout_not_paid", f"Only a paid checkout can be refunded (this one is {checkout.status})")
        if amount > checkout.refundable_fen:
            raise InvalidInput(
                "refund_exceeds_remaining",
                f"amount_fen {amount} is more than the {checkout.refundable_fen} fen still refundable "
                f"(paid {checkout.amount_fen}, already refunded or being refunded {checkout.refund_reserved_fen})",
                remaining_fen=checkout.refundable_fen,
            )
        if len(checkout.refund_nos) >= MAX_REFUNDS:
            raise Conflict("too_many_refunds", f"WeChat allows at most {MAX_REFUNDS} refunds of one payment")

    async def _reserve(self, refund: Refund) -> None:
        """Hold ``refund.amount_fen`` against the checkout, once, within what was paid."""
        for _ in range(_CAS_TRIES):
            with store_guard():
                doc = await self.store.get(CHECKOUTS, refund.checkout_id)
            if doc is None:
                raise NotFound("checkout_not_found", "No such checkout")
            checkout = Checkout.from_doc(doc)
            if refund.out_refund_no in checkout.refund_nos:
                return
            self._check_refundable(checkout, refund.amount_fen)
            moved = await self.lifecycle.update(
                CHECKOUT, checkout.id,
                where={"status": {"$in": sorted(REFUNDABLE)},
                       "refund_reserved_fen": _expect_value(doc, "refund_reserved_fen")},
                refund_reserved_fen=checkout.refund_reserved_fen + refund.amount_fen,
                refund_nos=[*checkout.refund_nos, refund.out_refund_no],
                updated_at=self.now(),
            )
            if moved is not None:
                return
        raise Conflict("refund_busy", "The checkout is being changed by another request; retry")

    # -- talking to WeChat ----------------------------------------------------------

    async def submit(self, refund: Refund) -> Refund:
        """Ask WeChat (again) for ``refund``; same out_refund_no, so never twice."""
        started = time.perf_counter()
        verdict, err = "accepted", None
        try:
            result = await self.gateway.refund(RefundRequest(
                out_refund_no=refund.out_refund_no,
                out_trade_no=refund.out_trade_no,
                appid=refund.appid,
                total_fen=refund.total_fee,
                refund_fen=refund.amount_fen,
                notify_url=self.notify_url,
                reason=refund.reason,
            ))
        except (BusinessError, ReturnFailError, ConfigError) as exc:
            if exc.retryable:
                verdict, err = "unknown", exc
            else:
                verdict, err = "rejected", exc
        except WxPayError as exc:  # transport, unverifiable reply: outcome unknown
            verdict, err = "unknown", exc
        await self.audit.record(
            "refund_call",
            verdict=verdict,
            out_refund_no=refund.out_refund_no,
            out_trade_no=refund.out_trade_no,
            checkout_id=refund.checkout_id,
            amount_fen=refund.amount_fen,
            refund_kind=refund.kind,
            error=err.code if err else None,
            err_code=getattr(err, "err_code", None),
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        now = self.now()
        if verdict == "accepted":
            doc = await self.lifecycle.update(
                REFUND, refund.out_refund_no, where={"out_refund_no": refund.out_refund_no},
                submitted=True, refund_id=result.refund_id, updated_at=now, next_check_at=now + self.query_after,
            )
            return Refund.from_doc(doc) if doc else refund
        if verdict == "unknown":
            log.warning("refund %s: outcome unknown (%s); the reconciler will ask", refund.out_refund_no, err.code)
            doc = await self.lifecycle.update(
                REFUND, refund.out_refund_no, where={"state": R_PENDING},
                next_check_at=now + self.query_after, updated_at=now,
            )
            return Refund.from_doc(doc) if doc else refund
        assert err is not None
        code = getattr(err, "err_code", None) or err.code
        failed = await self.settle(refund, R_FAILED, failure=code)
        raise UpstreamError(
            "refund_rejected", f"WeChat refused the refund: {err.message}",
            out_refund_no=refund.out_refund_no, wechat_code=code, state=(failed or refund).state,
        )

    # -- outcomes -------------------------------------------------------------------

    async def settle(
        self,
        refund: Refund,
        state: str,
        *,
        refund_id: str | None = None,
        succeeded_at: datetime | None = None,
        wechat_status: str | None = None,
        failure: str | None = None,
    ) -> Refund | None:
        """Compare-and-set ``refund`` into ``state`` and fold it into the checkout.

        Returns the moved refund, or ``None`` when it had already moved (a
        repeat notify, a racing reconciler).
        """
        now = self.now()
        changes: dict[str, Any] = {"settled_at": now, "applied": False}
        if state != R_NEEDS_ATTENTION:
            changes["next_check_at"] = None
        else:  # keep asking: a CHANGE may still end
            changes["next_check_at"] = now + timedelta(hours=1)
        for name, value in (("refund_id", refund_id), ("succeeded_at", succeeded_at),
                            ("wechat_status", wechat_status), ("failure", failure)):
            if value is not None:
                changes[name] = value
        if state == R_SUCCEEDED and "succeeded_at" not in changes:
            changes["succeeded_at"] = now
        moved = await self.lifecycle.move_refund(refund, state, **changes)
        if moved is None:
            return None
        log.info("refund %s is %s", moved.out_refund_no, state)
        await self.apply(moved)
        return moved

    async def apply(self, refund: Refund) -> None:
        """Fold a refund's outcome into its checkout, once (``refunds_applied``)."""
        if refund.state in (R_PENDING, R_NEEDS_ATTENTION) or refund.applied:
            return
        status_after = None
        if refund.kind == "merchant":
            status_after = await self._apply_to_checkout(refund)
        await self.lifecycle.update(
            REFUND, refund.out_refund_no, where={"state": refund.state},
            applied=True, **({"checkout_status_after": status_after} if status_after else {}),
        )
        if refund.state == R_SUCCEEDED and refund.kind == "merchant":
            await self.outbox.announce(refund.checkout_id)

    async def _apply_to_checkout(self, refund: Refund) -> str | None:
        for _ in range(_CAS_TRIES):
            with store_guard():
                doc = await self.store.get(CHECKOUTS, refund.checkout_id)
            if doc is None:
                return None
            checkout = Checkout.from_doc(doc)
            if refund.out_refund_no in checkout.refunds_applied:
                return None
            now = self.now()
            changes: dict[str, Any] = {
                "refunds_applied": [*checkout.refunds_applied, refund.out_refund_no], "updated_at": now,
            }
            expect: dict[str, Any] = {
                "refunded_fen": _expect_value(doc, "refunded_fen"),
                "refund_reserved_fen": _expect_value(doc, "refund_reserved_fen"),
            }
            status = None
            if refund.state == R_SUCCEEDED:
                refunded = checkout.refunded_fen + refund.amount_fen
                status = REFUNDED if refunded >= checkout.amount_fen else PARTIALLY_REFUNDED
                changes["refunded_fen"] = refunded
                moved = await self.lifecycle.move(CHECKOUT, checkout.id, status, where=expect, **changes)
            else:
                if refund.out_refund_no in checkout.refund_nos:  # closed or failed: release the hold
                    changes["refund_reserved_fen"] = max(0, checkout.refund_reserved_fen - refund.amount_fen)
                moved = await self.lifecycle.update(CHECKOUT, checkout.id, where=expect, **changes)
            if moved is not None:
                return status
        raise Conflict("refund_busy", "The checkout is being changed by another request; retry")

    # -- double payment ----------------------------------------------------------------

    async def double_paid(self, order: Order, checkout: Checkout) -> Refund:
        """A payment its checkout cannot keep (service/payments.py tells): give it back."""
        return await self.refund_double_payment(
            order, reason=CLOSED_REASON if checkout.status == CLOSED else DOUBLE_REASON
        )

    async def refund_double_payment(self, order: Order, *, reason: str = "") -> Refund:
        """Give a payment the checkout cannot keep (it was paid already, or
        closed) back in full, once."""
        no = double_payment_refund_no(order.out_trade_no)
        existing = await self.get(no)
        if existing is None:
            refund = Refund(
                out_refund_no=no, checkout_id=order.checkout_id, out_trade_no=order.out_trade_no,
                appid=order.appid, mch_id=order.mch_id, amount_fen=order.total_fee, total_fee=order.total_fee,
                kind="double_payment", reason=reason or DOUBLE_REASON,
                created_at=self.now(), updated_at=self.now(), next_check_at=self.now() + self.query_after,
            )
            try:
                with store_guard():
                    await self.store.insert(REFUNDS, refund.to_doc())
            except DuplicateKey:
                refund = await self.get(no) or refund
            else:
                await self.audit.record(
                    "double_payment_refund", verdict="created", checkout_id=order.checkout_id,
                    out_trade_no=order.out_trade_no, out_refund_no=no, amount_fen=order.total_fee,
                )
            existing = refund
        if existing.state == R_PENDING and not existing.submitted:
            try:
                return await self.submit(existing)
            except UpstreamError:
                log.error("double payment refund %s refused by WeChat; needs a person", no)
        return existing

    # -- the reconciler's part ------------------------------------------------------------

    async def due(self, now: datetime, limit: int = 100) -> list[Refund]:
        with store_guard():
            docs = await self.store.find(
                REFUNDS, {"state": {"$in": [R_PENDING, R_NEEDS_ATTENTION]}, "next_check_at": {"$lte": now}},
                sort=[("next_check_at", 1)], limit=limit,
            )
        return [Refund.from_doc(d) for d in docs]

    async def unapplied(self, limit: int = 100) -> list[Refund]:
        with store_guard():
            docs = await self.store.find(
                REFUNDS, {"applied": False, "state": {"$in": [R_SUCCEEDED, R_CLOSED, R_FAILED]}}, limit=limit
            )
        return [Refund.from_doc(d) for d in docs]

    async def check(self, refund: Refund) -> str:
        """Ask WeChat how ``refund`` ended; resubmit one it never got."""
        if not refund.submitted and refund.state == R_PENDING:
            if refund.kind == "merchant":
                await self._reserve(refund)
            try:
                refund = await self.submit(refund)
            except UpstreamError:
                return "rejected"
        try:
            async with self.audit.wechat_call(
                "query_refund", out_refund_no=refund.out_refund_no, out_trade_no=refund.out_trade_no,
                api_version=self.gateway.api_version,
            ) as call:
                facts = await self.gateway.query_refund(refund.out_refund_no, appid=refund.appid)
                call.result = facts.status
        except RefundNotExistError:
            await self._reschedule(refund)
            return "not_at_wechat"
        state = REFUND_STATUS_MAP.get(facts.status)
        if state is None or state == refund.state:
            await self._reschedule(refund)
            return facts.status.lower()
        if facts.refund_fen != refund.amount_fen:
            log.error("WeChat reports %s fen for refund %s (ours %s)", facts.refund_fen, refund.out_refund_no,
                      refund.amount_fen)
            await self.audit.record("refund_query", verdict="amount_mismatch", out_refund_no=refund.out_refund_no)
            await self._reschedule(refund)
            return "amount_mismatch"
        moved = await self.settle(
            refund, state, refund_id=facts.refund_id, succeeded_at=facts.succeeded_at, wechat_status=facts.status
        )
        if moved is not None:
            await self.audit.record("refund_query", verdict=state, out_refund_no=refund.out_refund_no)
        return state

    async def _reschedule(self, refund: Refund) -> None:
        delay = timedelta(minutes=min(30, 2 ** min(refund.checks, 5)))
        await self.lifecycle.update(
            REFUND, refund.out_refund_no, where={"state": refund.state},
            checks=refund.checks + 1, next_check_at=self.now() + delay, updated_at=self.now(),
        )

