"""The ``metadata`` platform: a web page's title, description, Open Graph/Twitter fields.

The page URL is the actor's id (``{id: <page url>, type: "website"}``); the
bytes come from the guarded client. Parsing uses the standard library's
``html.parser``, which never raises on malformed markup. Text is decoded by
the header charset, then a ``<meta>`` charset, then UTF-8 with replacement;
a declared charset that is unknown or cannot decode the bytes is skipped.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser
from urllib.parse import urljoin

from platform_runners.fetching import FetchPlatform
from platform_runners.http_guard import (
    HTML_CONTENT_TYPES,
    FetchError,
    GuardedClient,
    HttpStatusError,
    content_type_charset,
)
from schemas.envelopes import JSONDict

ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
SNIFF_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _codec(label: str | None) -> str | None:
    """The Python codec for a charset label, or None if unknown."""
    if not label:
        return None
    label = label.strip().lower()
    # WHATWG: ISO-8859-1 and US-ASCII labels mean windows-1252 in HTML.
    if label in ("iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii"):
        label = "windows-1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def sniff_meta_charset(body: bytes) -> str | None:
    """The charset named by ``<meta charset>`` or ``<meta http-equiv content-type>``."""
    match = _META_CHARSET.search(body[:SNIFF_BYTES])
    return match.group(1).decode("ascii").lower() if match else None


def decode_html(body: bytes, header_charset: str | None) -> tuple[str, str]:
    """``(text, charset)``: BOM, header charset, meta charset, then UTF-8 with replacement."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body.decode(name, "replace").lstrip("\ufeff"), name
    for label in (header_charset, sniff_meta_charset(body)):
        codec = _codec(label)
        if codec is None:
            continue
        try:
            return body.decode(codec), label.lower() if label else codec
        except (UnicodeDecodeError, LookupError):
            continue
    return body.decode("utf-8", "replace"), "utf-8"


class _PageParser(HTMLParser):
    """Collects <html lang>, <title>, <meta> and <link rel=icon>; ignores everything else."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.title: str | None = None
        self.meta: list[tuple[str, str]] = []
        """``(name or property, content)`` in document order, names lower-cased."""
        self.icons: list[tuple[str, str]] = []
        """``(rel, href)``."""
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "").strip() for k, v in attrs}
        if tag == "html" and a.get("lang") and self.lang is None:
            self.lang = a["lang"]
        elif tag == "title" and self.title is None:
            self._in_title = True
        elif tag == "meta":
            key = a.get("property") or a.get("name") or a.get("itemprop") or a.get("http-equiv")
            if key and "content" in a:
                self.meta.append((key.lower(), a["content"]))
        elif tag == "link" and a.get("href"):
            rel = a.get("rel", "").lower()
            if (
                "icon" in rel.split()
                or rel == "shortcut icon"
                or rel.startswith("apple-touch-icon")
            ):
                self.icons.append((rel, a["href"]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "title":
            self._end_title()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._end_title()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)

    def _end_title(self) -> None:
        self._in_title = False
        title = " ".join("".join(self._title_parts).split())
        self.title = title or None

    def close(self) -> None:
        super().close()
        if self._in_title:  # an unclosed <title> still counts
            self._end_title()


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    match = re.match(r"\s*(\d{1,9})(?:\.\d*)?\s*(?:px)?\s*$", value)
    return int(match.group(1)) if match else None


def _images(meta: list[tuple[str, str]], base: str) -> list[JSONDict]:
    """og:image groups (each og:image starts one; :width etc. attach to it), then Twitter."""
    images: list[JSONDict] = []
    for key, value in meta:
        if not value:
            continue
        if key in ("og:image", "og:image:url"):
            url = urljoin(base, value)
            if key == "og:image:url" and images and images[-1]["url"] == url:
                continue
            images.append({"url": url})
        elif key.startswith("og:image:") and images:
            field = key.removeprefix("og:image:")
            if field in ("width", "height"):
                number = _int(value)
                if number is not None:
                    images[-1][field] = number
            elif field in ("type", "alt"):
                images[-1][field] = value
            elif field == "secure_url":
                images[-1]["url"] = urljoin(base, value)
    if not images:
        for key, value in meta:
            if key in ("twitter:image", "twitter:image:src") and value:
                images.append({"url": urljoin(base, value)})
            elif key == "twitter:image:alt" and value and images:
                images[-1]["alt"] = value
    return images


def parse_page(
    body: bytes, *, page_url: str, content_type: str = ""
) -> tuple[str | None, JSONDict]:
    """``(site name, object)`` for a page: the spec's ``{"type": "page", ...}`` object.

    Relative URLs (images, favicon, og:url) are resolved against ``page_url``,
    which should be the final URL after redirects.
    """
    text, charset = decode_html(body, content_type_charset(content_type))
    parser = _PageParser()
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError):  # very old html.parser edge cases; keep what we have
        pass
    first: dict[str, str] = {}
    for key, value in parser.meta:
        if value and key not in first:
            first[key] = value.strip()

    def pick(*keys: str) -> str | None:
        return next((first[k] for k in keys if first.get(k)), None)

    obj: JSONDict = {"type": "page"}
    fields = {
        "title": pick("og:title", "twitter:title") or parser.title,
        "description": pick("og:description", "twitter:description", "description"),
        "language": pick("og:locale") or parser.lang or pick("content-language"),
        "name": pick("og:site_name", "application-name"),
    }
    obj.update({k: v for k, v in fields.items() if v})
    images = _images(parser.meta, page_url)
    if images:
        obj["image"] = images
    url = pick("og:url", "twitter:url")
    if url:
        obj["url"] = urljoin(page_url, url)
    if parser.icons:
        # Prefer a plain icon over apple-touch-icon.
        _rel, href = min(parser.icons, key=lambda i: i[0].startswith("apple-touch-icon"))
        obj["favicon"] = urljoin(page_url, href)
    obj["charset"] = charset
    return fields["name"], obj


def page_url_of(request: JSONDict) -> str:
    actor = request.get("actor")
    url = actor.get("id") if isinstance(actor, dict) else actor
    if not isinstance(url, str) or not url:
        raise FetchError("metadata fetch needs the page URL as actor.id")
    return url


async def fetch_metadata(client: GuardedClient, request: JSONDict) -> JSONDict:
    """The spec's metadata result for a ``fetch`` request; raises :class:`FetchError`.

    HTTP errors come out as ``<status> <reason>`` (``404 Not Found``).
    """
    url = page_url_of(request)
    try:
        response = await client.fetch(url, accept=HTML_CONTENT_TYPES, accept_header=ACCEPT)
    except HttpStatusError as exc:
        raise FetchError(f"{exc.status} {exc.reason}") from None
    name, obj = parse_page(response.body, page_url=response.url, content_type=response.content_type)
    actor = dict(request["actor"]) if isinstance(request.get("actor"), dict) else {"id": url}
    actor["type"] = "website"
    if name:
        actor["name"] = name
    result: JSONDict = {"@context": request.get("@context"), "type": "fetch", "actor": actor}
    if request.get("id") is not None:
        result["id"] = request["id"]
    if isinstance(request.get("target"), dict):
        result["target"] = request["target"]
    result["object"] = obj
    return result


class MetadataPlatform(FetchPlatform):
    """``fetch``: the metadata of the page at ``actor.id``."""

    name = "metadata"

    async def fetch_result(self, request: JSONDict) -> JSONDict:
        return await fetch_metadata(self.client, request)
