"""The admin's views: /status (HTML), /status.json (scripts) and /metrics (Prometheus).

/status is also the console's home (handlers/console.py has the rest): its
search box, today's gross, refunded and net, and the day's export.

All three render the one dict ``service.status.collect`` returns, behind
admin authentication (handlers/admin.py).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from service.metrics import CONTENT_TYPE
from service.status import collect
from wxpay.causes import hint
from wxpay.timeutil import CHINA_TZ

from .admin import AdminHandler


class StatusPageHandler(AdminHandler):
    async def get(self) -> None:
        figures = await collect(self.services, version=self.settings.get("version", "?"))
        day = figures.get("money_today")  # the console's "today": gross, refunded, net (service/daybook.py)
        if not isinstance(day, dict) or "error" in day:
            day = None
        self.render(
            "status.html",
            f=figures,
            day=day,
            chart_svg=chart_svg(figures.get("chart") or {}),
            yuan=yuan,
            when=when,
            duration=duration,
            percent=percent,
            hint=hint,
        )


class StatusJsonHandler(AdminHandler):
    api = True

    async def get(self) -> None:
        self.write_json(await collect(self.services, version=self.settings.get("version", "?")))


class MetricsHandler(AdminHandler):
    api = True

    async def get(self) -> None:
        figures = await collect(self.services, version=self.settings.get("version", "?"), history=False)
        body = self.settings["metrics"].render(figures)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(body)


# -- formatting (also used by the template) ------------------------------------


def yuan(fen: int | None) -> str:
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def when(iso: str | None, *, with_date: bool = True) -> str:
    """China time, which is what the merchant's own records use."""
    if not iso:
        return "—"
    local = datetime.fromisoformat(iso).astimezone(CHINA_TZ)
    return local.strftime("%m-%d %H:%M:%S" if with_date else "%H:%M")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(abs(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m" if (hours or days) else f"{minutes}m {s}s")
    text = " ".join(parts)
    return f"{text} ago" if seconds < 0 else text


def percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


# -- the chart -------------------------------------------------------------------

ORDERS_FILL = "#2563eb"
PAID_FILL = "#0f7a3d"
NOTIFY_FILL = "#b45309"
REFUSED_FILL = "#b91c1c"


def chart_svg(chart: dict[str, Any]) -> str:
    """Bars per hour: orders (paid part darker) and notifies (refused part red).

    Server-rendered so the page needs no script; colours are presentation
    attributes, which the page's CSP allows where inline styles are not.
    """
    buckets = chart.get("buckets") or []
    if not buckets:
        return "<p class='muted'>No chart: the store did not answer.</p>"
    width, height, left, bottom, top = 420, 170, 30, 24, 10  # legible on a phone, capped in CSS on desktop
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([1] + [max(b["orders"], b["notifies"]) for b in buckets])
    step = plot_w / len(buckets)
    bar = max(2.0, step * 0.36)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / peak

    total_orders = sum(b["orders"] for b in buckets)
    total_notifies = sum(b["notifies"] for b in buckets)
    label = f"Orders and notifies per hour, last {len(buckets)} hours: {total_orders} orders, {total_notifies} notifies"
    parts = [
        f"<svg class='chart' viewBox='0 0 {width} {height}' role='img' aria-label={quoteattr(label)} "
        f"xmlns='http://www.w3.org/2000/svg' font-family='sans-serif' font-size='10'>",
        f"<title>{escape(label)}</title>",
        f"<line x1='{left}' y1='{y(0):.1f}' x2='{width - 8}' y2='{y(0):.1f}' stroke='#9ca3af'/>",
        f"<line x1='{left}' y1='{y(peak):.1f}' x2='{width - 8}' y2='{y(peak):.1f}' stroke='#e5e7eb'/>",
        f"<text x='{left - 4}' y='{y(peak) + 4:.1f}' text-anchor='end' fill='#374151'>{peak}</text>",
        f"<text x='{left - 4}' y='{y(0) + 4:.1f}' text-anchor='end' fill='#374151'>0</text>",
    ]
    for i, b in enumerate(buckets):
        x = left + i * step + (step - 2 * bar) / 2
        hour = when(b["hour"], with_date=False)
        tip = f"{hour}: {b['orders']} orders ({b['paid']} paid), {b['notifies']} notifies ({b['notifies_refused']} refused)"
        parts.append(f"<g><title>{escape(tip)}</title>")
        parts.append(_bar(x, bar, y(b["orders"]), y(0), ORDERS_FILL))
        parts.append(_bar(x, bar, y(b["paid"]), y(0), PAID_FILL))
        parts.append(_bar(x + bar, bar, y(b["notifies"]), y(0), NOTIFY_FILL))
        parts.append(_bar(x + bar, bar, y(b["notifies_refused"]), y(0), REFUSED_FILL))
        parts.append("</g>")
        if (len(buckets) - 1 - i) % 3 == 0 or len(buckets) <= 6:  # the latest hour is always labelled
            parts.append(
                f"<text x='{left + i * step + step / 2:.1f}' y='{height - 8}' text-anchor='middle' fill='#374151'>{hour}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _bar(x: float, w: float, y_top: float, y_base: float, fill: str) -> str:
    h = y_base - y_top
    if h <= 0:
        return ""
    return f"<rect x='{x:.1f}' y='{y_top:.1f}' width='{w:.1f}' height='{h:.1f}' fill='{fill}'/>"


def routes() -> list[tuple[str, type, dict]]:
    return [
        (r"/status", StatusPageHandler, {}),
        (r"/status\.json", StatusJsonHandler, {}),
        (r"/metrics", MetricsHandler, {}),
    ]
