"""The XML codec: one test per rejection, and builds that survive a round trip."""
from __future__ import annotations

import pytest

from wxpay.errors import MessageTooLargeError, ProtocolError, UnsafeXMLError
from wxpay.xmlcodec import MAX_XML_BYTES, build_xml, parse_xml

GOOD = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><total_fee>1</total_fee></xml>"


def test_parses_cdata_and_bare_values_as_text():
    assert parse_xml(GOOD) == {"return_code": "SUCCESS", "total_fee": "1"}


def test_whitespace_between_elements_and_empty_elements():
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n  <a>x</a>\n  <b></b>\n  <c/>\n</xml>\n'
    assert parse_xml(body) == {"a": "x", "b": "", "c": ""}


def test_accepts_str_and_empty_root():
    assert parse_xml("<xml><a>é</a></xml>") == {"a": "é"}
    assert parse_xml(b"<xml></xml>") == {}


def test_comments_bom_and_root_attributes_are_harmless():
    body = b'\xef\xbb\xbf<xml version="1"><!-- note --><a>1</a><?pi x?></xml>'
    assert parse_xml(body) == {"a": "1"}


def test_cdata_split_across_sections_and_char_refs():
    assert parse_xml(b"<xml><a><![CDATA[x]]]]><![CDATA[>y]]>&#13;&amp;</a></xml>") == {"a": "x]]>y\r&"}


def test_other_root_when_asked():
    assert parse_xml(b"<root><a>1</a></root>", root="root") == {"a": "1"}


# --- rejections ---------------------------------------------------------------


def test_reject_doctype():
    with pytest.raises(UnsafeXMLError):
        parse_xml(b'<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><a>1</a></xml>')


def test_reject_doctype_lower_case():
    with pytest.raises(UnsafeXMLError):
        parse_xml(b'<!doctype xml><xml><a>1</a></xml>')


def test_reject_entity_declaration():
    with pytest.raises(UnsafeXMLError):
        parse_xml(b'<!ENTITY x "y"><xml><a>&x;</a></xml>')


def test_reject_billion_laughs():
    lol = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><a>&lol3;</a></xml>"""
    with pytest.raises(UnsafeXMLError):
        parse_xml(lol)


def test_reject_external_entity_xxe():
    xxe = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><return_code>&xxe;</return_code></xml>"""
    with pytest.raises(UnsafeXMLError) as info:
        parse_xml(xxe)
    assert "root:" not in str(info.value)


def test_reject_undeclared_entity_reference():
    with pytest.raises(ProtocolError):
        parse_xml(b"<xml><a>&xxe;</a></xml>")


def test_reject_oversize():
    body = b"<xml><a>" + b"x" * MAX_XML_BYTES + b"</a></xml>"
    with pytest.raises(MessageTooLargeError):
        parse_xml(body)


def test_reject_over_custom_limit():
    with pytest.raises(MessageTooLargeError):
        parse_xml(GOOD, max_bytes=len(GOOD) - 1)
    assert parse_xml(GOOD, max_bytes=len(GOOD))["total_fee"] == "1"


def test_reject_wrong_root():
    with pytest.raises(ProtocolError, match="root must be <xml>"):
        parse_xml(b"<root><a>1</a></root>")


def test_reject_invalid_utf8():
    with pytest.raises(ProtocolError, match="UTF-8"):
        parse_xml(b"<xml><a>\xff\xfe</a></xml>")


def test_reject_gbk_body():
    with pytest.raises(ProtocolError, match="UTF-8"):
        parse_xml("<xml><a>中文</a></xml>".encode("gbk"))


def test_reject_non_utf8_encoding_declaration():
    body = '<?xml version="1.0" encoding="GBK"?><xml><a>1</a></xml>'.encode()
    with pytest.raises(ProtocolError, match="UTF-8"):
        parse_xml(body)


def test_reject_unclosed_tag():
    with pytest.raises(ProtocolError, match="does not parse"):
        parse_xml(b"<xml><a>1</a>")


def test_reject_mismatched_tag():
    with pytest.raises(ProtocolError, match="does not parse"):
        parse_xml(b"<xml><a>1</b></xml>")


def test_reject_nested_elements():
    with pytest.raises(ProtocolError, match="nested"):
        parse_xml(b"<xml><a><b>1</b></a></xml>")


def test_reject_duplicate_elements():
    with pytest.raises(ProtocolError, match="more than once"):
        parse_xml(b"<xml><total_fee>1</total_fee><total_fee>100</total_fee></xml>")


def test_reject_attributes_on_a_field():
    with pytest.raises(ProtocolError):
        parse_xml(b'<xml><a x="1">2</a></xml>')


