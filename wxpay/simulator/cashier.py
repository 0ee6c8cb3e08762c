"""The simulated WeChat's own pages: the H5 (MWEB) cashier and the ``/_sim/pay`` page.

They look like the sandbox sheet the checkout page shows inside WeChat
(``web/sandbox/``): a phone-sized sheet marked SANDBOX with the merchant's
name, the amount, what is bought, and one big "pay" button over "cancel"
and "simulate a failure". The merchant's name is what the merchant told
WeChat (the H5 site's ``wap_name``/``app_name``), the line below the amount
the order's ``body``. Chinese, or English when the browser prefers it.

No script and no inline style: the stylesheet is served by the simulator
itself (``/_sim/cashier.css``, kept here so the simulator needs no data
files), under a CSP that allows nothing else. There is no ``form-action``:
paying redirects to the merchant's ``redirect_url``, which browsers check
against it.
"""
from __future__ import annotations

import html
import json
from typing import Any

import tornado.web

from .apihandler import SimHandler

CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"

TEXTS = {
    "zh": {
        "lang": "zh-CN", "title": "模拟微信支付", "badge": "SANDBOX",
        "note": "沙箱模式：这是模拟的微信 H5 收银台，不会真实扣款。",
        "pay": "确认支付", "cancel": "取消", "fail": "模拟支付失败", "userpaying": "模拟“用户支付中”",
        "refused": "无法支付", "result_ok": "支付成功", "result_cancel": "已取消支付", "result_fail": "支付失败",
        "result_userpaying": "用户支付中", "details": "模拟器的应答",
    },
    "en": {
        "lang": "en", "title": "Simulated WeChat Pay", "badge": "SANDBOX",
        "note": "Sandbox: this plays WeChat's H5 cashier; no real money moves.",
        "pay": "Pay", "cancel": "Cancel", "fail": "Simulate a failure", "userpaying": "Simulate \"still paying\"",
        "refused": "Cannot pay", "result_ok": "Payment successful", "result_cancel": "Payment cancelled",
        "result_fail": "Payment failed", "result_userpaying": "Still paying", "details": "The simulator's answer",
    },
}

STYLE = """\
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; min-height: 100vh; display: flex; flex-direction: column; justify-content: flex-end;
  background: #6b7280; color: #111827;
  font: 16px/1.5 -apple-system, BlinkMacSystemFont, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei",
  "Noto Sans CJK SC", "Segoe UI", sans-serif; }
.sheet { width: 100%; max-width: 30rem; margin: 0 auto; background: #fff; border-radius: 1rem 1rem 0 0;
  border-top: 6px solid #f59e0b; padding: 1rem 1rem 1.5rem; text-align: center; }
@media (min-width: 40rem) { body { justify-content: center; } .sheet { border-radius: 1rem; } }
.badge { display: block; width: max-content; margin: .25rem auto .4rem; font-size: .7rem; letter-spacing: .08em;
  font-weight: 600; background: #fef3c7; color: #78350f; padding: .1rem .6rem; border-radius: 1rem; }
.merchant { margin: 0; color: #4b5563; font-size: .9rem; }
h1 { font-size: 1.15rem; margin: .25rem 0; }
.amount { font-size: 2.2rem; font-weight: 700; margin: .25rem 0 0; font-variant-numeric: tabular-nums; }
.what { margin: 0 0 .25rem; color: #4b5563; font-size: .9rem; overflow-wrap: anywhere; }
.note { color: #78350f; background: #fffbeb; border-radius: .5rem; padding: .5rem .75rem; font-size: .85rem;
  margin: .5rem 0 1rem; }
.refusal { color: #b91c1c; background: #fef2f2; border-radius: .5rem; padding: .75rem; margin: .75rem 0; }
form { margin: 0; }
button { font: inherit; display: block; width: 100%; min-height: 48px; padding: .75rem 1rem; margin-top: .6rem;
  border-radius: .6rem; border: 1px solid #cbd5e1; background: #fff; color: #111827; cursor: pointer; }
button:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 2px; }
.pay { background: #067a3c; border-color: #067a3c; color: #fff; font-weight: 600; font-size: 1.05rem; }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: .6rem; }
.fail { border-color: #b91c1c; color: #b91c1c; }
.minor { min-height: 0; border: 0; background: none; color: #4b5563; font-size: .85rem; text-decoration: underline;
  padding: .5rem; }
details { text-align: left; margin-top: 1rem; font-size: .8rem; color: #4b5563; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f3f4f6; border-radius: .5rem; padding: .5rem; }
"""


