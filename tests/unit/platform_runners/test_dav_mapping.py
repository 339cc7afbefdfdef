"""iCalendar and vCard <-> the spec's JSON shapes, without a server."""

from __future__ import annotations

import pytest

from platform_runners.caldav import ical
from platform_runners.caldav.platform import item_name, query_body, query_time
from platform_runners.carddav import vcard
from platform_runners.dav.client import DavError


def roundtrip(obj: dict[str, object], uid: str = "u@example.test") -> dict[str, object]:
    return ical.from_ical(ical.to_ical(obj, uid))


def test_event_roundtrip_in_a_time_zone() -> None:
    obj = {
        "type": "event",
        "name": "Planning, weekly; all hands",
        "content": "line one\nline two " + "x" * 200,
        "location": "Room 1",
        "url": "https://example.test/plan",
        "startTime": "2026-08-03T15:00:00",
        "endTime": "2026-08-03T16:00:00",
        "timeZone": "Europe/Prague",
        "sequence": 2,
        "recurrence": {
            "frequency": "monthly",
            "interval": 2,
            "until": "2026-12-31T00:00:00Z",
            "byMonthDay": [1, -1],
        },
        "organizer": {"email": "alice@example.test", "name": "Alice"},
        "attendees": [{"email": "bob@example.test", "status": "accepted", "rsvp": True}],
        "attachments": [{"url": "https://example.test/a.pdf", "mediaType": "application/pdf"}],
        "reminders": [
            {
                "trigger": "-PT1H",
                "action": "email",
                "description": "Soon",
                "recipients": ["alice@example.test"],
            }
        ],
    }
    item = roundtrip(obj)
    expected = {k: v for k, v in obj.items()}
    expected |= {"uid": "u@example.test", "updateSupported": True}
    assert item == expected
    assert list(item) == [k for k in ical.ITEM_ORDER if k in item]


def test_written_calendar_shape() -> None:
    text = ical.to_ical(
        {
            "type": "event",
            "name": "x",
            "startTime": "2026-08-03T15:00:00",
            "timeZone": "America/New_York",
        },
        "u1",
    ).decode()
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert "PRODID:-//Sockethub//CalDAV Platform//EN\r\n" in text
    assert "CALSCALE:GREGORIAN\r\n" in text
    assert text.index("BEGIN:VTIMEZONE") < text.index("BEGIN:VEVENT")
    assert "DTSTART;TZID=America/New_York:20260803T150000\r\n" in text
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))


def test_offsets_become_utc_and_all_day_becomes_dates() -> None:
    item = roundtrip({"type": "event", "name": "x", "startTime": "2026-08-03T15:00:00+02:00"})
    assert item["startTime"] == "2026-08-03T13:00:00Z" and "timeZone" not in item
    item = roundtrip({"type": "event", "name": "x", "startTime": "2026-08-03",
                      "endTime": "2026-08-04", "allDay": True})  # fmt: skip
    assert (item["startTime"], item["endTime"], item["allDay"]) == (
        "2026-08-03",
        "2026-08-04",
        True,
    )


def test_task_fields() -> None:
    obj = {"type": "task", "name": "Ship", "startTime": "2026-08-01T09:00:00Z",
           "due": "2026-08-04T17:00:00Z", "status": "completed",
           "completedTime": "2026-08-04T10:00:00Z", "percentComplete": 100}  # fmt: skip
    assert roundtrip(obj) == obj | {"uid": "u@example.test", "updateSupported": True}


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"startTime": "2026-08-03T15:00:00Z", "endTime": "2026-08-03T15:00:00Z"},
         "end/due must be after startTime"),
        ({"startTime": "2026-08-03T15:00:00", "endTime": "2026-08-03T16:00:00"},
         "startTime must include a UTC offset"),
        ({"startTime": "2026-08-03T15:00:00"}, "dtstart must include a UTC offset"),
        ({"startTime": "2026-08-03T15:00:00", "timeZone": "Mars/Olympus"}, "invalid timeZone"),
        ({"startTime": "2026-08-03", "allDay": True, "timeZone": "UTC"},
         "all-day objects cannot have timeZone"),
        ({"startTime": "2026-08-03T15:00:00Z", "reminders": [{"trigger": "-PT5M",
                                                               "action": "email"}]},
         "email reminder requires recipients"),
        ({"startTime": "2026-08-03T15:00:00Z", "attendees": [{"email": "nobody"}]},
         "invalid attendee.email"),
    ],
)  # fmt: skip
def test_invalid_objects(obj: dict[str, object], reason: str) -> None:
    with pytest.raises(ical.Invalid) as caught:
        ical.to_ical({"type": "event", "name": "x", **obj}, "u1")
    assert str(caught.value) == reason


@pytest.mark.parametrize("uid", ["a/b", "a%2F", "a\\b", "a\r\nb", ""])
def test_unsafe_uids(uid: str) -> None:
    with pytest.raises(ical.Invalid, match="invalid uid"):
        ical.to_ical({"type": "event", "name": "x", "startTime": "2026-08-03T15:00:00Z"}, uid)
    with pytest.raises(vcard.Invalid):
        vcard.to_vcard({"type": "person", "name": "x"}, uid)


