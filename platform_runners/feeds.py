"""The ``feeds`` platform: fetch an RSS 0.9x/2.0, Atom or RDF feed, answer a collection.

The feed URL is the actor's id (``{id: <feed url>, type: "feed"}``). The bytes
come from the guarded client (:mod:`platform_runners.http_guard`) and are
parsed by feedparser from memory: it never fetches anything itself (it would
fetch a string that looks like a URL, so it is always given a stream).
"""

from __future__ import annotations

import calendar
import io
import re
from datetime import UTC, datetime
from typing import Any

import feedparser

from platform_runners.fetching import FetchPlatform
from platform_runners.http_guard import (
    FEED_CONTENT_TYPES,
    FetchError,
    FetchResponse,
    GuardedClient,
)
from schemas.envelopes import JSONDict

MAX_NOTE_LENGTH = 256
"""Longer content makes an ``article``, shorter a ``note`` (as Sockethub does)."""
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)

_HTML_TAGS = (
    "a|abbr|article|aside|b|blockquote|body|br|code|dd|div|dl|dt|em|figure|h[1-6]|head|hr|html"
    "|i|iframe|img|li|ol|p|pre|section|small|span|strong|sub|sup|table|td|th|tr|u|ul|video"
)
_HTML_RE = re.compile(rf"<!doctype html|<(?:{_HTML_TAGS})\b[^>]*>|&(?:[a-z]+|#\d+);", re.I)


class FeedParseError(FetchError):
    """The bytes are not a feed that can be read at all."""


def looks_like_html(text: str) -> bool:
    """Whether content should be labelled ``html`` rather than ``text``."""
    return bool(_HTML_RE.search(text.strip()[:2000]))


def parse_since(value: str | None) -> int | None:
    """An RFC 3339 date-time as epoch milliseconds (naive values are taken as UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise FetchError(f"invalid since date-time: {value}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _ms(parsed: Any) -> int:
    """feedparser's UTC ``struct_time`` as epoch milliseconds (0 when absent)."""
    if not parsed:
        return 0
    try:
        return calendar.timegm(parsed) * 1000
    except (TypeError, ValueError, OverflowError):
        return 0


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _feed_actor(feed_url: str, meta: Any) -> JSONDict:
    title = _text(meta.get("title"))
    link = _text(meta.get("link")) or feed_url
    actor: JSONDict = {"id": feed_url, "type": "feed", "name": title or link, "link": link}
    description = _text(meta.get("subtitle")) or _text(meta.get("description"))
    if description:
        actor["description"] = description
    image = meta.get("image") or {}
    image_url = _text(image.get("href")) or _text(image.get("url"))
    if image_url:
        actor["image"] = {"url": image_url}
        for key in ("width", "height"):
            if image.get(key):
                actor["image"][key] = str(image[key]).strip()
    language = _text(meta.get("language"))
    if language:
        actor["language"] = language
    author = _text((meta.get("author_detail") or {}).get("name")) or _text(meta.get("author"))
    if author:
        actor["author"] = author
    categories = [_text(t.get("term")) for t in meta.get("tags") or [] if _text(t.get("term"))]
    if categories:
        actor["categories"] = categories
    return actor


