"""The operator's console under /status: search, a checkout's timeline, refund,
cancel, failed webhooks and their resend, a day's CSV export.

Behind the same admin authentication as /status (handlers/admin.py). Pages
are server-rendered and script-free, so the page CSP holds as is. Every
action is a POST that carries the XSRF token, checked here even where the
server's ``xsrf_cookies`` setting is off, and goes through service/console.py,
which records it (who, from where, when) before it is done. Refund and
cancel have a confirmation step: the first POST only shows what would
happen (or why it cannot), the second, with a one-time key, does it.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from service import daybook
from service.console import Operator, cancel_key, check_action_key, parse_day, refund_key, resend_key
from service.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError
from service.models import OPEN
from service.timeline import Money
from service.webhooks import FAILED
from wxpay.timeutil import CHINA_TZ

from .admin import AdminHandler
from .base import STATUS_BY_KIND
from .status import yuan

FAILED_LIST = 100


class ConsoleHandler(AdminHandler):
    def check_xsrf_cookie(self) -> None:
        super().check_xsrf_cookie()
        self._xsrf_checked = True

    async def prepare(self) -> None:
        await super().prepare()
        # Every action carries the form token, whatever server.xsrf_cookies says.
        if self.request.method == "POST" and not getattr(self, "_xsrf_checked", False):
            self.check_xsrf_cookie()
        else:
            self.xsrf_token  # every console page sets the token its forms (and the next page's) carry

    def operator(self) -> Operator:
        return Operator(self.admin_user[:64], self.client_ip())

    def form(self, name: str) -> str | None:
        """A form field exactly as sent (Tornado would strip and rewrite control characters)."""
        values = self.request.body_arguments.get(name)
        return self.decode_argument(values[-1], name=name) if values else None

    def page(self, template: str, status: int = 200, **values: Any) -> None:
        self.set_status(status)
        self.render(template, yuan=yuan, at=at, fact=fact, quote=quote, **values)

    async def done_record(self) -> dict[str, Any] | None:
        """The record of the action a redirect's ``?done=`` names (its outcome, shown once back on the page)."""
        key = self.get_query_argument("done", None)
        if key is None:
            return None
        try:
            return await self.services.audit.claimed(check_action_key(key))
        except InvalidInput:
            return None

    async def webhooks_page(self, *, status: int = 200, problem: ServiceError | None = None,
                            done: dict[str, Any] | None = None) -> None:
        events = await self.services.webhooks.list(state=FAILED, limit=FAILED_LIST)
        backlog = await self.services.webhooks.backlog()
        self.page("console_webhooks.html", status, events=events, backlog=backlog, problem=problem, done=done,
                  resend_key=resend_key, limit=FAILED_LIST)

    async def checkout_page(self, checkout_id: str, *, status: int = 200, problem: ServiceError | None = None,
                            done: dict[str, Any] | None = None, again: bool = False,
                            form: dict[str, str] | None = None) -> None:
        file = await self.services.timelines.of(checkout_id)
        refundable = file.checkout.refundable_fen
        self.page(
            "console_checkout.html", status, c=file.checkout, file=file, problem=problem, done=done, again=again,
            form=form or {"amount": yuan(refundable).lstrip("¥") if refundable else "", "reason": ""},
            can_cancel=file.checkout.status == OPEN, failed=FAILED, resend_key=resend_key,
        )


def at(moment: datetime | None) -> str:
    """China time, which the merchant's own records and WeChat's bills use."""
    if moment is None:
        return "—"
    return moment.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def fact(value: Any) -> str:
    if isinstance(value, Money):
        return f"{yuan(value.fen)} ({value.fen} fen)"
    if isinstance(value, datetime):
        return at(value) + " China time"
    return str(value)


def status_of(exc: ServiceError) -> int:
    return STATUS_BY_KIND.get(exc.kind, 400)


