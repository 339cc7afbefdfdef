"""Feeds and metadata through the whole path: socket, gateway, Kafka, runner, reply.

The runners fetch from the loopback ``origin`` (127.0.0.2, allow-listed with
``SOCKETHUB_FETCH_ALLOWLIST``); the ``sentinel`` on 127.0.0.1 proves refused
hops are never contacted. No traffic leaves 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from schemas.platform_registry import canonical_context
from tests.fixtures.gateway import Client, GatewayProcess
from tests.fixtures.runners import RunnerStack, started_runners
from tests.integration.fetch.loopback import ALLOWLIST, Server

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

FEEDS_CTX = canonical_context("feeds")
METADATA_CTX = canonical_context("metadata")


@pytest.fixture(scope="module")
def fetch_stack(
    kafka_bootstrap: str,
    redis_url: str,
    sockethub_secret: str,
    shared_gateway_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunnerStack]:
    root = tmp_path_factory.mktemp("fetch-e2e")
    env = {"SOCKETHUB_SECRET": sockethub_secret, "SOCKETHUB_FETCH_ALLOWLIST": ALLOWLIST}
    stack = RunnerStack(kafka_bootstrap, redis_url, shared_gateway_prefix, root / "logs", env)
    with started_runners(stack, "feeds", "metadata"):
        yield stack


@pytest.fixture
async def ws(shared_gateway: GatewayProcess, fetch_stack: RunnerStack) -> AsyncIterator[Client]:
    """A websocket client of the run's shared gateway, with the fetch runners behind it."""
    client = await Client(shared_gateway.url).connect()
    yield client
    await client.close()


def feeds(url: str, **extra: Any) -> dict[str, Any]:
    return {"@context": FEEDS_CTX, "type": "fetch", "actor": {"id": url, "type": "feed"}, **extra}


def metadata(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "@context": METADATA_CTX,
        "type": "fetch",
        "actor": {"id": url, "type": "website"},
        **extra,
    }


async def test_feeds_collection_over_the_socket(ws: Client, origin: Server) -> None:
    url = origin.url("/feeds/rss2.xml")
    result = await ws.call("message", feeds(url, id="e2e-1", object={"limit": 3}))
    assert result["@context"] == FEEDS_CTX
    assert (result["type"], result["id"], result["summary"]) == (
        "collection",
        "e2e-1",
        "Sockethub Blog",
    )
    assert result["totalItems"] == 3 and len(result["items"]) == 3
    first = result["items"][0]
    assert first["type"] == "post"
    assert first["actor"]["id"] == url and first["actor"]["type"] == "feed"
    assert first["actor"]["name"] == "Sockethub Blog"
    assert first["object"]["type"] == "article" and first["object"]["contentType"] == "html"
    assert first["object"]["datenum"] == 1630612800000
    no_id = await ws.call("message", feeds(origin.url("/feeds/atom.xml")))
    assert no_id["id"] is None and no_id["summary"] == "Beispiel Nachrichten"


async def test_every_feed_format_and_malformed_xml(ws: Client, origin: Server) -> None:
    names = ["rdf.xml", "rss091.xml", "malformed.xml", "empty-channel.xml"]
    results = await asyncio.gather(
        *(ws.call("message", feeds(origin.url(f"/feeds/{n}"))) for n in names)
    )
    assert [r["summary"] for r in results] == [
        "Planet Exemple",
        "WriteTheWeb",
        "Broken & Co",
        "Unknown Feed",
    ]
    assert [r["totalItems"] for r in results] == [2, 2, 2, 0]
    broken = await ws.call("message", feeds(origin.url("/feeds/not-a-feed.xml")))
    assert broken["error"].startswith(f"Error: unable to parse feed {origin.url('/feeds/')}")


async def test_feed_errors_have_the_spec_texts(
    ws: Client, origin: Server, sentinel: Server
) -> None:
    before = len(sentinel.hits)
    missing = origin.url("/missing")
    answer = await ws.call("message", feeds(missing, id="e2e-404"))
    assert answer["error"] == f"Error: request failed: 404 Not Found for {missing}"
    assert answer["id"] == "e2e-404" and answer["actor"] == {"id": missing, "type": "feed"}
    hop = origin.url(f"/to?url={sentinel.url('/feeds/rss2.xml')}")
    refused = await ws.call("message", feeds(hop))
    assert refused["error"] == "Error: blocked non-public address 127.0.0.1"
    zero = await ws.call("message", feeds(f"http://0.0.0.0:{origin.port}/feeds/rss2.xml"))
    assert zero["error"] == "Error: blocked non-public address 0.0.0.0"
    assert len(sentinel.hits) == before
    huge = await ws.call("message", feeds(origin.url("/huge")))
    assert huge["error"] == (
        f"Error: response too large (more than 5242880 bytes) for {origin.url('/huge')}"
    )
    loop = await ws.call("message", feeds(origin.url("/loop")))
    assert loop["error"] == f"Error: too many redirects (more than 5) for {origin.url('/loop')}"
    bogus = await ws.call("message", feeds(origin.url("/feeds/rss2.xml"), object={"bogus": 1}))
    assert bogus["error"] == "[feeds] /object: must NOT have additional properties: bogus"


async def test_metadata_over_the_socket(ws: Client, origin: Server, sentinel: Server) -> None:
    url = origin.url("/pages/opengraph.html")
    result = await ws.call("message", metadata(url, id="e2e-m"))
    assert result["@context"] == METADATA_CTX
    assert result["type"] == "fetch" and result["id"] == "e2e-m"
    assert result["actor"] == {"id": url, "type": "website", "name": "Movie Database"}
    obj = result["object"]
    assert (obj["type"], obj["title"], obj["language"]) == ("page", "The Rock", "en_GB")
    assert obj["image"][0]["width"] == 400 and obj["charset"] == "utf-8"
    latin = await ws.call("message", metadata(origin.url("/pages/cp1252-mislabelled.html")))
    assert latin["object"]["title"] == "Café crème à Montréal"
    missing = await ws.call("message", metadata(origin.url("/missing")))
    assert missing["error"] == "Error: 404 Not Found"
    before = len(sentinel.hits)
    hop = origin.url(f"/to?url={sentinel.url('/pages/opengraph.html')}")
    refused = await ws.call("message", metadata(hop))
    assert refused["error"] == "Error: blocked non-public address 127.0.0.1"
    assert len(sentinel.hits) == before
    with_object = await ws.call("message", metadata(url, object={"type": "x"}))
    assert with_object["error"] == "[metadata] /object: boolean schema is false"


async def test_runners_survive_everything(
    ws: Client, origin: Server, fetch_stack: RunnerStack
) -> None:
    """After every bad case above (and a gzip bomb), both runners still answer."""
    bomb = await ws.call("message", metadata(origin.url("/gzip-bomb")))
    assert bomb["error"].startswith("Error: response too large")
    ok = await ws.call("message", feeds(origin.url("/feeds/rss2.xml")))
    assert ok["summary"] == "Sockethub Blog"
    ok = await ws.call("message", metadata(origin.url("/pages/plain.html")))
    assert ok["object"]["title"] == "Just a title & nothing else"
    assert all(p.alive() for p in fetch_stack.processes)
    assert not any("Traceback" in p.log_text() for p in fetch_stack.processes)
