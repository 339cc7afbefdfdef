"""caldav and carddav through the whole path: socket, gateway, Kafka, runner, Radicale."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from schemas.platform_registry import canonical_context
from tests.fixtures.gateway import Client, GatewayProcess
from tests.fixtures.radicale import ALLOWLIST, USERS, Radicale
from tests.fixtures.runners import RunnerStack, started_runners

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def dav_stack(
    kafka_bootstrap: str,
    redis_url: str,
    sockethub_secret: str,
    shared_gateway_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunnerStack]:
    root = tmp_path_factory.mktemp("dav-e2e")
    env = {
        "SOCKETHUB_SECRET": sockethub_secret,
        "SOCKETHUB_FETCH_ALLOWLIST": ALLOWLIST,
        "SOCKETHUB_DAV_ALLOW_INSECURE_HTTP": "true",
    }
    stack = RunnerStack(kafka_bootstrap, redis_url, shared_gateway_prefix, root / "logs", env)
    with started_runners(stack, "caldav", "carddav"):
        yield stack


@pytest.fixture
async def ws(shared_gateway: GatewayProcess, dav_stack: RunnerStack) -> AsyncIterator[Client]:
    client = await Client(shared_gateway.url).connect()
    yield client
    await client.close()


def message(platform: str, verb: str, **fields: Any) -> dict[str, Any]:
    return {
        "@context": canonical_context(platform),
        "type": verb,
        "actor": {"id": f"{platform}:alice", "type": "person"},
        **fields,
    }


async def login(ws: Client, platform: str, radicale: Radicale) -> None:
    secret = {"type": "credentials", "url": radicale.url, "username": "alice",
              "password": USERS["alice"]}  # fmt: skip
    ack = await ws.call("credentials", message(platform, "credentials", object=secret))
    assert "error" not in (ack or {}), ack


async def test_caldav_over_the_socket(ws: Client, radicale: Radicale) -> None:
    missing = await ws.call("message", message("caldav", "fetch", id="e0"))
    assert missing["error"] == "Error: credentials not found for caldav:caldav:alice"
    await login(ws, "caldav", radicale)
    cal = radicale.mkcalendar("alice", f"/alice/{uuid.uuid4().hex[:8]}/", "E2E", ("VEVENT",))
    fetched = await ws.call("message", message("caldav", "fetch", id="e1"))
    assert fetched["type"] == "collection" and fetched["@context"] == canonical_context("caldav")
    assert cal in [item["id"] for item in fetched["items"]]

    target = {"id": cal, "type": "calendar"}
    event = {"type": "event", "name": "E2E", "startTime": "2026-08-03T15:00:00Z"}
    created = await ws.call("message", message("caldav", "create", id="e2", target=target,
                                               object=event))  # fmt: skip
    ref = {"id": created["object"]["id"], "type": "event", "etag": '"stale"'}
    conflict = await ws.call("message", message("caldav", "delete", id="e3", target=target,
                                                object=ref))  # fmt: skip
    assert conflict["error"] == "caldav:conflict"  # a bare code: no "Error: " in front
    assert conflict["object"] == ref and conflict["id"] == "e3"
    queried = await ws.call("message", message("caldav", "query", id="e4", target=target))
    assert [item["name"] for item in queried["items"]] == ["E2E"]
    invalid = await ws.call("message", message("caldav", "update", id="e5", target=target,
                                               object={**event, "id": ref["id"]}))  # fmt: skip
    assert invalid["error"] == "caldav:invalid-update: update needs object.etag"


async def test_carddav_over_the_socket(ws: Client, radicale: Radicale) -> None:
    await login(ws, "carddav", radicale)
    book = radicale.mkaddressbook("alice", f"/alice/{uuid.uuid4().hex[:8]}/", "E2E book")
    target = {"id": book, "type": "addressBook"}
    zed = {"type": "person", "name": "Zed"}
    created = await ws.call("message", message("carddav", "create", target=target, object=zed))
    assert created["object"]["type"] == "person" and created["object"]["etag"]
    queried = await ws.call("message", message("carddav", "query", target=target,
                                               object={"text": "zed"}))  # fmt: skip
    assert [item["name"] for item in queried["items"]] == ["Zed"]
    # The gateway validates against the platform's schema: an actor name is refused.
    bad = message("carddav", "fetch")
    bad["actor"]["name"] = "Alice"
    refused = await ws.call("message", bad)
    assert refused["error"] == "[carddav] /actor: must NOT have additional properties: name"
