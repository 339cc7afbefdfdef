"""The ``carddav`` platform (spec section 2): address books and contacts.

Discovery, credentials and the shared checks live in
:mod:`platform_runners.dav.platform`; this module adds the CardDAV requests
(``addressbook-query`` REPORTs, ``.vcf`` PUTs) and the vCard mapping.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from platform_runners.caldav.platform import item_name
from platform_runners.carddav import vcard
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

_VCF = {"Content-Type": "text/vcard; charset=utf-8"}
_FIELDS = {
    "name": ("FN", "N"),
    "email": ("EMAIL",),
    "telephone": ("TEL",),
    "organization": ("ORG",),
}


def query_body(text: str | None, fields: list[str]) -> bytes:
    root = ET.Element(xml.qname(xml.CARDDAV, "addressbook-query"))
    prop = ET.SubElement(root, xml.qname(xml.DAV, "prop"))
    ET.SubElement(prop, xml.qname(xml.DAV, "getetag"))
    ET.SubElement(prop, xml.qname(xml.CARDDAV, "address-data"), {"content-type": "text/vcard"})
    if text is None:
        filters = ET.SubElement(root, xml.qname(xml.CARDDAV, "filter"))
        ET.SubElement(filters, xml.qname(xml.CARDDAV, "prop-filter"), name="UID")
        return xml.serialize(root)
    filters = ET.SubElement(root, xml.qname(xml.CARDDAV, "filter"), test="anyof")
    for field in fields:
        for name in _FIELDS[field]:
            prop_filter = ET.SubElement(filters, xml.qname(xml.CARDDAV, "prop-filter"), name=name)
            match = ET.SubElement(
                prop_filter,
                xml.qname(xml.CARDDAV, "text-match"),
                {"collation": "i;unicode-casemap", "match-type": "contains"},
            )
            match.text = text
    return xml.serialize(root)


class CarddavPlatform(DavPlatform):
    name = "carddav"
    target_type = "addressBook"
    item_type = "person"
    discovery = Discovery(
        home_set=(xml.CARDDAV, "addressbook-home-set"),
        collection=(xml.CARDDAV, "addressbook"),
        props=(
            (xml.DAV, "resourcetype"),
            (xml.DAV, "displayname"),
            (xml.CARDDAV, "addressbook-description"),
        ),
        well_known="/.well-known/carddav",
        no_home="not-carddav",
        invalid_target="invalid-address-book",
    )

    def check_object(self, verb: str, obj: JSONDict) -> None:
        if obj.get("type") != "person":
            raise VerbRuleError(f"{verb} needs an object of type person")
        if verb in ("create", "update") and not obj.get("name"):
            raise VerbRuleError(f"{verb} needs object.name")

    def describe(self, href: str, props: dict[str, ET.Element]) -> JSONDict:
        name = xml.text_of(props.get(xml.qname(xml.DAV, "displayname")))
        found: JSONDict = {"id": href, "type": "addressBook", "name": name or urlsplit(href).path}
        description = xml.text_of(props.get(xml.qname(xml.CARDDAV, "addressbook-description")))
        if description:
            found["description"] = description
        return found

    def fetch_result(self, activity: JSONDict, collections: list[JSONDict]) -> JSONDict:
        return collection_result(activity, "CardDAV address books", collections, always_id=True)

    async def query(self, client: DavClient, collection: JSONDict, activity: JSONDict) -> JSONDict:
        obj = activity.get("object")
        obj = obj if isinstance(obj, dict) else {}
        text = str(obj["text"]) if obj.get("text") else None
        fields = [f for f in obj.get("fields") or list(_FIELDS) if f in _FIELDS]
        answer = await client.request(
            "REPORT",
            collection["id"],
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            body=query_body(text, fields or list(_FIELDS)),
        )
        if answer.status != 207:
            raise DavError("query-failed")
        try:
            responses = xml.multistatus(answer.body)
        except xml.XmlError:
            raise DavError("invalid-response") from None
        items = [self._item(client, r, answer.url) for r in responses]
        if isinstance(obj.get("limit"), int):
            items = items[: obj["limit"]]
        return collection_result(activity, "CardDAV contacts", items, always_id=False)

    def _item(self, client: DavClient, response: xml.DavResponse, at: str) -> JSONDict:
        """One queried contact; an unreadable card carries its own ``error``."""
        href = client.resolve(response.href, at)
        etag = xml.text_of(response.props.get(xml.qname(xml.DAV, "getetag")))
        data = xml.text_of(response.props.get(xml.qname(xml.CARDDAV, "address-data")))
        try:
            if data is None:
                raise vcard.Unreadable("no address-data")
            item = vcard.from_vcard(data)
        except vcard.Unreadable as exc:
            broken: JSONDict = {"type": "person", "id": href}
            if etag:
                broken["etag"] = etag
            return broken | {"error": f"carddav:invalid-response: {exc}"}
        item["id"] = href
        if etag:
            item["etag"] = etag
        return item

    def _card(self, obj: JSONDict, uid: str, verb: str, stored: str | None = None) -> bytes:
        try:
            return vcard.to_vcard(obj, uid, stored).encode()
        except vcard.Invalid:
            raise DavError(f"invalid-{verb}") from None

    async def create(self, client: DavClient, collection: JSONDict, activity: JSONDict) -> JSONDict:
        obj = activity["object"]
        uid = str(obj.get("uid") or vcard.new_uid())
        body = self._card(obj, uid, "create")
        url = client.resolve(item_name(uid, ".vcf"), collection["id"])
        answer = await client.request("PUT", url, headers={**_VCF, "If-None-Match": "*"}, body=body)
        check_write(answer.status, "create-failed")
        if answer.headers.get("location"):
            url = client.resolve(answer.headers["location"], url)
        created: JSONDict = {"id": url, "type": "person", "uid": uid}
        etag = etag_of(answer.headers)
        if etag:
            created["etag"] = etag
        return reply(activity, created)

    async def update(self, client: DavClient, collection: JSONDict, activity: JSONDict) -> JSONDict:
        obj = activity["object"]
        url = member_url(client, collection["id"], str(obj["id"]))
        stored = await client.request("GET", url, headers={"If-Match": str(obj["etag"])})
        check_write(stored.status, "update-failed")
        text = stored.body.decode("utf-8", "replace")
        found_uid = vcard.stored_uid(text)
        if found_uid is None:
            raise DavError("unsupported-update")
        if found_uid != obj["uid"]:
            raise DavError("uid-mismatch")
        body = self._card(obj, str(obj["uid"]), "update", stored=text)
        answer = await client.request(
            "PUT", url, headers={**_VCF, "If-Match": str(obj["etag"])}, body=body
        )
        check_write(answer.status, "update-failed")
        updated: JSONDict = {"id": obj["id"], "type": "person", "uid": obj["uid"]}
        etag = etag_of(answer.headers)
        if etag:
            updated["etag"] = etag
        return reply(activity, updated)