def _entry_object(entry: Any, actor: JSONDict) -> JSONDict:
    summary = _text(entry.get("summary"))
    contents = [c for c in entry.get("content") or [] if _text(c.get("value"))]
    content = _text(contents[0].get("value")) if contents else summary
    # dict.get: feedparser's own get() maps updated_parsed to published_parsed, with a warning
    updated = _ms(dict.get(entry, "updated_parsed"))
    datenum = _ms(dict.get(entry, "published_parsed")) or updated
    link = _text(entry.get("link"))
    obj: JSONDict = {
        "type": "article" if len(content) > MAX_NOTE_LENGTH else "note",
        "title": _text(entry.get("title")),
        "id": link or _text(entry.get("id")) or f"{actor['link']}#{datenum}",
        "content": content,
        "contentType": "html" if looks_like_html(content) else "text",
        "url": link or actor["link"],
        "datenum": datenum,
    }
    if datenum:
        obj["published"] = _iso(datenum)
        if updated and updated != datenum:
            obj["updated"] = _iso(updated)
    if contents and summary and summary != content:
        obj["brief"] = summary
    tags = [_text(t.get("term")) for t in entry.get("tags") or [] if _text(t.get("term"))]
    if tags:
        obj["tags"] = tags
    media = [
        {
            k: v
            for k, v in (
                ("url", e.get("href")),
                ("type", e.get("type")),
                ("length", e.get("length")),
            )
            if v
        }
        for e in entry.get("enclosures") or []
        if e.get("href")
    ]
    if media:
        obj["media"] = media
    return obj


def parse_feed(
    body: bytes,
    *,
    feed_url: str,
    content_type: str = "",
    since: str | None = None,
    limit: int | None = None,
) -> tuple[str, list[JSONDict]]:
    """``(summary, items)`` for a feed's bytes: items newest first, ``since``/``limit`` applied.

    ``content_type`` is the response header: its charset wins over the XML
    declaration, as feedparser does for HTTP feeds. Malformed XML that
    feedparser can still read (bozo) gives a result; unreadable bytes raise
    :class:`FeedParseError`.
    """
    since_ms = parse_since(since)
    headers = {"content-location": feed_url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    entries = list(parsed.get("entries") or [])
    meta = parsed.get("feed") or {}
    if not entries and not parsed.get("version") and not meta.get("title"):
        reason = parsed.get("bozo_exception") if parsed.get("bozo") else None
        raise FeedParseError(f"unable to parse feed {feed_url}: {reason or 'not a feed'}")
    actor = _feed_actor(feed_url, meta)
    objects = [_entry_object(entry, actor) for entry in entries]
    if since_ms is not None:
        objects = [o for o in objects if o["datenum"] > since_ms]
    objects.sort(key=lambda o: int(o["datenum"]), reverse=True)
    if limit is not None:
        objects = objects[: max(limit, 0)]
    items = [{"type": "post", "actor": dict(actor), "object": o} for o in objects]
    return (_text(meta.get("title")) or "Unknown Feed", items)


def feed_collection(request: JSONDict, summary: str, items: list[JSONDict]) -> JSONDict:
    """The spec's result: a collection carrying the request's ``@context`` and ``id``."""
    return {
        "@context": request.get("@context"),
        "id": request.get("id"),
        "type": "collection",
        "summary": summary,
        "totalItems": len(items),
        "items": items,
    }


def feed_url_of(request: JSONDict) -> str:
    actor = request.get("actor")
    url = actor.get("id") if isinstance(actor, dict) else actor
    if not isinstance(url, str) or not url:
        raise FetchError("feeds fetch needs the feed URL as actor.id")
    return url


async def fetch_feed(client: GuardedClient, request: JSONDict) -> JSONDict:
    """Fetch and parse the feed of a ``fetch`` request; raises :class:`FetchError` on failure.

    HTTP errors come out as ``request failed: <status> <reason> for <url>``.
    """
    url = feed_url_of(request)
    options = request.get("object") if isinstance(request.get("object"), dict) else {}
    assert isinstance(options, dict)
    since = options.get("since")
    limit = options.get("limit")
    response: FetchResponse = await client.fetch(
        url, accept=FEED_CONTENT_TYPES, accept_header=ACCEPT
    )
    summary, items = parse_feed(
        response.body,
        feed_url=url,
        content_type=response.content_type,
        since=since if isinstance(since, str) else None,
        limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
    )
    return feed_collection(request, summary, items)


class FeedsPlatform(FetchPlatform):
    """``fetch``: the feed at ``actor.id`` as a collection of posts."""

    name = "feeds"

    async def fetch_result(self, request: JSONDict) -> JSONDict:
        return await fetch_feed(self.client, request)
