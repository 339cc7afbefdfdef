"""The carddav platform against a real Radicale: every verb, unknown properties, conflicts."""

from __future__ import annotations

import uuid
from typing import Any

from platform_runners.carddav.platform import CarddavPlatform
from tests.fixtures.radicale import USERS, Radicale
from tests.integration.dav.harness import Session, make_platform

ACTOR = "carddav:alice"


def book_of(radicale: Radicale) -> str:
    name = uuid.uuid4().hex[:8]
    return radicale.mkaddressbook("alice", f"/alice/{name}/", f"Book {name}")


def session(radicale: Radicale, **options: Any) -> Session:
    found = Session(make_platform(CarddavPlatform, **options), ACTOR)
    found.login(radicale.url, username="alice", password=USERS["alice"])
    return found


def target(url: str) -> dict[str, str]:
    return {"id": url, "type": "addressBook"}


def path_of(radicale: Radicale, url: str) -> str:
    return url.removeprefix(radicale.url.rstrip("/"))


async def test_fetch_lists_the_address_books(radicale: Radicale) -> None:
    book = book_of(radicale)
    result = await session(radicale).send("fetch")
    assert result["id"] is None and result["summary"] == "CardDAV address books"
    found = next(item for item in result["items"] if item["id"] == book)
    assert found["type"] == "addressBook" and found["name"].startswith("Book ")
    assert found["description"] == "Contacts for tests"


async def test_every_verb_on_a_contact(radicale: Radicale) -> None:
    book = book_of(radicale)
    s = session(radicale)
    carol = {
        "type": "person",
        "name": "Carol Example",
        "givenName": "Carol",
        "familyName": "Example",
        "telephones": [{"value": "+420 123", "types": ["cell"]}],
        "emails": [{"value": "carol@example.com", "types": ["work"], "preferred": True}],
    }
    created = await s.send("create", id="c3", target=target(book), object=carol)
    obj = created["object"]
    assert obj["type"] == "person" and obj["etag"] and len(obj["uid"]) == 36
    assert obj["id"] == f"{book}{obj['uid']}.vcf"
    await s.send("create", target=target(book), object={"type": "person", "name": "Dave"})

    query = {"type": "contactQuery", "text": "carol", "fields": ["name", "email"], "limit": 50}
    result = await s.send("query", id="c2", target=target(book), object=query)
    assert result["summary"] == "CardDAV contacts" and result["totalItems"] == 1
    item = result["items"][0]
    assert item["type"] == "person" and item["name"] == "Carol Example"
    assert item["emails"] == [{"value": "carol@example.com", "types": ["work"], "preferred": True}]
    assert item["telephones"] == [{"value": "+420 123", "types": ["cell"]}]
    assert list(item)[-4:] == ["id", "vcardVersion", "updateSupported", "etag"]
    assert item["id"] == obj["id"] and item["etag"] == obj["etag"]
    everyone = await s.send("query", target=target(book), object={})
    assert sorted(i["name"] for i in everyone["items"]) == ["Carol Example", "Dave"]
    limited = await s.send("query", target=target(book), object={"limit": 1})
    assert limited["totalItems"] == 1

    changed = {**item, "note": "met at FOSDEM"}
    updated = await s.send("update", id="c4", target=target(book), object=changed)
    assert updated["object"]["etag"] != obj["etag"]
    stale = {"id": obj["id"], "type": "person", "etag": obj["etag"]}
    assert await s.error("update", target=target(book), object=changed) == "carddav:conflict"
    assert await s.error("delete", target=target(book), object=stale) == "carddav:conflict"
    ref = {**stale, "etag": updated["object"]["etag"]}
    deleted = await s.send("delete", id="c5", target=target(book), object=ref)
    assert deleted["object"] == {"id": obj["id"], "type": "person"}
    assert await s.error("delete", target=target(book), object=ref) == "carddav:not-found"


async def test_unknown_properties_survive_an_update(radicale: Radicale) -> None:
    book = book_of(radicale)
    s = session(radicale)
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bob-1\r\nFN:Bob Example\r\nN:Example;Bob;;;\r\n"
        "EMAIL;TYPE=INTERNET,pref:bob@example.com\r\nX-SOCIAL;TYPE=fediverse:@bob@example.social\r\n"
        "CATEGORIES:friends,work\r\nEND:VCARD\r\n"
    )
    path = path_of(radicale, book) + "bob-1.vcf"
    assert radicale.call("alice", "PUT", path, card, **{"Content-Type": "text/vcard"}) == 201
    item = (await s.send("query", target=target(book), object={"text": "Bob"}))["items"][0]
    assert item["vcardVersion"] == "3.0"
    assert item["emails"] == [{"value": "bob@example.com", "types": ["internet"],
                               "preferred": True}]  # fmt: skip
    # The client sends extra fields of its own; only the server's unknown lines are kept.
    await s.send("update", target=target(book), object={**item, "note": "met at FOSDEM"})
    status, stored = radicale.exchange("alice", "GET", path)
    assert status == 200
    assert "X-SOCIAL;TYPE=fediverse:@bob@example.social" in stored
    assert "CATEGORIES:friends,work" in stored
    assert "NOTE:met at FOSDEM" in stored and "VERSION:4.0" in stored


async def test_uid_mismatch_and_rules(radicale: Radicale) -> None:
    book = book_of(radicale)
    s = session(radicale)
    created = (await s.send("create", target=target(book), object={"type": "person",
                                                                    "name": "Eve"}))  # fmt: skip
    obj = created["object"]
    wrong = {**obj, "uid": "someone-else", "name": "Eve"}
    assert await s.error("update", target=target(book), object=wrong) == "carddav:uid-mismatch"
    no_uid = {"id": obj["id"], "etag": obj["etag"], "type": "person", "name": "Eve"}
    assert await s.error("update", target=target(book), object=no_uid) == (
        "carddav:invalid-update: update needs object.uid"
    )
    bad_uid = {"type": "person", "name": "Eve", "uid": "a/b"}
    assert await s.error("create", target=target(book), object=bad_uid) == (
        "carddav:invalid-create"
    )


async def test_one_unreadable_card_does_not_fail_the_query(radicale: Radicale) -> None:
    book = book_of(radicale)
    s = session(radicale)
    await s.send("create", target=target(book), object={"type": "person", "name": "Fay"})
    # Radicale stores a vCard 2.1, which the spec's reader (3.0 and 4.0 only) refuses.
    old = "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:old\r\nFN:Old\r\nN:Old;;;;\r\nEND:VCARD\r\n"
    path = path_of(radicale, book) + "old.vcf"
    assert radicale.call("alice", "PUT", path, old, **{"Content-Type": "text/vcard"}) == 201
    items = (await s.send("query", target=target(book), object={}))["items"]
    assert len(items) == 2
    broken = next(i for i in items if "error" in i)
    assert broken["id"] == book + "old.vcf"
    assert broken["error"].startswith("carddav:invalid-response: ")
    assert next(i for i in items if "error" not in i)["name"] == "Fay"


async def test_refusals(radicale: Radicale) -> None:
    s = session(radicale)
    s.login(radicale.url, username="alice", password="wrong")
    assert await s.error("fetch") == "carddav:authentication-failed"
    assert await session(radicale, allowlist="").error("fetch") == "carddav:connection-failed"
    assert await session(radicale, insecure=False).error("fetch") == (
        "Error: carddav:https-required"
    )
    other = radicale.mkaddressbook("bob", f"/bob/{uuid.uuid4().hex[:8]}/", "Bob's")
    assert await session(radicale).error("query", target=target(other)) == (
        "carddav:invalid-address-book"
    )
