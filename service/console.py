"""The operator's actions in the console (/status): refund, cancel, resend a webhook, export a day.

Each goes through the use case the merchant API uses (``RefundService.create``,
``Closing.cancel``, ``Webhooks.resend``): the console adds no path of its own
to money or state. What it adds is the record: every action is written to
the audit trail *before* it is done (:meth:`Audit.claim`: who, from where,
what, when), and how it ended afterwards. An action the store cannot record
is not done. A confirmation form carries a key; submitting it twice (a
double click, a reload, a second tab) finds the key's record and acts once.

A confirmation form's key is derived from the state it confirms
(:func:`refund_key`): whoever sends that form, however often, acts once.

Amounts are typed in yuan (what an operator reads on a receipt) and become
integer fen here, exactly, or are refused with a code.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Awaitable, Callable, Mapping, TypeVar

from .audit import CONSOLE, Audit
from .clock import utcnow
from .closing import Closing
from .daybook import china_day_of
from .errors import Conflict, InvalidInput, ServiceError
from .models import Checkout, Refund
from .refunds import RefundService
from .webhooks import Webhooks

T = TypeVar("T")

ACTION_KEY = re.compile(r"[A-Za-z0-9_-]{20,64}")
YUAN = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,2})?")  # ASCII digits: re's [0-9] is, \d would not be
GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]{1,2})?")  # 1,234.50: commas only between thousands
FEN = re.compile(r"[0-9]{1,12}")
EARLIEST_DAY = date(2000, 1, 1)


def new_action_key() -> str:
    """A key for an action no form repeats (an export)."""
    return secrets.token_urlsafe(24)


def _state_key(*parts: Any) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode("utf-8", "surrogatepass")).hexdigest()[:40]


def refund_key(checkout: Checkout, amount_fen: int, reason: str | None) -> str:
    """The key a refund's confirmation form carries: the same refund of the
    checkout *as it stands* always gets the same key, so a second tab, a
    reload or a back-and-resubmit of a confirmation acts once; after a
    refund the checkout has moved on, so a new confirmation gets a new key."""
    return _state_key("refund", checkout.id, amount_fen, reason or "", checkout.refund_reserved_fen,
                      len(checkout.refund_nos))


def cancel_key(checkout: Checkout) -> str:
    return _state_key("cancel", checkout.id, checkout.status, checkout.orders_made)


def resend_key(event: Mapping[str, Any]) -> str:
    """A failed event's resend button: the same until the event is tried again.
    The last attempt's time, not the history's length: the history keeps only the
    last 10 attempts, so its length stops changing and a second resend would read
    as a repeat of the first."""
    history = event.get("history") or [{}]
    return _state_key("resend", event.get("id"), event.get("attempts"), len(history), history[-1].get("at"),
                      event.get("state"))


def check_action_key(key: Any) -> str:
    if not isinstance(key, str) or not ACTION_KEY.fullmatch(key):
        raise InvalidInput("invalid_action_key", "The form's key is missing or damaged; open the page again and retry")
    return key


def parse_yuan(text: Any) -> int:
    """``"12.5"`` -> 1250 fen, exactly; anything else is refused."""
    raw = text.strip().removeprefix("¥").strip() if isinstance(text, str) else ""
    if "," in raw:
        if not GROUPED.fullmatch(raw):  # "1,50" is ¥1.50 to half the world and ¥150 to the other half
            raise InvalidInput(
                "invalid_amount", "A comma may only separate thousands (1,234.50); write decimals with a point (1.50)"
            )
        raw = raw.replace(",", "")
    if not YUAN.fullmatch(raw):
        raise InvalidInput(
            "invalid_amount", "Type the amount in yuan, digits with at most two decimals (for example 12.50)"
        )
    try:
        fen = int(Decimal(raw) * 100)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise InvalidInput("invalid_amount", "Type the amount in yuan (for example 12.50)") from None
    if fen <= 0:
        raise InvalidInput("invalid_amount", "The amount must be more than zero")
    return fen


def parse_day(text: Any, *, today: date) -> date:
    """A China calendar day ``YYYY-MM-DD`` between 2000-01-01 and tomorrow."""
    if text is None or text == "":
        return today
    try:
        day = date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidInput("invalid_day", "The day must be a date written YYYY-MM-DD (a China calendar day)")
    if not EARLIEST_DAY <= day <= today + timedelta(days=1):
        raise InvalidInput("invalid_day", f"The day must be between {EARLIEST_DAY.isoformat()} and tomorrow")
    return day


@dataclass(frozen=True)
class Operator:
    """Who acts: the admin's sign-in name and the address the request came from."""

    user: str
    source: str


@dataclass(frozen=True)
class Done:
    """What an action came to: ``first`` is False when the key had acted already."""

    key: str
    first: bool
    record: dict[str, Any] | None = None
    refund: Refund | None = None
    checkout: Checkout | None = None


