"""The flat ``<xml>`` documents of Pay V2, parsed and built safely.

Parsing refuses DTDs and entities before any parser runs (the 2018 XXE
lesson; the expat here predates 2.6.0), caps the size, insists on UTF-8 and
on the expected root, and turns every parser failure into one
:class:`ProtocolError`. Building emits CDATA that survives any text,
including ``]]>`` and carriage returns, and bare integers.
"""
from __future__ import annotations

import re
from typing import Any, Mapping
from xml.parsers import expat
from xml.parsers.expat import ExpatError

import xmltodict

from .errors import MessageTooLargeError, ProtocolError, UnsafeXMLError

MAX_XML_BYTES = 64 * 1024

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_GOOD_NAMES: set[str] = set()  # names already checked (bounded): building is on the hot path
# "<!" opens a comment, a CDATA section, or a declaration; only the first two
# belong in a WeChat message.
# Every DTD starts with <!DOCTYPE and entities live only in one; the other
# declaration keywords are refused too. (Not every "<!": a value may say "a<!b".)
_DECLARATION = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)
_ENCODING_DECL = re.compile(rb"<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", re.IGNORECASE)
# Characters XML 1.0 cannot carry at all, even escaped.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def parse_xml(body: bytes | str, *, root: str = "xml", max_bytes: int = MAX_XML_BYTES) -> dict[str, str]:
    """Parse a flat WeChat XML message into ``{name: text}``.

    Every value is a ``str`` (empty elements give ``""``); typing belongs to
    the caller, who knows the field.
    """
    if type(body) is not bytes:
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif isinstance(body, (bytes, bytearray)):
            body = bytes(body)
        else:
            raise ProtocolError("XML body must be bytes")
    if len(body) > max_bytes:
        raise MessageTooLargeError(f"XML body of {len(body)} bytes exceeds the {max_bytes}-byte limit")
    if not body or body.isspace():  # what ``not body.strip()`` says, without the copy
        raise ProtocolError("XML body is empty")
    if _may_declare(body) and _DECLARATION.search(body):
        raise UnsafeXMLError("XML with DOCTYPE/ENTITY declarations is refused")
    declared = _ENCODING_DECL.search(body) if b"<?" in body else None
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise ProtocolError("XML must be UTF-8 encoded")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"XML is not valid UTF-8 (byte {exc.start})") from None
    return _parse_flat(body, root)


def _may_declare(body: bytes) -> bool:
    """False when every ``<!`` opens a CDATA section, so no declaration can be there.

    Every text value of a WeChat message is CDATA, so ``<!`` is everywhere;
    two substring counts settle the usual case faster than the regex scan,
    which still decides every other case (comments, declarations).
    """
    cdata = body.count(b"<![CDATA[")
    if body.count(b"!") == cdata:  # a one-byte count is the fastest: every "!" opens a CDATA section
        return False
    opens = body.count(b"<!")
    return opens != 0 and opens != cdata


class _NotFlat(Exception):
    """Raised from inside the fast parse: this message needs the full tree."""


def _parse_flat(body: bytes, root: str) -> dict[str, str]:
    """One pass of the hardened expat straight into ``{name: text}``, then the tree if need be.

    The usual message is collected by three expat handlers, with no
    attribute lists, paths or tree built (xmltodict's per-element work was
    most of a notify's parse). Anything else (attributes on a field,
    nesting, a repeated element, loose text, another root) stops that pass,
    and the body is parsed again by xmltodict into the full tree that
    :func:`_flat` judges and explains. Both passes run the same hardened
    expat over the same bytes, so a parse error is the same in either.
    """
    fields: dict[str, str] = {}
    chunks: list[str] = []  # every text, appended by the parser itself (no Python frame per text)
    depth = 0
    name = ""
    mark = 0  # where the text not yet given to a field starts
    closed = False

    # Closures rather than methods: a handler runs twice per field, and cell variables are
    # read faster than attributes. A field's value is the text between its start and its end;
    # text between fields must be whitespace.
    def start(tag: str, attrs: list[str]) -> None:
        nonlocal depth, name, mark
        depth += 1
        if depth == 2:
            if attrs or tag in fields or (len(chunks) != mark and not "".join(chunks[mark:]).isspace()):
                raise _NotFlat
            name = tag
            mark = len(chunks)
        elif depth != 1 or tag != root:
            raise _NotFlat
        else:
            mark = len(chunks)

    def end(tag: str) -> None:
        nonlocal depth, mark, closed
        if depth == 2:
            n = len(chunks) - mark
            fields[name] = chunks[mark] if n == 1 else "".join(chunks[mark:])
            mark += n
        elif len(chunks) != mark and not "".join(chunks[mark:]).isspace():
            raise _NotFlat
        else:
            closed = True
        depth -= 1

    parser = _HardenedExpat.ParserCreate()
    parser.ordered_attributes = True
    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chunks.append
    try:
        try:
            parser.Parse(body, True)
            if closed:
                return fields
        except _NotFlat:
            pass
    except ExpatError as exc:
        raise ProtocolError(f"XML does not parse ({expat.errors.messages[exc.code]})") from None
    except _PARSER_FAILURES as exc:
        raise ProtocolError(f"XML does not parse ({exc.__class__.__name__})") from None
    return _parse_tree(body, root)


