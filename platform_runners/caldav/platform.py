"""The ``caldav`` platform (spec section 1): calendars, events and tasks.

Discovery, credentials and the shared checks live in
:mod:`platform_runners.dav.platform`; this module adds the CalDAV requests
(``calendar-query`` REPORTs, ``.ics`` PUTs) and the iCalendar mapping.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from platform_runners.caldav import ical
from platform_runners.dav import xml
from platform_runners.dav.client import DavClient, DavError
from platform_runners.dav.platform import (
    DavPlatform,
    Discovery,
    VerbRuleError,
    check_write,
    collection_result,
    etag_of,
    member_url,
    reply,
)
from schemas.envelopes import JSONDict

_COMPONENTS = {"VEVENT": "event", "VTODO": "task"}
_ICS = {"Content-Type": "text/calendar; charset=utf-8"}


def item_name(uid: str, suffix: str) -> str:
    """``encodeURIComponent(uid) + suffix``, as Sockethub names created resources."""
    return quote(uid, safe="-_.!~*'()") + suffix


def query_time(value: object) -> str:
    """A query bound as CalDAV's UTC ``YYYYMMDDTHHMMSSZ``; ``invalid-query`` if unparseable."""
    try:
        moment = datetime.fromisoformat(str(value).replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise DavError("invalid-query") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def query_body(component: str, start: str | None, end: str | None) -> bytes:
    root = ET.Element(xml.qname(xml.CALDAV, "calendar-query"))
    prop = ET.SubElement(root, xml.qname(xml.DAV, "prop"))
    ET.SubElement(prop, xml.qname(xml.DAV, "getetag"))
    ET.SubElement(prop, xml.qname(xml.CALDAV, "calendar-data"))
    filters = ET.SubElement(root, xml.qname(xml.CALDAV, "filter"))
    outer = ET.SubElement(filters, xml.qname(xml.CALDAV, "comp-filter"), name="VCALENDAR")
    inner = ET.SubElement(outer, xml.qname(xml.CALDAV, "comp-filter"), name=component)
    if start or end:
        bounds = {k: v for k, v in (("start", start), ("end", end)) if v}
        ET.SubElement(inner, xml.qname(xml.CALDAV, "time-range"), bounds)
    return xml.serialize(root)


class CaldavPlatform(DavPlatform):
    name = "caldav"
    target_type = "calendar"
    item_type = "event"
    discovery = Discovery(
        home_set=(xml.CALDAV, "calendar-home-set"),
        collection=(xml.CALDAV, "calendar"),
        props=(
            (xml.DAV, "resourcetype"),
            (xml.DAV, "displayname"),
            (xml.APPLE_ICAL, "calendar-color"),
            (xml.CALDAV, "supported-calendar-component-set"),
        ),
        well_known="/.well-known/caldav",
        no_home="not-caldav",
        invalid_target="invalid-calendar",
    )

    def check_object(self, verb: str, obj: JSONDict) -> None:
        kind = obj.get("type")
        if kind not in ("event", "task"):
            raise VerbRuleError(f"{verb} needs an object of type event or task")
        if verb in ("create", "update") and not obj.get("name"):
            raise VerbRuleError(f"{verb} needs object.name")
        if verb in ("create", "update") and kind == "event" and not obj.get("startTime"):
            raise VerbRuleError(f"{verb} of an event needs object.startTime")

    def describe(self, href: str, props: dict[str, ET.Element]) -> JSONDict:
        name = xml.text_of(props.get(xml.qname(xml.DAV, "displayname")))
        found: JSONDict = {"id": href, "type": "calendar", "name": name or _path(href)}
        color = xml.text_of(props.get(xml.qname(xml.APPLE_ICAL, "calendar-color")))
        if color:
            found["color"] = color
        supported = props.get(xml.qname(xml.CALDAV, "supported-calendar-component-set"))
        if supported is None:
            found["components"] = ["event", "task"]
        else:
            names = {c.get("name", "").upper() for c in supported}
            found["components"] = [v for k, v in _COMPONENTS.items() if k in names]
        return found

    def fetch_result(self, activity: JSONDict, collections: list[JSONDict]) -> JSONDict:
        return collection_result(activity, "CalDAV calendars", collections, always_id=True)

    async def query(self, client: DavClient, collection: JSONDict, activity: JSONDict) -> JSONDict:
        obj = activity.get("object") if isinstance(activity.get("object"), dict) else {}
        assert isinstance(obj, dict)
        start = query_time(obj["startTime"]) if obj.get("startTime") else None
        end = query_time(obj["endTime"]) if obj.get("endTime") else None
        if obj.get("type") in ("event", "task"):
            kinds = [obj["type"]]
        else:
            kinds = [k for k in ("event", "task") if k in collection["components"]]
        items: list[JSONDict] = []
        for kind in kinds:
            component = "VEVENT" if kind == "event" else "VTODO"
            answer = await client.request(
                "REPORT",
                collection["id"],
                headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
                body=query_body(component, start, end),
            )
            if answer.status != 207:
                raise DavError("query-failed")
            try:
                responses = xml.multistatus(answer.body)
            except xml.XmlError:
                raise DavError("invalid-response") from None
            for response in responses:
                items.append(self._item(client, response, answer.url, kind))
        return collection_result(activity, "CalDAV items", items, always_id=False)

    def _item(self, client: DavClient, response: xml.DavResponse, at: str, kind: str) -> JSONDict:
        """One queried item; an unreadable one carries its own ``error`` (not the query's)."""
        href = client.resolve(response.href, at)
        etag = xml.text_of(response.props.get(xml.qname(xml.DAV, "getetag")))
        head: JSONDict = {"id": href}
        if etag:
            head["etag"] = etag
        data = xml.text_of(response.props.get(xml.qname(xml.CALDAV, "calendar-data")))
        try:
            if data is None:
                raise ical.Unreadable("no calendar-data")
            body = ical.from_ical(data)
        except ical.Unreadable as exc:
            return head | {"type": kind, "error": f"caldav:invalid-response: {exc}"}
        return head | body

    async def create(self, client: DavClient, collection: JSONDict, activity: JSONDict) -> JSONDict:
        obj = activity["object"]
        if obj["type"] not in collection["components"]:
            raise DavError("unsupported-component")
        uid = str(obj.get("uid") or ical.new_uid())
        body = self._ical(obj, uid, "create")
        url = client.resolve(item_name(uid, ".ics"), collection["id"])
        answer = await client.request("PUT", url, headers={**_ICS, "If-None-Match": "*"}, body=body)
        check_write(answer.status, "create-failed")
        if answer.headers.get("location"):
            url = client.resolve(answer.headers["location"], url)
        created: JSONDict = {"id": url, "type": obj["type"], "uid": uid}
        etag = etag_of(answer.headers)
        if etag:
            created["etag"] = etag
        return reply(activity, created)

    def _ical(self, obj: JSONDict, uid: str, verb: str) -> bytes:
        try:
            return ical.to_ical(obj, uid)
        except ical.Invalid as exc:
            raise DavError(f"invalid-{verb}: {exc}") from None

    async def update(self, client: DavClient, collection: JSONDict, activity: JSONDict) -> JSONDict:
        obj = activity["object"]
        url = member_url(client, collection["id"], str(obj["id"]))
        body = self._ical(obj, str(obj["uid"]), "update")
        stored = await client.request("GET", url, headers={"If-Match": str(obj["etag"])})
        check_write(stored.status, "update-failed")
        if not ical.safe_to_rewrite(stored.body):
            raise DavError("unsupported-update")
        answer = await client.request(
            "PUT", url, headers={**_ICS, "If-Match": str(obj["etag"])}, body=body
        )
        check_write(answer.status, "update-failed")
        updated: JSONDict = {"id": obj["id"], "type": obj["type"], "uid": obj["uid"]}
        etag = etag_of(answer.headers)
        if etag:
            updated["etag"] = etag
        return reply(activity, updated)


def _path(href: str) -> str:
    return urlsplit(href).path