class SearchHandler(ConsoleHandler):
    async def get(self) -> None:
        values = self.request.query_arguments.get("q")  # as sent: Tornado's getter would rewrite control characters
        query = self.decode_argument(values[-1], name="q") if values else ""
        try:
            result = await self.services.search.search(query)
        except ServiceError as exc:
            self.page("console_search.html", status_of(exc), query=query[:128], result=None, problem=exc)
            return
        self.page("console_search.html", query=result.query, result=result, problem=None)


class CheckoutPageHandler(ConsoleHandler):
    async def get(self, checkout_id: str) -> None:
        done = await self.done_record()
        if done is not None and done.get("checkout_id") != checkout_id:
            done = None  # another checkout's action: not this page's news
        again = done is not None and self.get_query_argument("again", None) == "1"
        try:
            await self.checkout_page(checkout_id, done=done, again=again)
        except NotFound as exc:
            self.page("console_search.html", 404, query=checkout_id[:128], result=None, problem=exc)


class RefundReviewHandler(ConsoleHandler):
    """Step one: what the refund would be, or why it cannot be made. Nothing is done."""

    async def post(self, checkout_id: str) -> None:
        amount, reason = self.form("amount"), self.form("reason")
        try:
            checkout, fen, clean_reason = await self.services.console.preview_refund(checkout_id, amount, reason)
        except NotFound as exc:
            self.page("console_search.html", 404, query=checkout_id[:128], result=None, problem=exc)
            return
        except ServiceError as exc:
            await self.checkout_page(checkout_id, status=status_of(exc), problem=exc,
                                     form={"amount": (amount or "")[:32], "reason": (reason or "")[:200]})
            return
        self.page("console_confirm.html", action="refund", c=checkout, amount_fen=fen, reason=clean_reason,
                  key=refund_key(checkout, fen, clean_reason))


class RefundConfirmHandler(ConsoleHandler):
    async def post(self, checkout_id: str) -> None:
        try:
            done = await self.services.console.refund(
                self.form("key"), checkout_id, self.form("amount_fen"), self.form("reason"), self.operator()
            )
        except NotFound as exc:
            self.page("console_search.html", 404, query=checkout_id[:128], result=None, problem=exc)
            return
        except ServiceError as exc:
            await self.checkout_page(checkout_id, status=status_of(exc), problem=exc)
            return
        self.redirect(_after(checkout_id, done.key, done.first), status=303)


class CancelReviewHandler(ConsoleHandler):
    async def post(self, checkout_id: str) -> None:
        try:
            checkout = await self.services.checkouts.get(checkout_id)
        except NotFound as exc:
            self.page("console_search.html", 404, query=checkout_id[:128], result=None, problem=exc)
            return
        if checkout.status != OPEN:
            exc = Conflict("checkout_not_open", f"Only an open checkout can be cancelled (this one is {checkout.status})"
                           + ("; refund it instead" if checkout.refundable_fen else ""))
            await self.checkout_page(checkout_id, status=409, problem=exc)
            return
        orders = await self.services.orders.for_checkout(checkout.id)
        self.page("console_confirm.html", action="cancel", c=checkout, orders=orders, key=cancel_key(checkout))


class CancelConfirmHandler(ConsoleHandler):
    async def post(self, checkout_id: str) -> None:
        try:
            done = await self.services.console.cancel(self.form("key"), checkout_id, self.operator())
        except NotFound as exc:
            self.page("console_search.html", 404, query=checkout_id[:128], result=None, problem=exc)
            return
        except ServiceError as exc:
            await self.checkout_page(checkout_id, status=status_of(exc), problem=exc)
            return
        self.redirect(_after(checkout_id, done.key, done.first), status=303)


class WebhooksPageHandler(ConsoleHandler):
    async def get(self) -> None:
        await self.webhooks_page(done=await self.done_record())


