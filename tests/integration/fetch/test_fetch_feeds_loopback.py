"""The feeds platform fetching real feeds from a loopback server (no Kafka)."""

from __future__ import annotations

import pytest

from platform_runners.feeds import FeedsPlatform, parse_feed
from schemas.envelopes import JSONDict
from schemas.platform_registry import canonical_context
from tests.integration.fetch.direct import error_of, fetch, loopback_platform
from tests.integration.fetch.loopback import Server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def feeds() -> FeedsPlatform:
    return loopback_platform(FeedsPlatform)


def request(url: str, obj: JSONDict | None = None, id: str | None = None) -> JSONDict:
    activity: JSONDict = {
        "@context": canonical_context("feeds"),
        "type": "fetch",
        "actor": {"id": url, "type": "feed"},
    }
    if obj is not None:
        activity["object"] = obj
    if id is not None:
        activity["id"] = id
    return activity


@pytest.mark.parametrize(
    ("name", "summary", "count", "first_title"),
    [
        ("rss2.xml", "Sockethub Blog", 4, "Sockethub 4.1.0"),
        ("atom.xml", "Beispiel Nachrichten", 2, "Grüße aus Köln"),
        ("rdf.xml", "Planet Exemple", 2, "Deuxième billet"),
        ("rss091.xml", "WriteTheWeb", 2, "Giving the world a pluggable Gnutella"),
        ("malformed.xml", "Broken & Co", 2, "Second item"),
        ("empty-channel.xml", "Unknown Feed", 0, None),
    ],
)
async def test_feeds_over_http(
    feeds: FeedsPlatform,
    origin: Server,
    name: str,
    summary: str,
    count: int,
    first_title: str | None,
) -> None:
    url = origin.url(f"/feeds/{name}")
    result = await fetch(feeds, request(url))
    assert result["@context"] == canonical_context("feeds")
    assert result["id"] is None
    assert (result["type"], result["summary"], result["totalItems"]) == (
        "collection",
        summary,
        count,
    )
    assert len(result["items"]) == count
    if first_title is not None:
        item = result["items"][0]
        assert item["type"] == "post"
        assert item["actor"]["id"] == url and item["actor"]["type"] == "feed"
        assert item["object"]["title"] == first_title
        assert item["object"]["type"] in ("article", "note")
        assert item["object"]["contentType"] in ("html", "text")
        datenums = [i["object"]["datenum"] for i in result["items"]]
        assert datenums == sorted(datenums, reverse=True)


async def test_since_limit_and_id(feeds: FeedsPlatform, origin: Server) -> None:
    url = origin.url("/feeds/rss2.xml")
    result = await fetch(feeds, request(url, {"since": "2021-08-01T00:00:00Z", "limit": 2}, "f-1"))
    assert result["id"] == "f-1"
    assert result["totalItems"] == 2
    assert [i["object"]["title"] for i in result["items"]] == [
        "Sockethub 4.1.0",
        "Podcast episode 12",
    ]


async def test_gzip_feed(feeds: FeedsPlatform, origin: Server) -> None:
    result = await fetch(feeds, request(origin.url("/gzip/rss2.xml")))
    assert result["summary"] == "Sockethub Blog"


async def test_404_has_the_spec_text(feeds: FeedsPlatform, origin: Server) -> None:
    url = origin.url("/missing")
    assert await error_of(feeds, request(url)) == f"Error: request failed: 404 Not Found for {url}"


async def test_redirect_to_refused_address(
    feeds: FeedsPlatform, origin: Server, sentinel: Server
) -> None:
    before = len(sentinel.hits)
    url = origin.url(f"/to?url={sentinel.url('/feeds/rss2.xml')}")
    assert await error_of(feeds, request(url)) == "Error: blocked non-public address 127.0.0.1"
    url = f"http://0.0.0.0:{origin.port}/feeds/rss2.xml"
    assert await error_of(feeds, request(url)) == "Error: blocked non-public address 0.0.0.0"
    assert len(sentinel.hits) == before


async def test_not_a_feed_is_a_clear_error(feeds: FeedsPlatform, origin: Server) -> None:
    url = origin.url("/feeds/not-a-feed.xml")
    assert (await error_of(feeds, request(url))).startswith(f"Error: unable to parse feed {url}: ")


async def test_other_failures_are_clear_errors(feeds: FeedsPlatform, origin: Server) -> None:
    huge = origin.url("/huge")
    assert await error_of(feeds, request(huge)) == (
        f"Error: response too large (more than 5242880 bytes) for {huge}"
    )
    json = origin.url("/json")
    assert await error_of(feeds, request(json)) == (
        f"Error: unsupported content type application/json for {json}"
    )
    loop = origin.url("/loop")
    assert (
        await error_of(feeds, request(loop))
        == f"Error: too many redirects (more than 5) for {loop}"
    )
    assert await error_of(feeds, request("ftp://127.0.0.2/feed")) == (
        "Error: unsupported URL scheme ftp for ftp://127.0.0.2/feed"
    )


async def test_feed_with_external_entities_fetches_nothing(
    feeds: FeedsPlatform, origin: Server, sentinel: Server
) -> None:
    """XXE: an external DTD or entity on the sentinel must never be fetched by the parser."""
    before = len(sentinel.hits)
    dtd = sentinel.url("/evil.dtd")
    body = (
        '<?xml version="1.0"?>'
        f'<!DOCTYPE rss SYSTEM "{dtd}" [<!ENTITY xxe SYSTEM "{sentinel.url("/xxe")}">]>'
        '<rss version="2.0"><channel><title>T &xxe;</title>'
        "<item><title>i</title><link>http://x.example/</link></item></channel></rss>"
    )
    summary, _ = parse_feed(body.encode(), feed_url=origin.url("/xxe-feed"))
    assert "LEAKED" not in summary
    assert len(sentinel.hits) == before