RECURRING = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:r1\r\nSUMMARY:Weekly\r\n"
    "DTSTART:20260803T150000Z\r\nRRULE:FREQ=WEEKLY\r\nEXDATE:20260810T150000Z\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_resources_unsafe_to_rewrite() -> None:
    assert ical.from_ical(RECURRING)["updateSupported"] is False
    assert not ical.safe_to_rewrite(RECURRING)
    assert not ical.safe_to_rewrite("not a calendar")
    assert ical.safe_to_rewrite(RECURRING.replace("EXDATE:20260810T150000Z\r\n", ""))


def test_unreadable_resources() -> None:
    with pytest.raises(ical.Unreadable):
        ical.from_ical(RECURRING.replace("SUMMARY:Weekly\r\n", ""))
    with pytest.raises(ical.Unreadable):
        ical.from_ical("garbage")


def test_query_helpers() -> None:
    assert query_time("2026-08-01T02:00:00+02:00") == "20260801T000000Z"
    with pytest.raises(DavError, match="invalid-query"):
        query_time("yesterday")
    body = query_body("VTODO", "20260801T000000Z", None).decode()
    assert '<C:comp-filter name="VTODO"><C:time-range start="20260801T000000Z" />' in (
        body.replace("c:", "C:")
    )
    assert item_name("a b@x", ".ics") == "a%20b%40x.ics"


# --- vCard ------------------------------------------------------------------------------------


def test_contact_roundtrip() -> None:
    obj = {
        "type": "person",
        "name": "Dr. Bob Q. Example, Jr.",
        "givenName": "Bob",
        "familyName": "Example",
        "additionalNames": ["Q."],
        "honorificPrefixes": ["Dr."],
        "honorificSuffixes": ["Jr."],
        "nickname": "Bobby",
        "emails": [{"value": "bob@example.com", "types": ["work"], "preferred": True}],
        "telephones": [{"value": "+420 123", "types": ["cell", "voice"]}],
        "urls": [{"value": "https://bob.example"}],
        "addresses": [
            {
                "types": ["home"],
                "street": "Main 1",
                "locality": "Brno",
                "postalCode": "60200",
                "country": "CZ",
            }
        ],
        "organization": "ACME",
        "title": "Engineer",
        "role": "Builder",
        "photoUrls": ["https://bob.example/me.png"],
        "note": "line one\nline two, with; punctuation",
        "birthday": "1990-01-02",
    }
    item = vcard.from_vcard(vcard.to_vcard(obj, "bob-1"))
    assert item.pop("uid") == "bob-1"
    assert item.pop("id") is None
    assert item.pop("vcardVersion") == "4.0" and item.pop("updateSupported") is True
    assert item == obj


def test_vcard_3_reading() -> None:
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:X\r\nN:;X;;;\r\n"
        "EMAIL;TYPE=INTERNET;TYPE=pref:mailto:x@example.com\r\nTEL;TYPE=CELL:tel:+1 555\r\n"
        "PHOTO;ENCODING=b;TYPE=JPEG:aGVsbG8=\r\nEND:VCARD\r\n"
    )
    item = vcard.from_vcard(card)
    assert item["familyName"] == "" and item["givenName"] == "X"
    assert item["emails"] == [{"value": "x@example.com", "types": ["internet"], "preferred": True}]
    assert item["telephones"] == [{"value": "+1 555", "types": ["cell"]}]
    assert "photoUrls" not in item  # inline photos are not shown


@pytest.mark.parametrize(
    "card",
    [
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:No uid\r\nEND:VCARD\r\n",
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:x\r\nEND:VCARD\r\n",
        "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:x\r\nFN:x\r\nEND:VCARD\r\n",
        "garbage",
    ],
)
def test_unreadable_cards(card: str) -> None:
    with pytest.raises(vcard.Unreadable):
        vcard.from_vcard(card)


def test_update_keeps_the_stored_cards_unknown_lines() -> None:
    stored = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:Old\r\nNOTE:old note\r\n"
        "item1.X-ABLABEL:Partner\r\nX-LONG:" + "y" * 100 + "\r\n"
        "PHOTO;ENCODING=b;TYPE=JPEG:aGVsbG8=\r\nCATEGORIES:a,b\r\nEND:VCARD\r\n"
    )
    text = vcard.to_vcard({"type": "person", "name": "New"}, "x", stored)
    lines = vcard.unfold(text)
    assert "item1.X-ABLABEL:Partner" in lines and "CATEGORIES:a,b" in lines
    assert "X-LONG:" + "y" * 100 in lines
    assert "PHOTO;ENCODING=b;TYPE=JPEG:aGVsbG8=" in lines  # kept: no photoUrls in the request
    assert "FN:New" in lines and not any(line.startswith("NOTE") for line in lines)
    assert lines[-1] == "END:VCARD" and text.endswith("END:VCARD\r\n")
    replaced = vcard.unfold(vcard.to_vcard({"type": "person", "name": "New", "photoUrls": []},
                                           "x", stored))  # fmt: skip
    assert not any(line.startswith("PHOTO") for line in replaced)
