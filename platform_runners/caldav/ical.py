"""iCalendar <-> the spec's JSON event and task shapes, through the ``icalendar`` library.

Raw iCalendar never reaches a client: a resource becomes an item dict, and a
client's object becomes a whole new resource (an update rewrites it, so the
caller first checks with :func:`safe_to_rewrite` that nothing would be lost
beyond what the spec says an update loses).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Alarm, Calendar, Component, Event, Todo, vCalAddress, vDDDTypes, vRecur

from schemas.envelopes import JSONDict

PRODID = "-//Sockethub//CalDAV Platform//EN"
UNSAFE_UID = re.compile(r"[\r\n%/\\]")
_ROLES = {
    "chair": "CHAIR",
    "required": "REQ-PARTICIPANT",
    "optional": "OPT-PARTICIPANT",
    "non-participant": "NON-PARTICIPANT",
}
_ROLE_NAMES = {v: k for k, v in _ROLES.items()} | {"REQUIRED": "required", "OPTIONAL": "optional"}
ITEM_ORDER = (
    "id", "etag", "type", "uid", "name", "updateSupported", "content", "location", "url",
    "startTime", "endTime", "due", "allDay", "timeZone", "status", "completedTime",
    "percentComplete", "sequence", "recurrence", "organizer", "attendees", "attachments",
    "reminders",
)  # fmt: skip


class Invalid(ValueError):
    """A client object that cannot be written; ``str`` is the reason after ``invalid-<verb>: ``."""


class Unreadable(ValueError):
    """A stored resource that cannot be shown as an item; ``str`` says why."""


# --- JSON -> iCalendar ------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid("invalid timeZone") from None


def _moment(value: object, field: str, *, all_day: bool, zone: ZoneInfo | None) -> date | datetime:
    if not isinstance(value, str):
        raise Invalid(f"invalid {field}")
    if all_day:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise Invalid(f"{field} must be a date (YYYY-MM-DD) for all-day objects") from None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"invalid {field}") from None
    if zone is not None:
        return moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)
    if moment.tzinfo is None:
        raise Invalid(f"{field} must include a UTC offset")
    return moment.astimezone(UTC)


def _address(person: object, field: str) -> vCalAddress:
    if not isinstance(person, dict) or not isinstance(person.get("email"), str):
        raise Invalid(f"invalid {field}.email")
    email = person["email"]
    if "@" not in email or any(c in email for c in '\r\n:;"') or email != email.strip():
        raise Invalid(f"invalid {field}.email")
    address = vCalAddress(f"mailto:{email}")
    if person.get("name"):
        address.params["CN"] = str(person["name"])
    if person.get("role"):
        address.params["ROLE"] = _ROLES.get(str(person["role"]), str(person["role"]).upper())
    if person.get("status"):
        address.params["PARTSTAT"] = str(person["status"]).upper()
    if "rsvp" in person:
        address.params["RSVP"] = "TRUE" if person["rsvp"] else "FALSE"
    return address


def _recurrence(rule: JSONDict, zone: ZoneInfo | None) -> vRecur:
    recur: dict[str, Any] = {"FREQ": str(rule["frequency"]).upper()}
    if "interval" in rule:
        recur["INTERVAL"] = rule["interval"]
    if "count" in rule:
        recur["COUNT"] = rule["count"]
    if "until" in rule:
        recur["UNTIL"] = _moment(rule["until"], "recurrence.until", all_day=False, zone=None)
    if rule.get("byDay"):
        recur["BYDAY"] = list(rule["byDay"])
    if rule.get("byMonthDay"):
        recur["BYMONTHDAY"] = list(rule["byMonthDay"])
    return vRecur(recur)


def _alarm(reminder: JSONDict) -> Alarm:
    alarm = Alarm()
    action = str(reminder.get("action", "display")).upper()
    alarm.add("action", action)
    trigger = str(reminder.get("trigger", ""))
    try:
        alarm.add("trigger", vDDDTypes.from_ical(trigger))  # type: ignore[no-untyped-call]
    except ValueError:
        raise Invalid("invalid reminder trigger") from None
    alarm.add("description", str(reminder.get("description") or "Reminder"))
    if action == "EMAIL":
        recipients = reminder.get("recipients") or []
        if not recipients:
            raise Invalid("email reminder requires recipients")
        alarm.add("summary", str(reminder.get("description") or "Reminder"))
        for email in recipients:
            alarm.add("attendee", _address({"email": email}, "reminder.recipient"))
    return alarm


def new_uid() -> str:
    return f"{uuid.uuid4()}@sockethub"


def to_ical(obj: JSONDict, uid: str) -> bytes:
    """A whole VCALENDAR for an event or task object; :class:`Invalid` says what is wrong."""
    if not uid or UNSAFE_UID.search(uid):
        raise Invalid("invalid uid")
    kind = obj.get("type")
    all_day = bool(obj.get("allDay"))
    zone = None
    if obj.get("timeZone"):
        if all_day:
            raise Invalid("all-day objects cannot have timeZone")
        zone = _zone(str(obj["timeZone"]))
    component: Component = Event() if kind == "event" else Todo()
    component.add("uid", uid)
    component.add("dtstamp", datetime.now(UTC).replace(microsecond=0))
    component.add("summary", str(obj.get("name", "")))
    for field, prop in (("content", "description"), ("location", "location"), ("url", "url")):
        if obj.get(field) is not None:
            component.add(prop, str(obj[field]))
    end_field = "endTime" if kind == "event" else "due"
    start = end = None
    if obj.get("startTime") is not None:
        label = "startTime" if obj.get(end_field) is not None else "dtstart"
        start = _moment(obj["startTime"], label, all_day=all_day, zone=zone)
        component.add("dtstart", start)
    if obj.get(end_field) is not None:
        end = _moment(obj[end_field], end_field, all_day=all_day, zone=zone)
        if start is not None and _as_utc(end) <= _as_utc(start):
            raise Invalid("end/due must be after startTime")
        component.add("dtend" if kind == "event" else "due", end)
    if kind == "task":
        if obj.get("status"):
            component.add("status", str(obj["status"]).upper())
        if obj.get("completedTime"):
            completed = _moment(obj["completedTime"], "completedTime", all_day=False, zone=None)
            component.add("completed", completed)
        if obj.get("percentComplete") is not None:
            component.add("percent-complete", int(obj["percentComplete"]))
    if obj.get("sequence") is not None:
        component.add("sequence", int(obj["sequence"]))
    if isinstance(obj.get("recurrence"), dict):
        component.add("rrule", _recurrence(obj["recurrence"], zone))
    if obj.get("organizer") is not None:
        component.add("organizer", _address(obj["organizer"], "organizer"))
    for attendee in obj.get("attendees") or []:
        component.add("attendee", _address(attendee, "attendee"))
    for attachment in obj.get("attachments") or []:
        component.add("attach", *_attachment(attachment))
    for reminder in obj.get("reminders") or []:
        component.add_component(_alarm(reminder))
    calendar = Calendar()
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("prodid", PRODID)
    calendar.add_component(component)
    if zone is not None:
        calendar.add_missing_timezones()
        # VTIMEZONE before the component, as the spec writes it.
        calendar.subcomponents.sort(key=lambda c: c.name != "VTIMEZONE")
    return bytes(calendar.to_ical())


def _attachment(attachment: JSONDict) -> tuple[str, dict[str, str]]:
    params: dict[str, str] = {}
    if attachment.get("mediaType"):
        params["FMTTYPE"] = str(attachment["mediaType"])
    if attachment.get("filename"):
        params["FILENAME"] = str(attachment["filename"])
    if attachment.get("data") is not None:
        try:
            base64.b64decode(str(attachment["data"]), validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("invalid attachment data") from None
        params |= {"ENCODING": "BASE64", "VALUE": "BINARY"}
        return str(attachment["data"]), params
    return str(attachment.get("url", "")), params


def _as_utc(moment: date | datetime) -> datetime:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


# --- iCalendar -> JSON ------------------------------------------------------------------------


def _parse(text: bytes | str) -> Calendar:
    try:
        calendar = Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise Unreadable(f"unparseable iCalendar: {exc}") from None
    if not isinstance(calendar, Calendar):
        raise Unreadable("not a VCALENDAR")
    return calendar


def _components(calendar: Calendar) -> list[Component]:
    return [c for c in calendar.subcomponents if c.name in ("VEVENT", "VTODO")]


def safe_to_rewrite(text: bytes | str) -> bool:
    """Whether an update may regenerate the resource: one component, no exceptions/extra dates."""
    try:
        parts = _components(_parse(text))
    except Unreadable:
        return False
    if len(parts) != 1:
        return False
    return not any(key in parts[0] for key in ("RECURRENCE-ID", "EXDATE", "RDATE"))


def _time(prop: Any) -> tuple[str, str | None, bool]:
    """``(text, TZID, all-day)`` of a DTSTART/DTEND/DUE property."""
    value = prop.dt
    tzid = prop.params.get("TZID")
    if isinstance(value, datetime):
        if value.tzinfo is not None and not tzid and value.utcoffset() == timedelta(0):
            return value.strftime("%Y-%m-%dT%H:%M:%SZ"), None, False
        return value.strftime("%Y-%m-%dT%H:%M:%S"), (str(tzid) if tzid else None), False
    if isinstance(value, date):
        return value.isoformat(), None, True
    return str(prop.to_ical().decode()), None, False


def _person(address: Any) -> JSONDict:
    text = str(address)
    person: JSONDict = {"email": text[7:] if text.lower().startswith("mailto:") else text}
    params = getattr(address, "params", {})
    if params.get("CN"):
        person["name"] = str(params["CN"])
    if params.get("ROLE"):
        role = str(params["ROLE"]).upper()
        person["role"] = _ROLE_NAMES.get(role, role.lower())
    if params.get("PARTSTAT"):
        person["status"] = str(params["PARTSTAT"]).lower()
    if params.get("RSVP"):
        person["rsvp"] = str(params["RSVP"]).upper() == "TRUE"
    return person


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _rule(recur: Any) -> JSONDict:
    rule: JSONDict = {"frequency": str(recur["FREQ"][0]).lower()}
    if "INTERVAL" in recur:
        rule["interval"] = int(recur["INTERVAL"][0])
    if "COUNT" in recur:
        rule["count"] = int(recur["COUNT"][0])
    if "UNTIL" in recur:
        until = recur["UNTIL"][0]
        rule["until"] = (
            until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if isinstance(until, datetime)
            else until.isoformat()
        )
    if "BYDAY" in recur:
        rule["byDay"] = [str(day) for day in recur["BYDAY"]]
    if "BYMONTHDAY" in recur:
        rule["byMonthDay"] = [int(day) for day in recur["BYMONTHDAY"]]
    return rule


def from_ical(text: bytes | str) -> JSONDict:
    """The item for a stored resource, without ``id``/``etag``; :class:`Unreadable` if none."""
    calendar = _parse(text)
    parts = _components(calendar)
    todos = [c for c in parts if c.name == "VTODO"]
    if not parts:
        raise Unreadable("no VEVENT or VTODO")
    component = todos[0] if todos else parts[0]
    uid, summary = component.get("UID"), component.get("SUMMARY")
    if not uid or summary is None:
        raise Unreadable("UID and SUMMARY are required")
    kind = "task" if component.name == "VTODO" else "event"
    update_supported = len(parts) == 1 and not any(
        key in component for key in ("RECURRENCE-ID", "EXDATE", "RDATE")
    )
    item: JSONDict = {
        "type": kind,
        "uid": str(uid),
        "name": str(summary),
        "updateSupported": update_supported,
    }
    for prop, field in (("DESCRIPTION", "content"), ("LOCATION", "location"), ("URL", "url")):
        if component.get(prop) is not None:
            item[field] = str(component[prop])
    try:
        if component.get("DTSTART") is not None:
            item["startTime"], tzid, all_day = _time(component["DTSTART"])
            if all_day:
                item["allDay"] = True
            if tzid:
                item["timeZone"] = tzid
        end_prop = "DTEND" if kind == "event" else "DUE"
        if component.get(end_prop) is not None:
            item["endTime" if kind == "event" else "due"] = _time(component[end_prop])[0]
        if component.get("STATUS") is not None:
            item["status"] = str(component["STATUS"]).lower()
        if component.get("COMPLETED") is not None:
            item["completedTime"] = _time(component["COMPLETED"])[0]
        if component.get("PERCENT-COMPLETE") is not None:
            item["percentComplete"] = int(str(component["PERCENT-COMPLETE"]))
        if component.get("SEQUENCE") is not None:
            item["sequence"] = int(str(component["SEQUENCE"]))
        if component.get("RRULE") is not None:
            item["recurrence"] = _rule(_as_list(component["RRULE"])[0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise Unreadable(f"unreadable property: {exc}") from None
    if component.get("ORGANIZER") is not None:
        item["organizer"] = _person(component["ORGANIZER"])
    attendees = [_person(a) for a in _as_list(component.get("ATTENDEE"))]
    if attendees:
        item["attendees"] = attendees
    attachments = [_read_attachment(a) for a in _as_list(component.get("ATTACH"))]
    if attachments:
        item["attachments"] = attachments
    reminders = [_reminder(a) for a in component.subcomponents if a.name == "VALARM"]
    if reminders:
        item["reminders"] = reminders
    return {key: item[key] for key in ITEM_ORDER if key in item}


def _read_attachment(attach: Any) -> JSONDict:
    params = getattr(attach, "params", {})
    found: JSONDict = {}
    if str(params.get("VALUE", "")).upper() == "BINARY":
        found["data"] = str(attach)
    else:
        found["url"] = str(attach)
    if params.get("FMTTYPE"):
        found["mediaType"] = str(params["FMTTYPE"])
    if params.get("FILENAME"):
        found["filename"] = str(params["FILENAME"])
    return found


def _reminder(alarm: Component) -> JSONDict:
    found: JSONDict = {}
    trigger = alarm.get("TRIGGER")
    if trigger is not None:
        found["trigger"] = trigger.to_ical().decode()
    if alarm.get("ACTION") is not None:
        found["action"] = str(alarm["ACTION"]).lower()
    if alarm.get("DESCRIPTION") is not None:
        found["description"] = str(alarm["DESCRIPTION"])
    recipients = [_person(a)["email"] for a in _as_list(alarm.get("ATTENDEE"))]
    if recipients:
        found["recipients"] = recipients
    return found