class ResendHandler(ConsoleHandler):
    async def post(self, event_id: str) -> None:
        back = self.form("back")
        try:
            done = await self.services.console.resend(self.form("key"), event_id, self.operator())
        except ServiceError as exc:
            if back and back.startswith("co_"):
                try:
                    await self.checkout_page(back, status=status_of(exc), problem=exc)
                    return
                except NotFound:
                    pass
            await self.webhooks_page(status=status_of(exc), problem=exc)
            return
        checkout_id = (done.record or {}).get("checkout_id")
        if back and back == checkout_id:
            self.redirect(_after(checkout_id, done.key, done.first), status=303)
        else:
            self.redirect(f"/status/webhooks?done={quote(done.key)}", status=303)


# -- the export --------------------------------------------------------------------

COLUMNS = (
    "kind", "time_utc", "time_china", "amount_fen", "state", "checkout_id", "merchant_reference", "out_trade_no",
    "transaction_id", "trade_type", "out_refund_no", "refund_id", "refund_kind", "refund_succeeded_utc",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def cell(value: Any) -> Any:
    """A CSV cell no spreadsheet runs as a formula: text that starts like one
    gets a leading apostrophe (integers stay numbers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return utc_text(value)
    text = str(value)
    # Leading spaces too: some spreadsheets trim a cell before reading it (" =1+2" is a merchant_reference).
    return "'" + text if text.lstrip(" ").startswith(FORMULA_START) else text


def utc_text(moment: datetime) -> str:
    """One spelling for every instant in the file: UTC, milliseconds (what the store keeps), ``Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class ExportHandler(ConsoleHandler):
    """One China day's payments, then its refunds (service/daybook.py's rule), as CSV."""

    # A browser says where a request came from; another site's <img> or link must not make the
    # admin's browser (holding its Basic credentials) scan a day and write an audit record.
    SAME_SITE = ("same-origin", "none")  # our own page's form; typed or bookmarked (curl sends none)

    async def get(self) -> None:
        console = self.services.console
        try:
            if self.request.headers.get("Sec-Fetch-Site", "none") not in self.SAME_SITE:
                raise Forbidden("cross_site_export", "The export is only made from the console's own page: "
                                "open /status and use its Export form.")
            day = parse_day(self.get_query_argument("day", ""), today=console.today())
        except ServiceError as exc:
            self.page("console_search.html", STATUS_BY_KIND.get(exc.kind, 400), query="", result=None, problem=exc)
            return
        await console.exported(day, self.operator())
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="wxpay-{day.isoformat()}-china-day.csv"')
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        async for rows in daybook.lines(self.services.store, day):
            for r in rows:
                writer.writerow([cell(v) for v in (
                    r.kind, r.at, r.at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"), r.amount_fen, r.state,
                    r.checkout_id, r.merchant_reference, r.out_trade_no, r.transaction_id, r.trade_type,
                    r.out_refund_no, r.refund_id, r.refund_kind, r.succeeded_at,
                )])
            self.write(buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
            await self.flush()
        self.write(buffer.getvalue())
        self.finish()


def _after(checkout_id: str, key: str, first: bool) -> str:
    return f"/status/checkouts/{quote(checkout_id)}?done={quote(key)}" + ("" if first else "&again=1")


def routes() -> list[tuple[str, type, dict]]:
    cid = r"([^/]+)"
    return [
        (r"/status/search", SearchHandler, {}),
        (rf"/status/checkouts/{cid}", CheckoutPageHandler, {}),
        (rf"/status/checkouts/{cid}/refund", RefundReviewHandler, {}),
        (rf"/status/checkouts/{cid}/refund/confirm", RefundConfirmHandler, {}),
        (rf"/status/checkouts/{cid}/cancel", CancelReviewHandler, {}),
        (rf"/status/checkouts/{cid}/cancel/confirm", CancelConfirmHandler, {}),
        (r"/status/webhooks", WebhooksPageHandler, {}),
        (r"/status/webhooks/([^/]+)/resend", ResendHandler, {}),
        (r"/status/export\.csv", ExportHandler, {}),
    ]