def test_reject_loose_text_in_root():
    with pytest.raises(ProtocolError, match="loose text"):
        parse_xml(b"<xml>oops<a>1</a></xml>")


def test_reject_text_only_root():
    with pytest.raises(ProtocolError):
        parse_xml(b"<xml>just text</xml>")


@pytest.mark.parametrize("body", [b"", b"   \n", b"\r\n"])
def test_reject_empty_body(body):
    with pytest.raises(ProtocolError, match="empty"):
        parse_xml(body)


def test_reject_not_xml():
    with pytest.raises(ProtocolError):
        parse_xml(b"success")


def test_reject_json():
    with pytest.raises(ProtocolError):
        parse_xml(b'{"return_code": "SUCCESS"}')


def test_reject_non_bytes():
    with pytest.raises(ProtocolError):
        parse_xml(123)  # type: ignore[arg-type]


def test_reject_two_roots():
    with pytest.raises(ProtocolError):
        parse_xml(b"<xml><a>1</a></xml><xml><a>2</a></xml>")


# --- build --------------------------------------------------------------------


def test_build_ints_bare_strings_cdata_none_dropped():
    out = build_xml({"total_fee": 1, "body": "a&b<c>", "attach": None})
    assert out == b"<xml><total_fee>1</total_fee><body><![CDATA[a&b<c>]]></body></xml>"


def test_build_round_trips_cdata_terminator():
    value = "x]]>y]]>]]>"
    out = build_xml({"a": value})
    assert parse_xml(out) == {"a": value}


def test_build_round_trips_carriage_returns():
    value = "line1\r\nline2\rline3\n"
    assert parse_xml(build_xml({"a": value})) == {"a": value}


def test_build_round_trips_empty_and_unicode():
    params = {"a": "", "b": "中文 😀", "c": " padded "}
    assert parse_xml(build_xml(params)) == params


@pytest.mark.parametrize("name", ["1abc", "a b", "a-b", "<x>", "", "a]]>", "é", "abc\n"])
def test_build_refuses_invalid_names(name):
    with pytest.raises(ProtocolError, match="Invalid XML element name"):
        build_xml({name: "1"})


def test_build_refuses_invalid_root():
    with pytest.raises(ProtocolError, match="root"):
        build_xml({"a": "1"}, root="x y")


def test_build_refuses_non_string_name():
    with pytest.raises(ProtocolError):
        build_xml({1: "1"})  # type: ignore[dict-item]


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x0b", "\x1f", "\ud800", "\ufffe", "\uffff"])
def test_build_refuses_illegal_xml_chars(char):
    with pytest.raises(ProtocolError, match=r"U\+[0-9A-F]{4}.*XML cannot carry"):
        build_xml({"a": f"ok{char}ok"})


def test_build_refuses_bool():
    with pytest.raises(ProtocolError, match="bool"):
        build_xml({"a": True})


def test_build_custom_root():
    assert parse_xml(build_xml({"a": 1}, root="root"), root="root") == {"a": "1"}


def test_expat_layer_refuses_declarations_too():
    """Second line of defence: even past the byte scan, expat refuses DTDs."""
    from wxpay.xmlcodec import _parse_flat

    with pytest.raises(UnsafeXMLError):
        _parse_flat(b'<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>', "xml")
    with pytest.raises(UnsafeXMLError):
        _parse_flat(b"<!DOCTYPE xml><xml/>", "xml")


@pytest.mark.parametrize("value", ["a<!b", "<!DOCTYPE x>", "]]><!", "<!<!]]>]]>", "x\r<!--y"])
def test_values_that_look_like_markup_round_trip(value):
    """Found by the property test: "<!" in a value was refused on the way back."""
    body = build_xml({"attach": value})
    assert b"<!D" not in body.replace(b"<![CDATA[", b"")
    assert parse_xml(body) == {"attach": value}


def test_comments_and_cdata_are_not_mistaken_for_declarations():
    assert parse_xml(b"<xml><!-- note --><a><![CDATA[a<!b]]></a></xml>") == {"a": "a<!b"}


def test_a_value_longer_than_the_parser_s_text_buffer_is_read_whole():
    # Past its 8 KiB buffer expat hands text over in pieces (here at the entity); all belong to the field.
    body = b"<xml><a>" + b"x" * 20000 + b"&amp;" + b"y" * 9000 + b"</a><b>1</b><c><![CDATA[" + b"z" * 17000 + b"]]></c></xml>"
    assert parse_xml(body) == {"a": "x" * 20000 + "&" + "y" * 9000, "b": "1", "c": "z" * 17000}