_PARSER_FAILURES = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


def _parse_tree(body: bytes, root: str) -> dict[str, str]:
    """The full xmltodict tree, attributes and all, judged by :func:`_flat`."""
    try:
        doc = xmltodict.parse(body, expat=_HardenedExpat, strip_whitespace=False, disable_entities=True)
    except ExpatError as exc:
        raise ProtocolError(f"XML does not parse ({expat.errors.messages[exc.code]})") from None
    except _PARSER_FAILURES as exc:
        raise ProtocolError(f"XML does not parse ({exc.__class__.__name__})") from None
    return _flat(doc, root)


def _refuse_declaration(*_: Any) -> None:
    raise UnsafeXMLError("XML with DOCTYPE/ENTITY declarations is refused")


class _HardenedExpat:
    """The ``expat`` module xmltodict builds its parser from, with DTDs off.

    The byte scan above already refused declarations; this is the second
    line, inside the parser itself.
    """

    errors = expat.errors

    @staticmethod
    def ParserCreate(encoding: str | None = None, namespace_separator: str | None = None) -> Any:
        parser = expat.ParserCreate("UTF-8", namespace_separator)
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = _refuse_declaration
        parser.EntityDeclHandler = _refuse_declaration
        return parser


def _flat(doc: Any, root: str) -> dict[str, str]:
    """Depth 1 is the root, depth 2 the fields; anything else is refused."""
    if not isinstance(doc, dict) or len(doc) != 1:
        raise ProtocolError("XML must have exactly one root element")
    ((name, content),) = doc.items()
    if name != root:
        raise ProtocolError(f"XML root must be <{root}>, got <{name}>")
    if content is None:
        return {}
    if not isinstance(content, dict):
        if isinstance(content, str) and content.isspace():
            return {}
        raise ProtocolError(f"<{root}> must contain elements, not text")
    out: dict[str, str] = {}
    for key, value in content.items():
        if key[0] == "@":
            continue  # attributes on the root carry nothing we sign
        if key == "#text":
            if not value.isspace():
                raise ProtocolError(f"<{root}> must not contain loose text")
            continue
        if value is None:
            out[key] = ""
        elif type(value) is str:
            out[key] = value
        elif isinstance(value, list):
            raise ProtocolError(f"Element <{key}> appears more than once")
        else:
            raise ProtocolError(f"Element <{key}> must hold text, not nested elements or attributes")
    return out


_CDATA_BREAKS = re.compile(r"\]\]>|<!")


def _break_cdata(match: re.Match) -> str:
    # One pass, so a break inserted here is never itself re-broken.
    return "]]]]><![CDATA[>" if match.group() == "]]>" else "<]]><![CDATA[!"


def _cdata(text: str) -> str:
    if "]]>" not in text and "\r" not in text and "<!" not in text:
        return f"<![CDATA[{text}]]>"
    # "]]>" cannot live in one CDATA section and a bare CR would be normalised
    # to LF by the reader, so both are cut out of the section; "<!" is split
    # across two sections so no value can look like a declaration to a reader.
    parts = []
    safe = _CDATA_BREAKS.sub(_break_cdata, text)
    for chunk in re.split(r"(\r)", safe):
        if chunk == "\r":
            parts.append("&#13;")
        elif chunk:
            parts.append(f"<![CDATA[{chunk}]]>")
    return "".join(parts) or "<![CDATA[]]>"


def build_xml(params: Mapping[str, Any], *, root: str = "xml") -> bytes:
    """Serialise ``params`` as a flat WeChat message (UTF-8 bytes).

    ``None`` values are left out; ints are written bare; everything else is
    text in CDATA.
    """
    if not _NAME.match(root):
        raise ProtocolError(f"Invalid XML root name {root!r}")
    out = [f"<{root}>"]
    for name, value in params.items():
        if name not in _GOOD_NAMES:
            if not isinstance(name, str) or not _NAME.match(name):
                raise ProtocolError(f"Invalid XML element name {name!r}")
            if len(_GOOD_NAMES) < 4096:
                _GOOD_NAMES.add(name)
        if value is None:
            continue
        if type(value) is str:
            bad = _ILLEGAL.search(value)
            if bad is None:
                out.append(f"<{name}>{_cdata(value)}</{name}>")
                continue
        if isinstance(value, bool):
            raise ProtocolError(f"Field {name} is a bool; WeChat fields are text or integers")
        if isinstance(value, int):
            out.append(f"<{name}>{value}</{name}>")
            continue
        text = str(value)
        bad = _ILLEGAL.search(text)
        if bad:
            raise ProtocolError(
                f"Field {name} holds character U+{ord(bad.group()):04X}, which XML cannot carry"
            )
        out.append(f"<{name}>{_cdata(text)}</{name}>")
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8")
