"""What WeChat shows the shopper about an order: the shop's name and what is bought.

WeChat's payment sheet, its payment record and the H5 cashier show the
order's description (APIv2 ``body``, APIv3 ``description``), which WeChat
asks to read "shop name - what is sold" ("腾讯-游戏"). The merchant API's
``description`` says what is sold; the shop's name is the ``shop.name``
setting. Both together stay within WeChat's 127 UTF-8 bytes.
"""
from __future__ import annotations

from .checkouts import TEXT_MAX_BYTES

ELLIPSIS = "…"


def order_description(shop_name: str, description: str) -> str:
    """``"{shop}-{description}"`` within 127 UTF-8 bytes (the description is
    shortened, never the shop's name); as given when it already starts with
    the shop's name, or when there is no name."""
    shop = shop_name.strip()
    if not shop or description.startswith(shop):
        return _fit(description, TEXT_MAX_BYTES)
    head = f"{shop}-"
    return head + _fit(description, TEXT_MAX_BYTES - len(head.encode("utf-8")))


def _fit(text: str, limit: int) -> str:
    """``text``, or its longest prefix plus "…" that fits ``limit`` bytes (whole characters only)."""
    if len(text.encode("utf-8")) <= limit:
        return text
    budget = limit - len(ELLIPSIS.encode("utf-8"))
    out, used = [], 0
    for char in text:
        size = len(char.encode("utf-8"))
        if used + size > budget:
            break
        out.append(char)
        used += size
    return "".join(out) + ELLIPSIS
