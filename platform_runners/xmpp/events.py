"""Incoming XMPP stanzas as Sockethub activities (the shapes of Sockethub's XMPP platform).

Pure functions over the stanza XML, so they are testable without a server:

- a chat message: ``send`` from ``{id: <full jid>, type: person}`` to
  ``{id: <our jid>, type: person}``; a groupchat message: ``send`` from
  ``{id: room@host/nick, type: person, name: nick}`` to ``{id: room@host, type: room}``;
  ``object {type: message, id, content}`` plus ``xmpp:replace: {id}`` for a
  correction, ``xmpp:stanza-id`` when the server assigned one, and ``published``
  for delayed (history) messages;
- presence: ``update`` with ``object {type: presence, presence, content?}``; the
  actor is a ``room`` when it comes from a joined room (joins and leaves of
  occupants are their ``online``/``offline`` presence);
- subscriptions: ``subscribe`` -> ``request-friend``, ``subscribed`` ->
  ``make-friend``, ``unsubscribe``/``unsubscribed`` -> ``remove-friend``;
- errors: the activity of the failed verb with an ``error`` text.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

JSONDict = dict[str, Any]

CLIENT = "{jabber:client}"
DELAY = "{urn:xmpp:delay}delay"
STANZA_ID = "{urn:xmpp:sid:0}stanza-id"
REPLACE = "{urn:xmpp:message-correct:0}replace"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
DISCO_INFO = "{http://jabber.org/protocol/disco#info}"
XDATA = "{jabber:x:data}"

FRIEND_VERBS = {
    "subscribe": "request-friend",
    "subscribed": "make-friend",
    "unsubscribe": "remove-friend",
    "unsubscribed": "remove-friend",
}


def bare(jid: str) -> str:
    return jid.split("/", 1)[0]


def resource(jid: str) -> str:
    return jid.split("/", 1)[1] if "/" in jid else ""


def _text(element: Element, tag: str) -> str | None:
    child = element.find(f"{CLIENT}{tag}")
    return child.text if child is not None and child.text is not None else None


def published(stamp: str) -> str | None:
    """An XEP-0203 stamp as JavaScript's ``toISOString`` writes it (UTC, milliseconds)."""
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def error_text(stanza: Element) -> str:
    """``<condition>: <text>`` of a stanza's ``<error>``."""
    error = stanza.find(f"{CLIENT}error")
    if error is None:
        return "unknown error"
    condition, text = "undefined-condition", ""
    for child in error:
        if child.tag == f"{STANZAS}text":
            text = child.text or ""
        elif child.tag.startswith(STANZAS):
            condition = child.tag[len(STANZAS) :]
    return f"{condition}: {text}" if text else condition


def message(stanza: Element, rooms: Collection[str]) -> JSONDict | None:
    sender, to = stanza.get("from", ""), stanza.get("to", "")
    if stanza.get("type") == "error":
        kind = "room" if bare(sender) in rooms else "person"
        return {
            "type": "send",
            "actor": {"id": sender, "type": kind},
            "target": {"id": to, "type": "person"},
            "error": f"Error: message to {sender} failed: {error_text(stanza)}",
        }
    body = _text(stanza, "body")
    if not body:
        return None
    room = stanza.get("type") == "groupchat"
    obj: JSONDict = {"type": "message", "id": stanza.get("id"), "content": body}
    stanza_id = stanza.find(STANZA_ID)
    if stanza_id is not None and stanza_id.get("id"):
        obj["xmpp:stanza-id"] = stanza_id.get("id")
    replace = stanza.find(REPLACE)
    if replace is not None and replace.get("id"):
        obj["xmpp:replace"] = {"id": replace.get("id")}
    activity: JSONDict = {
        "type": "send",
        "actor": {"type": "person", "id": sender},
        "target": {"type": "room" if room else "person", "id": to},
        "object": obj,
    }
    if room:
        activity["target"]["id"] = bare(sender)
        activity["actor"]["name"] = resource(sender)
    delay = stanza.find(DELAY)
    if delay is not None and delay.get("stamp"):
        when = published(str(delay.get("stamp")))
        if when:
            activity["published"] = when
    return activity


def presence_value(stanza: Element) -> str:
    show = _text(stanza, "show")
    if show:
        return show
    return "offline" if stanza.get("type") == "unavailable" else "online"


