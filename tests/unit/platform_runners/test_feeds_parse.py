"""Feed parsing into the spec's collection shape, from bytes (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_runners.feeds import (
    FeedParseError,
    feed_collection,
    looks_like_html,
    parse_feed,
    parse_since,
)
from platform_runners.http_guard import FetchError

FEEDS = Path(__file__).resolve().parents[2] / "data" / "feeds"
URL = "http://127.0.0.2:8080/feed.xml"


def feed(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def test_rss2_items_newest_first_with_actor_and_objects() -> None:
    summary, items = parse_feed(feed("rss2.xml"), feed_url=URL, content_type="application/rss+xml")
    assert summary == "Sockethub Blog"
    assert [i["object"]["title"] for i in items] == [
        "Sockethub 4.1.0",
        "Podcast episode 12",
        "A short note",
        "Sockethub 4.0.0",
    ]
    assert all(i["type"] == "post" for i in items)
    assert items[0]["actor"] == {
        "id": URL,
        "type": "feed",
        "name": "Sockethub Blog",
        "link": "https://sockethub.example/blog/",
        "description": "The polyglot solution to the federated social web",
        "image": {"url": "https://sockethub.example/img/logo.png", "width": "144", "height": "144"},
        "language": "en-us",
        "categories": ["software"],
    }
    first = items[0]["object"]
    assert first["type"] == "article"  # content:encoded is longer than a note
    assert first["contentType"] == "html"
    assert first["id"] == first["url"] == "https://sockethub.example/blog/sockethub-4-1-0"
    assert first["datenum"] == 1630612800000
    assert first["published"] == "2021-09-02T20:00:00.000Z"
    assert first["brief"] == "<p>Sockethub 4.1.0 has been released.</p>"
    assert first["tags"] == ["release"]
    note = items[2]["object"]
    assert note["type"] == "note"
    assert note["content"] == "Just a quick plain text update & nothing more."
    assert note["contentType"] == "text"
    assert note["datenum"] == 1629099000000  # +0200 taken into account
    assert "brief" not in note
    assert items[1]["object"]["media"] == [
        {
            "url": "https://sockethub.example/media/ep12.mp3",
            "type": "audio/mpeg",
            "length": "13908973",
        }
    ]
    plain = items[3]["object"]
    assert (plain["type"], plain["contentType"]) == ("note", "text")


def test_atom() -> None:
    summary, items = parse_feed(feed("atom.xml"), feed_url=URL, content_type="application/atom+xml")
    assert summary == "Beispiel Nachrichten"
    actor = items[0]["actor"]
    assert actor["link"] == "https://news.example/"
    assert actor["description"] == "Nachrichten über föderierte Netze"
    assert actor["author"] == "Jürgen Beispiel"
    first = items[0]["object"]
    assert first["title"] == "Grüße aus Köln"
    assert first["content"] == "<p>Ein längerer Text über <em>Köln</em>.</p>"
    assert first["brief"] == "Kurz: Grüße aus Köln."
    assert first["published"] == "2024-03-09T07:15:00.000Z"
    assert first["updated"] == "2024-03-10T12:00:00.000Z"
    second = items[1]["object"]
    assert second["title"] == "Kein Link"
    assert second["contentType"] == "text"
    assert second["id"] == "tag:news.example,2024:kein-link"


def test_rdf_latin1_declared_in_xml() -> None:
    summary, items = parse_feed(feed("rdf.xml"), feed_url=URL, content_type="application/rdf+xml")
    assert summary == "Planet Exemple"
    assert [i["object"]["title"] for i in items] == ["Deuxième billet", "Café crème"]
    assert items[0]["actor"]["language"] == "fr"


def test_rss091_without_dates() -> None:
    summary, items = parse_feed(feed("rss091.xml"), feed_url=URL, content_type="text/xml")
    assert summary == "WriteTheWeb"
    assert len(items) == 2
    assert all(i["object"]["datenum"] == 0 for i in items)
    assert all("published" not in i["object"] for i in items)
    # undated items keep the feed's order
    assert items[0]["object"]["url"] == "http://writetheweb.example/read.php?item=24"


def test_malformed_xml_that_feedparser_can_read_still_gives_items() -> None:
    summary, items = parse_feed(feed("malformed.xml"), feed_url=URL)
    assert summary == "Broken & Co"
    assert [i["object"]["url"] for i in items] == [
        "https://broken.example/2",
        "https://broken.example/1",
    ]


@pytest.mark.parametrize(
    "body", [b"", b"not xml at all", b"\x00\x01\x02", b"<html><body>hi</body>"]
)
def test_unreadable_bytes_are_a_clear_error(body: bytes) -> None:
    with pytest.raises(FeedParseError, match=f"unable to parse feed {URL}"):
        parse_feed(body, feed_url=URL)


def test_feed_without_title_is_unknown_feed() -> None:
    summary, items = parse_feed(feed("empty-channel.xml"), feed_url=URL)
    assert (summary, items) == ("Unknown Feed", [])


def test_since_and_limit() -> None:
    body = feed("rss2.xml")
    _, items = parse_feed(body, feed_url=URL, since="2021-08-16T07:30:00Z")
    # strictly after: the note published at exactly 07:30Z is left out
    assert [i["object"]["title"] for i in items] == ["Sockethub 4.1.0", "Podcast episode 12"]
    _, items = parse_feed(body, feed_url=URL, since="2021-08-16T07:29:59.999+00:00", limit=10)
    assert len(items) == 3
    _, items = parse_feed(body, feed_url=URL, limit=1)
    assert [i["object"]["title"] for i in items] == ["Sockethub 4.1.0"]
    _, items = parse_feed(feed("rss091.xml"), feed_url=URL, since="2000-01-01T00:00:00Z")
    assert items == []  # undated items are not "since" anything


def test_parse_since() -> None:
    assert parse_since(None) is None
    assert parse_since("1970-01-01T00:00:01Z") == 1000
    assert parse_since("1970-01-01T01:00:01+01:00") == 1000
    assert parse_since("1970-01-01T00:00:01") == 1000
    with pytest.raises(FetchError, match="invalid since date-time: yesterday"):
        parse_since("yesterday")


def test_collection_shape() -> None:
    ctx = ["a", "b", "c"]
    summary, items = parse_feed(feed("rss2.xml"), feed_url=URL, limit=2)
    result = feed_collection({"@context": ctx, "type": "fetch"}, summary, items)
    assert list(result) == ["@context", "id", "type", "summary", "totalItems", "items"]
    assert result["id"] is None
    assert (result["type"], result["totalItems"]) == ("collection", 2)
    assert feed_collection({"@context": ctx, "id": "x1"}, summary, items)["id"] == "x1"


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("<p>hi</p>", True),
        ("line<br/>break", True),
        ("AT&amp;T", True),
        ("<!DOCTYPE html><html>", True),
        ("a < b and c > d", False),
        ("plain text", False),
        ("x <notatag> y", False),
    ],
)
def test_looks_like_html(text: str, html: bool) -> None:
    assert looks_like_html(text) is html
