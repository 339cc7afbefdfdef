"""The caldav platform against a real Radicale: every verb, conflicts, refusals."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from platform_runners.caldav.platform import CaldavPlatform
from tests.fixtures.radicale import USERS, Radicale
from tests.integration.dav.harness import Session, make_platform

ACTOR = "caldav:alice"


def calendar_of(radicale: Radicale, components: tuple[str, ...] = ("VEVENT", "VTODO")) -> str:
    name = uuid.uuid4().hex[:8]
    return radicale.mkcalendar("alice", f"/alice/{name}/", f"Cal {name}", components)


def session(radicale: Radicale, **options: Any) -> Session:
    found = Session(make_platform(CaldavPlatform, **options), ACTOR)
    found.login(radicale.url, username="alice", password=USERS["alice"])
    return found


def target(url: str) -> dict[str, str]:
    return {"id": url, "type": "calendar"}


async def test_fetch_lists_the_calendars_with_their_components(radicale: Radicale) -> None:
    both = calendar_of(radicale)
    events = calendar_of(radicale, ("VEVENT",))
    result = await session(radicale).send("fetch", id="m1")
    assert result["type"] == "collection" and result["id"] == "m1"
    assert result["summary"] == "CalDAV calendars"
    by_id = {item["id"]: item for item in result["items"]}
    assert by_id[both]["components"] == ["event", "task"]
    assert by_id[events]["components"] == ["event"]
    assert by_id[both]["type"] == "calendar" and by_id[both]["name"].startswith("Cal ")
    assert result["totalItems"] == len(result["items"])


async def test_fetch_without_id_answers_id_null(radicale: Radicale) -> None:
    result = await session(radicale).send("fetch")
    assert result["id"] is None


async def test_every_verb_on_an_event(radicale: Radicale) -> None:
    cal = calendar_of(radicale)
    s = session(radicale)
    event = {
        "type": "event",
        "name": "Planning",
        "startTime": "2026-08-03T15:00:00",
        "endTime": "2026-08-03T16:00:00",
        "timeZone": "Europe/Prague",
        "recurrence": {"frequency": "weekly", "count": 4, "byDay": ["MO"]},
        "attendees": [{"email": "bob@example.com", "name": "Bob", "role": "required"}],
        "reminders": [{"trigger": "-PT15M"}],
    }
    created = await s.send("create", id="m3", target=target(cal), object=event)
    obj = created["object"]
    assert created["type"] == "create" and created["id"] == "m3"
    assert obj["type"] == "event" and obj["uid"].endswith("@sockethub") and obj["etag"]
    assert obj["id"] == cal + obj["uid"].replace("@", "%40") + ".ics"

    window = {"type": "event", "startTime": "2026-08-01T00:00:00Z",
              "endTime": "2026-09-01T00:00:00Z"}  # fmt: skip
    queried = await s.send("query", id="m2", target=target(cal), object=window)
    assert queried["summary"] == "CalDAV items" and queried["totalItems"] == 1
    item = queried["items"][0]
    assert list(item)[:6] == ["id", "etag", "type", "uid", "name", "updateSupported"]
    assert item["id"] == obj["id"] and item["etag"] == obj["etag"]
    assert item["startTime"] == "2026-08-03T15:00:00" and item["timeZone"] == "Europe/Prague"
    assert item["recurrence"] == {"frequency": "weekly", "count": 4, "byDay": ["MO"]}
    assert item["attendees"] == [{"email": "bob@example.com", "name": "Bob", "role": "required"}]
    assert item["reminders"] == [
        {"trigger": "-PT15M", "action": "display", "description": "Reminder"}
    ]
    outside = {"type": "event", "startTime": "2027-01-01T00:00:00Z",
               "endTime": "2027-02-01T00:00:00Z"}  # fmt: skip
    assert (await s.send("query", target=target(cal), object=outside))["items"] == []

    moved = {**item, "name": "Planning (moved)", "startTime": "2026-08-04T13:00:00Z",
             "sequence": 1}  # fmt: skip
    del moved["timeZone"], moved["endTime"]
    updated = await s.send("update", id="m4", target=target(cal), object=moved)
    assert updated["object"]["etag"] != obj["etag"]
    assert updated["object"] == {
        "id": obj["id"], "type": "event", "uid": obj["uid"], "etag": updated["object"]["etag"]
    }  # fmt: skip
    again = (await s.send("query", target=target(cal), object={"type": "event"}))["items"][0]
    assert again["name"] == "Planning (moved)" and again["startTime"] == "2026-08-04T13:00:00Z"
    assert again["sequence"] == 1

    # The first ETag is stale now: update and delete with it conflict.
    assert await s.error("update", target=target(cal), object=moved) == "caldav:conflict"
    stale = {"id": obj["id"], "type": "event", "etag": obj["etag"]}
    assert await s.error("delete", target=target(cal), object=stale) == "caldav:conflict"

    ref = {"id": obj["id"], "type": "event", "etag": updated["object"]["etag"]}
    deleted = await s.send("delete", id="m5", target=target(cal), object=ref)
    assert deleted["object"] == {"id": obj["id"], "type": "event"}
    assert await s.error("delete", target=target(cal), object=ref) == "caldav:not-found"
    assert (await s.send("query", target=target(cal), object={}))["items"] == []


async def test_tasks_and_unsupported_components(radicale: Radicale) -> None:
    cal = calendar_of(radicale)
    events_only = calendar_of(radicale, ("VEVENT",))
    s = session(radicale)
    task = {"type": "task", "name": "Ship it", "due": "2026-08-04", "allDay": True}
    created = await s.send("create", target=target(cal), object=task)
    assert created["object"]["type"] == "task"
    items = (await s.send("query", target=target(cal), object={}))["items"]
    assert [(i["type"], i["name"], i["due"]) for i in items] == [("task", "Ship it", "2026-08-04")]
    error = await s.error("create", target=target(events_only), object=task)
    assert error == "caldav:unsupported-component"


async def test_create_with_an_existing_uid_conflicts(radicale: Radicale) -> None:
    cal = calendar_of(radicale)
    s = session(radicale)
    event = {"type": "event", "name": "Once", "startTime": "2026-08-03T15:00:00Z",
             "uid": "once@example.test"}  # fmt: skip
    await s.send("create", target=target(cal), object=event)
    assert await s.error("create", target=target(cal), object=event) == "caldav:conflict"


async def test_one_unreadable_item_does_not_fail_the_query(radicale: Radicale) -> None:
    cal = calendar_of(radicale)
    s = session(radicale)
    good = {"type": "event", "name": "Good", "startTime": "2026-08-03T15:00:00Z"}
    await s.send("create", target=target(cal), object=good)
    no_summary = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        "UID:broken@example.test\r\nDTSTAMP:20260801T000000Z\r\n"
        "DTSTART:20260805T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    path = cal.removeprefix(radicale.url.rstrip("/")) + "broken.ics"
    status = radicale.call("alice", "PUT", path, no_summary, **{"Content-Type": "text/calendar"})
    assert status == 201
    items = (await s.send("query", target=target(cal), object={"type": "event"}))["items"]
    assert sorted(i.get("name", "?") for i in items) == ["?", "Good"]
    broken = next(i for i in items if "error" in i)
    assert broken["id"] == cal + "broken.ics" and broken["type"] == "event"
    assert broken["error"].startswith("caldav:invalid-response: ")


async def test_per_verb_rules_are_enforced_before_any_request(radicale: Radicale) -> None:
    cal = calendar_of(radicale)
    s = session(radicale)
    no_etag = {"type": "event", "name": "x", "startTime": "2026-08-03T15:00:00Z",
               "id": cal + "x.ics", "uid": "x"}  # fmt: skip
    assert await s.error("update", target=target(cal), object=no_etag) == (
        "caldav:invalid-update: update needs object.etag"
    )
    assert await s.error("query") == "caldav:invalid-query: query needs a target calendar"
    assert await s.error("create", target=target(cal)) == (
        "caldav:invalid-create: create needs an object"
    )
    # Sockethub accepts a target on fetch (and ignores it): so do we.
    assert (await s.send("fetch", target=target(cal)))["type"] == "collection"


async def test_mapping_errors_keep_sockethub_texts(radicale: Radicale) -> None:
    cal = calendar_of(radicale)
    s = session(radicale)
    backwards = {"type": "event", "name": "x", "startTime": "2026-08-03T15:00:00Z",
                 "endTime": "2026-08-03T14:00:00Z"}  # fmt: skip
    assert await s.error("create", target=target(cal), object=backwards) == (
        "caldav:invalid-create: end/due must be after startTime"
    )
    floating = {"type": "event", "name": "x", "startTime": "2026-08-03T15:00:00",
                "endTime": "2026-08-03T16:00:00"}  # fmt: skip
    assert await s.error("create", target=target(cal), object=floating) == (
        "caldav:invalid-create: startTime must include a UTC offset"
    )
    zoned = {"type": "event", "name": "x", "startTime": "2026-08-03", "allDay": True,
             "timeZone": "Europe/Prague"}  # fmt: skip
    assert await s.error("create", target=target(cal), object=zoned) == (
        "caldav:invalid-create: all-day objects cannot have timeZone"
    )


async def test_target_must_be_a_discovered_calendar(radicale: Radicale) -> None:
    s = session(radicale)
    bobs = radicale.mkcalendar("bob", f"/bob/{uuid.uuid4().hex[:8]}/", "Bob's", ("VEVENT",))
    assert await s.error("query", target=target(bobs)) == "caldav:invalid-calendar"
    cal = calendar_of(radicale)
    without_slash = cal.rstrip("/")
    assert await s.error("query", target=target(without_slash)) == "caldav:invalid-calendar"


async def test_items_outside_the_calendar_are_refused(radicale: Radicale) -> None:
    cal = calendar_of(radicale)
    other = calendar_of(radicale)
    s = session(radicale)
    for bad in (other + "x.ics", cal + "../" + other.rsplit("/", 2)[1] + "/x.ics",
                cal + "a%2Fb.ics", cal, cal + "x.ics?y=1"):  # fmt: skip
        ref = {"id": bad, "type": "event", "etag": '"1"'}
        assert await s.error("delete", target=target(cal), object=ref) == (
            "caldav:invalid-resource"
        ), bad


async def test_a_calendar_created_after_discovery_is_found(radicale: Radicale) -> None:
    s = session(radicale)
    await s.send("fetch")  # discovery cached
    cal = calendar_of(radicale)
    assert (await s.send("query", target=target(cal), object={}))["items"] == []


async def test_discovery_is_cached_per_credentials(
    radicale: Radicale, monkeypatch: pytest.MonkeyPatch
) -> None:
    cal = calendar_of(radicale)
    s = session(radicale)
    calls: list[str] = []
    original = CaldavPlatform._discover

    async def counting(self: CaldavPlatform, client: Any) -> Any:
        calls.append(client.account.url)
        return await original(self, client)

    monkeypatch.setattr(CaldavPlatform, "_discover", counting)
    for _ in range(3):
        await s.send("query", target=target(cal), object={})
    assert len(calls) == 1
    await s.send("fetch")  # fetch always looks again
    assert len(calls) == 2
    uncached = session(radicale, cache=0)
    for _ in range(2):
        await uncached.send("query", target=target(cal), object={})
    assert len(calls) == 4


async def test_wrong_password_fails_authentication(radicale: Radicale) -> None:
    s = session(radicale)
    s.login(radicale.url, username="alice", password="not-her-password")
    assert await s.error("fetch") == "caldav:authentication-failed"
    s.login(radicale.url, token="some-token")
    assert await s.error("fetch") == "caldav:authentication-failed"


async def test_well_known_fallback(radicale: Radicale) -> None:
    cal = calendar_of(radicale)
    s = session(radicale)
    s.login(radicale.url + "alice/no-such-calendar/", username="alice", password=USERS["alice"])
    ids = [item["id"] for item in (await s.send("fetch"))["items"]]
    assert cal in ids


async def test_loopback_only_through_the_allowlist(radicale: Radicale) -> None:
    s = session(radicale, allowlist="")
    assert await s.error("fetch") == "caldav:connection-failed"


async def test_plain_http_only_with_the_setting(radicale: Radicale) -> None:
    s = session(radicale, insecure=False)
    assert await s.error("fetch") == "Error: caldav:https-required"


async def test_missing_credentials(radicale: Radicale) -> None:
    s = Session(make_platform(CaldavPlatform), ACTOR)
    assert await s.error("fetch") == "Error: credentials not found for caldav:caldav:alice"


@pytest.fixture(scope="module")
def radicale_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    server = Radicale(tmp_path_factory.mktemp("radicale-tls"), dict(USERS), tls=True)
    server.start()
    yield server
    server.stop()


async def test_https_needs_no_setting_and_checks_the_certificate(radicale_tls: Radicale) -> None:
    cal = calendar_of(radicale_tls)
    trusting = session(radicale_tls, insecure=False)
    trusting.platform.ssl_context = ssl.create_default_context(cafile=str(radicale_tls.cert))
    assert cal in [item["id"] for item in (await trusting.send("fetch"))["items"]]
    # The same server with the default CAs: its self-signed certificate is refused.
    assert await session(radicale_tls, insecure=False).error("fetch") == (
        "caldav:connection-failed"
    )