def presence(stanza: Element, me: JSONDict, rooms: Collection[str]) -> JSONDict | None:
    sender, kind = stanza.get("from", ""), stanza.get("type")
    if kind in FRIEND_VERBS:
        return {
            "type": FRIEND_VERBS[kind],
            "actor": {"id": bare(sender), "type": "person"},
            "target": copy.deepcopy(me),
        }
    if kind == "error":
        if resource(sender):
            return None  # a room's answer to a join or nick change: the verb reports it
        return {
            "type": "update",
            "actor": {"id": sender, "type": "person"},
            "target": copy.deepcopy(me),
            "object": {"type": "presence"},
            "error": f"Error: presence to {sender} failed: {error_text(stanza)}",
        }
    if kind not in (None, "unavailable"):
        return None  # probe
    in_room = bare(sender) in rooms
    obj: JSONDict = {"type": "presence"}
    status = _text(stanza, "status")
    if status:
        obj["content"] = status
    obj["presence"] = presence_value(stanza)
    activity: JSONDict = {
        "type": "update",
        "actor": {"type": "room" if in_room else "person", "id": sender},
        "object": obj,
    }
    if stanza.get("to"):
        activity["target"] = {"id": stanza.get("to"), "type": "person"}
    if in_room or not stanza.get("to"):
        activity["actor"]["name"] = resource(sender)
    return activity


def translate(stanza: Element, me: JSONDict, rooms: Collection[str]) -> JSONDict | None:
    """The activity for an incoming message or presence stanza; None for what has none."""
    if stanza.tag == f"{CLIENT}message":
        return message(stanza, rooms)
    if stanza.tag == f"{CLIENT}presence":
        return presence(stanza, me, rooms)
    return None


# -- room-info ----------------------------------------------------------------------------------

_SECTION = re.compile(r"^muc#(roominfo|roomconfig)_(.+)$")


def xdata_field(field: Element) -> tuple[str, JSONDict] | None:
    """(var, {type, label?, value, options?}) of a data-form field; None for FORM_TYPE."""
    var = field.get("var")
    if not var or var == "FORM_TYPE":
        return None
    kind = field.get("type") or "text-single"
    values = [v.text or "" for v in field.findall(f"{XDATA}value")]
    value: Any
    if kind == "boolean":
        value = bool(values) and values[0].lower() in ("1", "true")
    elif kind in ("text-multi", "list-multi", "jid-multi"):
        value = values
    elif not values:
        value = None
    elif kind != "list-single" and values[0].isdigit():
        value = int(values[0])
    else:
        value = values[0]
    out: JSONDict = {"type": kind}
    if field.get("label"):
        out["label"] = field.get("label")
    out["value"] = value
    options = []
    for option in field.findall(f"{XDATA}option"):
        opt_value = option.find(f"{XDATA}value")
        text = opt_value.text or "" if opt_value is not None else ""
        options.append({"label": option.get("label") or text, "value": text})
    if options:
        out["options"] = options
    return var, out


def room_info_object(iq: Element) -> tuple[str | None, JSONDict]:
    """(display name, ``object``) of a disco#info answer: identities, features and the
    ``muc#roominfo_*``/``muc#roomconfig_*``/other form fields by section."""
    query = iq.find(f"{DISCO_INFO}query")
    obj: JSONDict = {"type": "room-info", "features": []}
    if query is None:
        return None, obj
    identities = []
    for identity in query.findall(f"{DISCO_INFO}identity"):
        if identity.get("category") and identity.get("type"):
            entry = {"category": identity.get("category"), "type": identity.get("type")}
            if identity.get("name"):
                entry["name"] = identity.get("name")
            identities.append(entry)
    obj["features"] = [f.get("var") for f in query.findall(f"{DISCO_INFO}feature") if f.get("var")]
    if identities:
        obj["identities"] = identities
    for form in query.findall(f"{XDATA}x"):
        for field in form.findall(f"{XDATA}field"):
            parsed = xdata_field(field)
            if parsed is None:
                continue
            var, value = parsed
            match = _SECTION.match(var)
            section, key = (match.group(1), match.group(2)) if match else ("custom", var)
            obj.setdefault(section, {})[key] = value
    name = identities[0].get("name") if identities else None
    return name, obj
