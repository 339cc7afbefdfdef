"""WebDAV XML: request bodies built with ElementTree, multistatus answers parsed with expat.

Parsing goes through expat into ElementTree's ``TreeBuilder``, refusing any
document type declaration: a DAV answer never needs one, and without it no
entity (internal or external) can be declared, so none can be expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote
from xml.parsers import expat

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
APPLE_ICAL = "http://apple.com/ns/ical/"
_PREFIXES = {DAV: "d", CALDAV: "c", CARDDAV: "card", APPLE_ICAL: "a"}


class XmlError(ValueError):
    """The body is not well-formed XML, or declares a document type."""


def qname(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def parse(body: bytes) -> ET.Element:
    """The document's root element; :class:`XmlError` for anything but plain XML."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse_doctype(*_args: object) -> None:
        raise XmlError("document type declarations are refused")

    def start(tag: str, attrs: dict[str, str]) -> None:
        builder.start(_clark(tag), {_clark(k): v for k, v in attrs.items()})

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: builder.end(_clark(tag))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
        root = builder.close()
    except (expat.ExpatError, AssertionError, IndexError) as exc:
        raise XmlError(str(exc)) from None
    return root


def _clark(name: str) -> str:
    """expat's ``namespace}local`` as ElementTree's ``{namespace}local``."""
    return f"{{{name}" if "}" in name else name


def serialize(root: ET.Element) -> bytes:
    for namespace, prefix in _PREFIXES.items():
        ET.register_namespace(prefix, namespace)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def propfind_body(props: Iterable[tuple[str, str]]) -> bytes:
    root = ET.Element(qname(DAV, "propfind"))
    prop = ET.SubElement(root, qname(DAV, "prop"))
    for namespace, local in props:
        ET.SubElement(prop, qname(namespace, local))
    return serialize(root)


@dataclass
class DavResponse:
    """One ``<response>`` of a multistatus: its href, and the props of its 200 propstats."""

    href: str
    status: int | None = None
    """The response-level ``<status>``, when it has one instead of propstats."""
    props: dict[str, ET.Element] = field(default_factory=dict)


def status_code(text: str | None) -> int | None:
    """``HTTP/1.1 200 OK`` -> 200."""
    parts = (text or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def multistatus(body: bytes) -> list[DavResponse]:
    """The responses of a ``<multistatus>``; :class:`XmlError` if it is not one."""
    root = parse(body)
    if root.tag != qname(DAV, "multistatus"):
        raise XmlError("not a multistatus")
    found: list[DavResponse] = []
    for response in root.findall(qname(DAV, "response")):
        href = response.findtext(qname(DAV, "href"))
        if not href or not href.strip():
            raise XmlError("response without href")
        item = DavResponse(href.strip(), status_code(response.findtext(qname(DAV, "status"))))
        for propstat in response.findall(qname(DAV, "propstat")):
            if status_code(propstat.findtext(qname(DAV, "status"))) != 200:
                continue
            prop = propstat.find(qname(DAV, "prop"))
            for child in prop if prop is not None else ():
                item.props[child.tag] = child
        found.append(item)
    return found


def href_of(prop: ET.Element | None) -> str | None:
    """The first ``<href>`` inside a property (principal, home set)."""
    if prop is None:
        return None
    text = prop.findtext(qname(DAV, "href"))
    return text.strip() if text and text.strip() else None


def text_of(prop: ET.Element | None) -> str | None:
    if prop is None or prop.text is None:
        return None
    return prop.text.strip() or None


def same_path(a: str, b: str) -> bool:
    return unquote(a).rstrip("/") == unquote(b).rstrip("/")
