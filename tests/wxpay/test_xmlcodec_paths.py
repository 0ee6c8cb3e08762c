"""The fast flat-message parse agrees with the full-tree parse on every document.

``parse_xml`` collects the usual message while xmltodict reads it and falls
back to the full tree (judged by ``_flat``) for anything unusual. These tests
feed both paths documents built from the shapes that must be refused (nesting,
repeats, attributes, loose text, other roots, comments, CDATA at the root) and
require the same dict or the same error, message included.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wxpay.errors import ProtocolError
from wxpay.xmlcodec import _parse_flat, _parse_tree


def outcome(parse, body: bytes, root: str):
    try:
        return ("ok", parse(body, root))
    except ProtocolError as exc:
        return (type(exc).__name__, str(exc))


def assert_same(body: bytes, root: str = "xml") -> None:
    fast = outcome(_parse_flat, body, root)
    assert fast == outcome(_parse_tree, body, root), body


names = st.sampled_from(["a", "b", "total_fee", "xml", "root", "sign"])
texts = st.sampled_from(["", "1", " ", "\n  ", "x y", "&amp;", "&#13;", "<![CDATA[c]]>", "<![CDATA[]]>",
                         "<![CDATA[<a>oops</a>]]>", "<!-- c -->", "<?pi x?>", "中"])
attrs = st.sampled_from(["", "", "", ' x="1"', " y='a>b'", ' xmlns="urn:x"'])


@st.composite
def element(draw, depth: int = 0):
    name = draw(names)
    attr = draw(attrs)
    if depth < 2 and draw(st.integers(0, 4)) == 0:
        inner = "".join(draw(st.lists(element(depth + 1), max_size=2)))
    else:
        inner = draw(texts)
    if not inner and draw(st.booleans()):
        return f"<{name}{attr}/>"
    return f"<{name}{attr}>{inner}</{name}>"


@st.composite
def document(draw):
    root = draw(st.sampled_from(["xml", "xml", "root"]))
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 5)) == 0:
            parts.append(draw(texts))  # something loose at the root
        parts.append(draw(element()))
    if draw(st.integers(0, 5)) == 0:
        parts.append(draw(texts))
    prolog = draw(st.sampled_from(["", "", '<?xml version="1.0" encoding="UTF-8"?>\n', "<!-- c -->"]))
    tail = draw(st.sampled_from(["", "", "\n", "<!-- end -->", "<xml/>"]))
    return f"{prolog}<{root}{draw(attrs)}>{''.join(parts)}</{root}>{tail}".encode()


@settings(max_examples=400, deadline=None)
@given(document(), st.sampled_from(["xml", "root"]))
def test_fast_and_full_parse_agree(body, root):
    assert_same(body, root)


@pytest.mark.parametrize("body", [
    b"<xml><a>1</a></xml>",
    b"<xml></xml>",
    b"<xml/>",
    b"<xml> \n </xml>",
    b"<xml>oops<a>1</a></xml>",
    b"<xml><a>1</a>oops</xml>",
    b"<xml><a>1</a><![CDATA[oops]]></xml>",
    b"<xml><a>1</a>&#65;</xml>",
    b"<xml>just text</xml>",
    b'<xml v="1">just text</xml>',
    b'<xml v="1"><a>1</a></xml>',
    b'<xml><a x="1">2</a></xml>',
    b'<xml><a x="1"/></xml>',
    b"<xml><a><b>1</b></a></xml>",
    b"<xml><a><b>1</b></a><a>2</a></xml>",
    b"<xml><a>1</a><a>2</a></xml>",
    b"<root><a>1</a></root>",
    b"<xml><a>1</a></xml><xml/>",
    b"<xml><a>1</a>",
    b"<xml><!-- c --><a>1</a><?pi?></xml>",
])
def test_each_refused_shape_is_explained_the_same_way(body):
    assert_same(body)
