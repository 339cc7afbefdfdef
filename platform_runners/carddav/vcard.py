"""vCard <-> the spec's JSON contact shape, through ``vobject``.

Written cards are vCard 4.0. An update keeps every property of the server's
stored card that this model does not describe (``X-...``, ``CATEGORIES``, an
inline ``PHOTO``...): those lines are copied verbatim from the stored card,
never from the client, so nothing a client does not know about is lost.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

import vobject

from schemas.envelopes import JSONDict

PRODID = "-//Sockethub//CardDAV//EN"
UNSAFE_UID = re.compile(r"[\r\n%/\\]")
MODEL = frozenset(
    {"BEGIN", "END", "VERSION", "PRODID", "UID", "FN", "N", "NICKNAME", "EMAIL", "TEL", "ADR",
     "ORG", "TITLE", "ROLE", "URL", "NOTE", "BDAY"}
)  # fmt: skip
"""Properties the JSON shape owns; PHOTO is owned only when the request has ``photoUrls``."""
_LISTS = (("emails", "email"), ("telephones", "tel"), ("urls", "url"))
_ADR_FIELDS = (
    ("postOfficeBox", "box"), ("extendedAddress", "extended"), ("street", "street"),
    ("locality", "city"), ("region", "region"), ("postalCode", "code"), ("country", "country"),
)  # fmt: skip
_NAME_FIELDS = (
    ("familyName", "family"), ("givenName", "given"), ("additionalNames", "additional"),
    ("honorificPrefixes", "prefix"), ("honorificSuffixes", "suffix"),
)  # fmt: skip


class Invalid(ValueError):
    """A contact that cannot be written."""


class Unreadable(ValueError):
    """A stored card that cannot be read; ``str`` says why."""


def new_uid() -> str:
    return str(uuid.uuid4())


def _typed(line: Any, entry: JSONDict) -> None:
    types = [str(t).lower() for t in entry.get("types") or []]
    if types:
        line.params["TYPE"] = [",".join(types)]
    if entry.get("preferred"):
        line.params["PREF"] = ["1"]


def to_vcard(obj: JSONDict, uid: str, stored: str | None = None) -> str:
    """A vCard 4.0 for a contact; ``stored`` is the server's card whose extra lines survive."""
    if not uid or UNSAFE_UID.search(uid):
        raise Invalid("invalid uid")
    card = vobject.vCard()
    card.add("version").value = "4.0"
    card.add("prodid").value = PRODID
    card.add("uid").value = uid
    card.add("fn").value = str(obj.get("name", ""))
    parts: dict[str, Any] = {}
    for field, attr in _NAME_FIELDS:
        value = obj.get(field)
        parts[attr] = [str(v) for v in value] if isinstance(value, list) else str(value or "")
    card.add("n").value = vobject.vcard.Name(**parts)
    if obj.get("nickname"):
        card.add("nickname").value = str(obj["nickname"])
    for field, prop in _LISTS:
        for entry in obj.get(field) or []:
            line = card.add(prop)
            line.value = str(entry.get("value", ""))
            _typed(line, entry)
    for entry in obj.get("addresses") or []:
        line = card.add("adr")
        line.value = vobject.vcard.Address(
            **{attr: str(entry.get(field) or "") for field, attr in _ADR_FIELDS}
        )
        _typed(line, entry)
    if obj.get("organization"):
        card.add("org").value = [str(obj["organization"])]
    for field in ("title", "role", "note", "birthday"):
        if obj.get(field):
            card.add("bday" if field == "birthday" else field).value = str(obj[field])
    for url in obj.get("photoUrls") or []:
        line = card.add("photo")
        line.value = str(url)
        line.params["VALUE"] = ["uri"]
    text = str(card.serialize())
    if stored is None:
        return text
    kept = list(_extra_lines(stored, keep_photos="photoUrls" not in obj))
    if not kept:
        return text
    head, _, _tail = text.rstrip("\r\n").rpartition("END:VCARD")
    return head + "".join(f"{_fold(line)}\r\n" for line in kept) + "END:VCARD\r\n"


def unfold(text: str) -> list[str]:
    """The content lines of a card (RFC 6350 folding undone, any line ending)."""
    lines: list[str] = []
    for raw in re.split(r"\r\n|\n|\r", text):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    return lines


def _name(line: str) -> str:
    head = re.split(r"[;:]", line, maxsplit=1)[0]
    return head.rpartition(".")[2].upper()  # a group prefix (item1.EMAIL) is not the name


