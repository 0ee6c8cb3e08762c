"""What WeChat shows the shopper: "shop-item" within WeChat's 127 UTF-8 bytes."""
from __future__ import annotations

import pytest

from service.checkouts import TEXT_MAX_BYTES
from service.order_text import order_description


def test_the_shop_name_comes_first_as_wechat_asks():
    assert order_description("Lu's Tea House", "Green tea") == "Lu's Tea House-Green tea"
    assert order_description("茶馆", "明前龙井 100g") == "茶馆-明前龙井 100g"


def test_a_description_that_already_names_the_shop_is_sent_as_is():
    assert order_description("茶馆", "茶馆-龙井") == "茶馆-龙井"
    assert order_description("", "Green tea") == "Green tea"


@pytest.mark.parametrize("shop, description", [
    ("茶" * 21, "龙" * 42),           # the longest name and the longest description
    ("Lu's Tea House", "x" * 127),
    ("Lu's Tea House", "é" * 63 + "x"),  # a cut that would split a two-byte character
    ("a" * 64, "🍵" * 31),
])
def test_the_description_is_shortened_never_the_name_and_fits_127_bytes(shop, description):
    sent = order_description(shop, description)
    assert len(sent.encode("utf-8")) <= TEXT_MAX_BYTES
    assert sent.startswith(shop + "-") and sent.endswith("…")
    assert description.startswith(sent[len(shop) + 1:-1])  # whole characters of the start