class Console:
    def __init__(
        self, audit: Audit, refunds: RefundService, closing: Closing, webhooks: Webhooks,
        *, now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.audit = audit
        self.refunds = refunds
        self.closing = closing
        self.webhooks = webhooks
        self.now = now

    def today(self) -> date:
        return china_day_of(self.now())

    async def preview_refund(self, checkout_id: str, amount: Any, reason: Any) -> tuple[Checkout, int, str | None]:
        """The confirmation step: the refund as it would be made, or the error it would meet."""
        fen = parse_yuan(amount)
        try:
            checkout, fields = await self.refunds.preview(checkout_id, _refund_body(fen, reason))
        except InvalidInput as exc:
            if exc.code != "refund_exceeds_remaining":
                raise
            checkout = await self.refunds.checkouts.get(checkout_id)
            raise InvalidInput(
                exc.code,
                f"{_yuan(fen)} is more than the {_yuan(checkout.refundable_fen)} still refundable (paid "
                f"{_yuan(checkout.amount_fen)}; {_yuan(checkout.refund_reserved_fen)} refunded or being refunded)",
                remaining_fen=checkout.refundable_fen,
            ) from None
        return checkout, fen, fields.get("reason")

    async def refund(self, key: Any, checkout_id: str, amount_fen: Any, reason: Any, who: Operator) -> Done:
        key = check_action_key(key)
        if type(amount_fen) is not int:
            amount_fen = _fen_field(amount_fen)
        body = _refund_body(amount_fen, reason)
        fields = self.refunds.validate(body)  # a malformed form is refused before anything is recorded
        checkout = await self.refunds.checkouts.get(checkout_id)  # an unknown checkout too
        await self._still_current(key, refund_key(checkout, amount_fen, fields.get("reason")), "refund")
        if not await self.audit.claim(key, action="refund", checkout_id=checkout_id, amount_fen=amount_fen,
                                      user=who.user, source=who.source):
            return Done(key, False, await self.audit.claimed(key))
        refund, _created = await self._run_claimed(
            key, lambda: self.refunds.create(checkout_id, body, idempotency_key="console-" + key))
        await self.audit.conclude(key, "done", out_refund_no=refund.out_refund_no, out_trade_no=refund.out_trade_no,
                                  refund_state=refund.state)
        return Done(key, True, await self.audit.claimed(key), refund=refund)

    async def cancel(self, key: Any, checkout_id: str, who: Operator) -> Done:
        key = check_action_key(key)
        await self._still_current(key, cancel_key(await self.closing.checkouts.get(checkout_id)), "cancel")
        if not await self.audit.claim(key, action="cancel", checkout_id=checkout_id, user=who.user, source=who.source):
            return Done(key, False, await self.audit.claimed(key))
        checkout = await self._run_claimed(key, lambda: self.closing.cancel(checkout_id))
        await self.audit.conclude(key, "done", status=checkout.status)
        return Done(key, True, await self.audit.claimed(key), checkout=checkout)

    async def _run_claimed(self, key: str, act: Callable[[], Awaitable[T]]) -> T:
        """Do a claimed action; a failure frees its claim with the code, so the form may be sent again."""
        try:
            return await act()
        except ServiceError as exc:
            await self.audit.release(key, exc.code, message=exc.message)
            raise
        except Exception:
            await self.audit.release(key, "internal_error")
            raise

    async def _still_current(self, key: str, current: str, action: str, subject: str = "checkout") -> None:
        """A confirmation acts on the state it showed, or not at all: a form
        whose checkout or event moved since (a refund from the merchant API or
        another tab, a payment started, a delivery tried) or whose hidden fields were edited is
        refused, unless its key has acted already (then it is a repeat, and
        the claim says so)."""
        if key == current or await self.audit.claimed(key) is not None:
            return
        raise Conflict(
            "confirmation_stale",
            f"The {subject} changed since this {action} was shown (or the form was altered); nothing was done. "
            f"Open the {subject} again and {action} it as it stands now",
        )

    async def resend(self, key: Any, event_id: str, who: Operator) -> Done:
        key = check_action_key(key)
        await self._still_current(key, resend_key(await self.webhooks.get(event_id)), "resend", "event")
        if not await self.audit.claim(key, action="resend_webhook", event_id=event_id[:80], user=who.user,
                                      source=who.source):
            return Done(key, False, await self.audit.claimed(key))
        event = await self._run_claimed(key, lambda: self.webhooks.resend(event_id))
        await self.audit.conclude(key, "done", checkout_id=event.get("checkout_id"))
        return Done(key, True, await self.audit.claimed(key))

    async def exported(self, day: date, who: Operator) -> None:
        """An export is recorded too (it carries every payment of a day), before it is sent."""
        key = new_action_key()
        await self.audit.claim(key, action="export", day=day.isoformat(), user=who.user, source=who.source)
        await self.audit.conclude(key, "done")


def _yuan(fen: int) -> str:
    whole, cents = divmod(fen, 100)
    return f"¥{whole:,}.{cents:02d}"


def _refund_body(fen: int, reason: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"amount_fen": fen}
    if isinstance(reason, str) and reason.strip():
        body["reason"] = reason.strip()
    elif reason not in (None, ""):
        body["reason"] = reason
    return body


def _fen_field(value: Any) -> int:
    """The confirmation form's hidden amount (fen, as the preview fixed it)."""
    if isinstance(value, str) and FEN.fullmatch(value):  # ASCII digits only: int() takes "１００" too
        return int(value)
    raise InvalidInput("invalid_amount", "The form's amount is missing or damaged; open the refund form again")


__all__ = ["CONSOLE", "Console", "Done", "Operator", "cancel_key", "new_action_key", "parse_day", "parse_yuan",
           "refund_key", "resend_key"]