def _extra_lines(stored: str, *, keep_photos: bool) -> Iterable[str]:
    depth = 0
    for line in unfold(stored):
        name = _name(line)
        if name == "BEGIN":
            depth += 1
            continue
        if name == "END":
            depth -= 1
            continue
        if depth != 1:
            continue
        if name in MODEL or (name == "PHOTO" and not keep_photos):
            continue
        yield line


def _fold(line: str) -> str:
    """Fold at 75 octets without splitting a UTF-8 sequence."""
    out: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > 75:
            out.append(current)
            current, size = " ", 1
        current += char
        size += width
    out.append(current)
    return "\r\n".join(out)


# --- reading ----------------------------------------------------------------------------------


def _types(line: Any) -> tuple[list[str], bool]:
    types: list[str] = []
    for raw in line.params.get("TYPE", []):
        types += [t.strip().lower() for t in str(raw).split(",") if t.strip()]
    preferred = "pref" in types or any(str(p) == "1" for p in line.params.get("PREF", []))
    return [t for t in types if t != "pref"], preferred


def _entry(line: Any, value: str) -> JSONDict:
    entry: JSONDict = {"value": value}
    types, preferred = _types(line)
    if types:
        entry["types"] = types
    if preferred:
        entry["preferred"] = True
    return entry


def _strip_scheme(value: str, scheme: str) -> str:
    return value[len(scheme) :] if value.lower().startswith(scheme) else value


def from_vcard(text: str) -> JSONDict:
    """The contact item for a stored card, without ``id``/``etag``; :class:`Unreadable`."""
    try:
        card = vobject.readOne(text)
    except Exception as exc:  # vobject raises many kinds of errors on broken input
        raise Unreadable(f"unparseable vCard: {type(exc).__name__}") from None
    if getattr(card, "name", "").upper() != "VCARD":
        raise Unreadable("not a VCARD")
    version = _value(card, "version")
    if version not in ("3.0", "4.0") or not _value(card, "uid") or _value(card, "fn") is None:
        raise Unreadable("VERSION (3.0 or 4.0), UID and FN are required")
    item: JSONDict = {"type": "person"}
    for line in card.getChildren():
        name = line.name.upper()
        try:
            _read_line(item, name, line)
        except (AttributeError, TypeError, ValueError):
            continue  # one odd property does not hide the contact
    item["id"] = None
    item["vcardVersion"] = version
    item["updateSupported"] = True
    return item


def _value(card: Any, name: str) -> str | None:
    line = getattr(card, name, None)
    return None if line is None else str(line.value)


def _read_line(item: JSONDict, name: str, line: Any) -> None:
    value = line.value
    if name == "UID":
        item["uid"] = str(value)
    elif name == "FN":
        item["name"] = str(value)
    elif name == "N" and isinstance(value, vobject.vcard.Name):
        for field, attr in _NAME_FIELDS:
            part = getattr(value, attr)
            if field in ("familyName", "givenName"):
                item[field] = " ".join(part) if isinstance(part, list) else str(part)
            else:
                listed = part if isinstance(part, list) else [part]
                listed = [str(p) for p in listed if p]
                if listed:
                    item[field] = listed
    elif name == "NICKNAME":
        item["nickname"] = str(value)
    elif name in ("EMAIL", "TEL", "URL"):
        field = {"EMAIL": "emails", "TEL": "telephones", "URL": "urls"}[name]
        text = str(value)
        text = _strip_scheme(text, "mailto:") if name == "EMAIL" else text
        text = _strip_scheme(text, "tel:") if name == "TEL" else text
        item.setdefault(field, []).append(_entry(line, text))
    elif name == "ADR" and isinstance(value, vobject.vcard.Address):
        entry = _entry(line, "")
        del entry["value"]
        for field, attr in _ADR_FIELDS:
            part = getattr(value, attr)
            text = ", ".join(part) if isinstance(part, list) else str(part)
            if text:
                entry[field] = text
        item.setdefault("addresses", []).append(entry)
    elif name == "ORG":
        parts = value if isinstance(value, list) else [value]
        item["organization"] = ";".join(str(p) for p in parts if p) or ""
    elif name in ("TITLE", "ROLE", "NOTE"):
        item[name.lower()] = str(value)
    elif name == "BDAY":
        item["birthday"] = str(value)
    elif name == "PHOTO":
        text = str(value) if isinstance(value, str) else ""
        is_uri = any(str(v).lower() == "uri" for v in line.params.get("VALUE", []))
        if text.lower().startswith(("http://", "https://")) or (is_uri and text):
            item.setdefault("photoUrls", []).append(text)


def stored_uid(text: str) -> str | None:
    """The UID of a stored card, or None when it cannot be parsed."""
    try:
        card = vobject.readOne(text)
    except Exception:  # as in from_vcard
        return None
    return _value(card, "uid")