def language(accept_language: str | None) -> str:
    """English when the browser ranks it above Chinese; Chinese otherwise (WeChat's own cashier is)."""
    best, best_q = "zh", 0.0
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        try:
            q = float(params.strip()[2:]) if params.strip().startswith("q=") else 1.0
        except ValueError:
            continue
        primary = tag.strip().lower().split("-")[0]
        if primary in TEXTS and q > best_q:
            best, best_q = primary, q
    return best


def yuan(fen: int) -> str:
    whole, cents = divmod(int(fen), 100)
    return f"¥{whole:,}.{cents:02d}"


def sheet(
    lang: str, *, merchant: str, body: str, amount_fen: int, action: str = "", hidden: dict[str, str] | None = None,
    refusal: str = "", result: dict[str, Any] | None = None, css_href: str = "cashier.css",
) -> str:
    """One page: the payment form, a refusal in WeChat's words, or the outcome of a payment."""
    t = TEXTS[lang]
    e = html.escape
    if refusal:
        main = f'<h1 id="sim-title">{e(t["refused"])}</h1><p class="refusal" role="alert">{e(refusal)}</p>'
    elif result is not None:
        outcome = str(result.get("outcome") or "fail") if result.get("ok") else "fail"
        main = (
            f'<h1 id="sim-title">{e(t.get("result_" + outcome, t["result_fail"]))}</h1>'
            f'<p class="amount">{e(yuan(amount_fen))}</p><p class="what">{e(body)}</p>'
            f'<details><summary>{e(t["details"])}</summary>'
            f'<pre>{e(json.dumps(result, ensure_ascii=False, indent=1))}</pre></details>'
        )
    else:
        fields = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in (hidden or {}).items() if v)
        main = (
            f'<h1 id="sim-title">{e(t["title"])}</h1>'
            f'<p class="amount">{e(yuan(amount_fen))}</p><p class="what">{e(body)}</p>'
            f'<p class="note">{e(t["note"])}</p>'
            f'<form method="post" action="{e(action)}">{fields}'
            f'<button class="pay" name="outcome" value="ok">{e(t["pay"])}</button>'
            f'<div class="row"><button class="cancel" name="outcome" value="cancel">{e(t["cancel"])}</button>'
            f'<button class="fail" name="outcome" value="fail">{e(t["fail"])}</button></div>'
            f'<button class="minor" name="outcome" value="userpaying">{e(t["userpaying"])}</button>'
            "</form>"
        )
    return (
        f'<!doctype html><html lang="{t["lang"]}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{e(t["title"])}</title><link rel="stylesheet" href="{e(css_href)}"></head>'
        f'<body><main class="sheet" aria-labelledby="sim-title">'
        f'{f"<p class=merchant>{e(merchant)}</p>" if merchant else ""}<p class="badge">{e(t["badge"])}</p>'
        f'{main}</main></body></html>'
    )


class CashierStyle(SimHandler):
    """``GET /_sim/cashier.css``: the stylesheet of the pages above."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/css; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=3600")
        self.finish(STYLE)


def routes(sim: Any) -> list[tuple[str, type[tornado.web.RequestHandler], dict]]:
    return [(r"/_sim/cashier\.css", CashierStyle, {"sim": sim})]
