"""The metadata platform fetching real pages from a loopback server (no Kafka)."""

from __future__ import annotations

import pytest

from platform_runners.metadata import MetadataPlatform
from schemas.envelopes import JSONDict
from schemas.platform_registry import canonical_context
from tests.integration.fetch.direct import error_of, fetch, loopback_platform
from tests.integration.fetch.loopback import Server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def metadata() -> MetadataPlatform:
    return loopback_platform(MetadataPlatform)


def request(url: str, id: str | None = None) -> JSONDict:
    activity: JSONDict = {
        "@context": canonical_context("metadata"),
        "type": "fetch",
        "actor": {"id": url, "type": "website"},
    }
    if id is not None:
        activity["id"] = id
    return activity


async def test_open_graph_and_twitter_fields(metadata: MetadataPlatform, origin: Server) -> None:
    url = origin.url("/pages/opengraph.html")
    result = await fetch(metadata, request(url, "m-1"))
    assert result["@context"] == canonical_context("metadata")
    assert result["type"] == "fetch" and result["id"] == "m-1"
    assert result["actor"] == {"id": url, "type": "website", "name": "Movie Database"}
    obj = result["object"]
    assert obj["type"] == "page"
    assert obj["title"] == "The Rock"
    assert obj["language"] == "en_GB"
    assert obj["url"] == origin.url("/title/tt0117500/")
    assert obj["favicon"] == origin.url("/static/favicon-32.png")
    assert obj["charset"] == "utf-8"
    assert obj["image"][0] == {
        "url": "https://secure.movies.example/rock.jpg",
        "type": "image/jpeg",
        "width": 400,
        "height": 300,
        "alt": "A shiny red apple with a bite taken out",
    }
    twitter = (await fetch(metadata, request(origin.url("/pages/twitter-only.html"))))["object"]
    assert twitter["title"] == "Título en Twitter"
    assert twitter["image"] == [{"url": origin.url("/pages/images/card.png"), "alt": "Una tarjeta"}]


@pytest.mark.parametrize(
    ("name", "charset"),
    [
        ("latin1.html", "iso-8859-1"),  # no header charset; the meta says so
        ("cp1252-mislabelled.html", "windows-1252"),  # header says utf-8, wrongly
        ("bogus-meta-charset.html", "utf-8"),  # unknown labels everywhere
    ],
)
async def test_wrong_and_missing_charsets(
    metadata: MetadataPlatform, origin: Server, name: str, charset: str
) -> None:
    obj = (await fetch(metadata, request(origin.url(f"/pages/{name}"))))["object"]
    assert obj["title"] == "Café crème à Montréal"
    assert obj["description"] == "Déjà vu, naïve façade"
    assert obj["charset"] == charset


async def test_malformed_page(metadata: MetadataPlatform, origin: Server) -> None:
    obj = (await fetch(metadata, request(origin.url("/pages/malformed.html"))))["object"]
    assert obj["title"] == "Kapot" and obj["language"] == "nl"


async def test_redirected_page_resolves_against_the_final_url(
    metadata: MetadataPlatform, origin: Server
) -> None:
    url = origin.url("/to?url=/pages/twitter-only.html")
    result = await fetch(metadata, request(url))
    assert result["actor"]["id"] == url
    assert result["object"]["favicon"] == origin.url("/favicon.ico")


async def test_404_has_the_spec_text(metadata: MetadataPlatform, origin: Server) -> None:
    assert await error_of(metadata, request(origin.url("/missing"))) == "Error: 404 Not Found"
    assert await error_of(metadata, request(origin.url("/teapot"))) == "Error: 418 I'm a teapot"


async def test_refusals_and_other_failures(
    metadata: MetadataPlatform, origin: Server, sentinel: Server
) -> None:
    before = len(sentinel.hits)
    url = origin.url(f"/to?url={sentinel.url('/pages/opengraph.html')}")
    assert await error_of(metadata, request(url)) == "Error: blocked non-public address 127.0.0.1"
    zero = f"http://0.0.0.0:{origin.port}/"
    assert await error_of(metadata, request(zero)) == "Error: blocked non-public address 0.0.0.0"
    assert len(sentinel.hits) == before
    feed = origin.url("/feeds/rss2.xml")
    assert await error_of(metadata, request(feed)) == (
        f"Error: unsupported content type application/rss+xml for {feed}"
    )
    huge = origin.url("/gzip-bomb")
    assert (await error_of(metadata, request(huge))).startswith("Error: response too large")
