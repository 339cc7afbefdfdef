"""Incoming stanzas to Sockethub activities, from XML alone (no server)."""

from __future__ import annotations

from xml.etree.ElementTree import Element, fromstring

from platform_runners.xmpp import events

ME = {"id": "bob@localhost", "type": "person", "name": "bob"}
ROOMS = {"room@conference.localhost"}


def xml(text: str) -> Element:
    return fromstring(
        text.replace("<message ", '<message xmlns="jabber:client" ', 1)
        .replace("<presence ", '<presence xmlns="jabber:client" ', 1)
        .replace("<iq ", '<iq xmlns="jabber:client" ', 1)
    )


def test_chat_message_with_correction_and_stanza_id() -> None:
    stanza = xml(
        '<message from="alice@localhost/web" to="bob@localhost/test" type="chat" id="m2">'
        "<body>hello</body>"
        '<replace xmlns="urn:xmpp:message-correct:0" id="m1"/>'
        '<stanza-id xmlns="urn:xmpp:sid:0" id="s9" by="bob@localhost"/>'
        "</message>"
    )
    assert events.translate(stanza, ME, ROOMS) == {
        "type": "send",
        "actor": {"type": "person", "id": "alice@localhost/web"},
        "target": {"type": "person", "id": "bob@localhost/test"},
        "object": {
            "type": "message",
            "id": "m2",
            "content": "hello",
            "xmpp:stanza-id": "s9",
            "xmpp:replace": {"id": "m1"},
        },
    }


def test_groupchat_history_message() -> None:
    stanza = xml(
        '<message from="room@conference.localhost/alice" to="bob@localhost/test" '
        'type="groupchat" id="g1"><body>earlier</body>'
        '<delay xmlns="urn:xmpp:delay" stamp="2026-01-02T03:04:05.678Z" '
        'from="room@conference.localhost"/></message>'
    )
    activity = events.translate(stanza, ME, ROOMS)
    assert activity is not None
    assert activity["actor"] == {
        "type": "person",
        "id": "room@conference.localhost/alice",
        "name": "alice",
    }
    assert activity["target"] == {"type": "room", "id": "room@conference.localhost"}
    assert activity["published"] == "2026-01-02T03:04:05.678Z"


def test_message_without_body_is_not_an_event() -> None:
    subject = xml(
        '<message from="room@conference.localhost" to="bob@localhost/test" type="groupchat">'
        "<subject>topic</subject></message>"
    )
    assert events.translate(subject, ME, ROOMS) is None


def test_message_error() -> None:
    stanza = xml(
        '<message from="nobody@localhost" to="bob@localhost/test" type="error">'
        '<error type="cancel"><service-unavailable '
        'xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>'
    )
    activity = events.translate(stanza, ME, ROOMS)
    assert activity is not None
    assert activity["type"] == "send"
    assert activity["error"] == "Error: message to nobody@localhost failed: service-unavailable"


def test_presence_of_a_contact_and_of_a_room_occupant() -> None:
    contact = xml(
        '<presence from="alice@localhost/web" to="bob@localhost/test">'
        "<show>dnd</show><status>busy</status></presence>"
    )
    assert events.translate(contact, ME, ROOMS) == {
        "type": "update",
        "actor": {"type": "person", "id": "alice@localhost/web"},
        "target": {"id": "bob@localhost/test", "type": "person"},
        "object": {"type": "presence", "content": "busy", "presence": "dnd"},
    }
    left = xml(
        '<presence from="room@conference.localhost/carol" to="bob@localhost/test" '
        'type="unavailable"><x xmlns="http://jabber.org/protocol/muc#user"/></presence>'
    )
    activity = events.translate(left, ME, ROOMS)
    assert activity is not None
    assert activity["actor"] == {
        "type": "room",
        "id": "room@conference.localhost/carol",
        "name": "carol",
    }
    assert activity["object"] == {"type": "presence", "presence": "offline"}


def test_subscription_presences_are_friend_verbs() -> None:
    for kind, verb in events.FRIEND_VERBS.items():
        stanza = xml(f'<presence from="alice@localhost" to="bob@localhost" type="{kind}"/>')
        assert events.translate(stanza, ME, ROOMS) == {
            "type": verb,
            "actor": {"id": "alice@localhost", "type": "person"},
            "target": ME,
        }


def test_room_join_errors_are_left_to_the_join_verb() -> None:
    stanza = xml(
        '<presence from="room@conference.localhost/bob" to="bob@localhost/test" type="error">'
        '<error type="cancel"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>'
        "</presence>"
    )
    assert events.translate(stanza, ME, ROOMS) is None


def test_room_info_sections() -> None:
    iq = xml(
        '<iq from="room@conference.localhost" to="bob@localhost/test" type="result" id="i">'
        '<query xmlns="http://jabber.org/protocol/disco#info">'
        '<identity category="conference" type="text" name="The Room"/>'
        '<feature var="http://jabber.org/protocol/muc"/><feature var="muc_open"/>'
        '<x xmlns="jabber:x:data" type="result">'
        '<field var="FORM_TYPE" type="hidden"><value>x</value></field>'
        '<field var="muc#roominfo_occupants" label="Occupants"><value>3</value></field>'
        '<field var="muc#roomconfig_persistentroom" type="boolean"><value>1</value></field>'
        '<field var="muc#roominfo_lang" type="list-single"><value>42</value>'
        '<option label="Forty-two"><value>42</value></option></field>'
        '<field var="other" type="text-multi"><value>a</value><value>b</value></field>'
        "</x></query></iq>"
    )
    name, obj = events.room_info_object(iq)
    assert name == "The Room"
    assert obj == {
        "type": "room-info",
        "features": ["http://jabber.org/protocol/muc", "muc_open"],
        "identities": [{"category": "conference", "type": "text", "name": "The Room"}],
        "roominfo": {
            "occupants": {"type": "text-single", "label": "Occupants", "value": 3},
            "lang": {
                "type": "list-single",
                "value": "42",
                "options": [{"label": "Forty-two", "value": "42"}],
            },
        },
        "roomconfig": {"persistentroom": {"type": "boolean", "value": True}},
        "custom": {"other": {"type": "text-multi", "value": ["a", "b"]}},
    }


def test_published_normalises_stamps() -> None:
    assert events.published("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05.000Z"
    assert events.published("2026-01-02T04:04:05.5+01:00") == "2026-01-02T03:04:05.500Z"
    assert events.published("yesterday") is None
