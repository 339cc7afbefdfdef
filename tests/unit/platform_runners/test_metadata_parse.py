"""Page metadata parsing and charset decoding, from bytes (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_runners.metadata import decode_html, parse_page, sniff_meta_charset

PAGES = Path(__file__).resolve().parents[2] / "data" / "pages"
BASE = "http://127.0.0.2:8080/dir/page.html"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def test_open_graph_page() -> None:
    name, obj = parse_page(page("opengraph.html"), page_url=BASE, content_type="text/html")
    assert name == "Movie Database"
    assert obj == {
        "type": "page",
        "title": "The Rock",
        "description": (
            "Sean Connery found fame and fortune as the suave, sophisticated British agent, "
            "James Bond."
        ),
        "language": "en_GB",
        "name": "Movie Database",
        "image": [
            {
                "url": "https://secure.movies.example/rock.jpg",
                "type": "image/jpeg",
                "width": 400,
                "height": 300,
                "alt": "A shiny red apple with a bite taken out",
            },
            {"url": "http://127.0.0.2:8080/img/rock2.png", "width": 1000},
            {"url": "https://img.movies.example/rock3.gif"},
        ],
        "url": "http://127.0.0.2:8080/title/tt0117500/",
        "favicon": "http://127.0.0.2:8080/static/favicon-32.png",
        "charset": "utf-8",
    }


def test_twitter_card_fields_are_the_fallback() -> None:
    name, obj = parse_page(page("twitter-only.html"), page_url=BASE)
    assert name is None
    assert obj["title"] == "Título en Twitter"
    assert obj["description"] == "Una descripción para la tarjeta."
    assert obj["language"] == "es"
    assert obj["image"] == [
        {"url": "http://127.0.0.2:8080/dir/images/card.png", "alt": "Una tarjeta"}
    ]
    assert obj["favicon"] == "http://127.0.0.2:8080/favicon.ico"
    assert obj["charset"] == "utf-8"


def test_plain_page_has_only_what_it_declares() -> None:
    name, obj = parse_page(page("plain.html"), page_url=BASE)
    assert name is None
    assert obj == {"type": "page", "title": "Just a title & nothing else", "charset": "utf-8"}


def test_malformed_html_still_gives_a_result() -> None:
    _, obj = parse_page(page("malformed.html"), page_url=BASE)
    assert obj["title"] == "Kapot"
    assert obj["language"] == "nl"
    assert obj["description"] == "Geen afsluitende title-tag en <b>rommel</b>"
    # a <meta> inside a script is not a meta tag
    assert "from a script" not in str(obj)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"<",
        b"<html><title>",
        b"<!-- never closed",
        b"<meta property='og:image:width' content='5'>",  # a structured property with no image
        b"<title>" + b"x" * 100_000,
        b"<" * 10_000,
    ],
)
def test_hostile_or_empty_bytes_never_raise(body: bytes) -> None:
    _, obj = parse_page(body, page_url=BASE)
    assert obj["type"] == "page"
    assert "image" not in obj


def test_unclosed_title_is_kept() -> None:
    _, obj = parse_page(b"<html><head><title>Half a page", page_url=BASE)
    assert obj["title"] == "Half a page"


def test_latin1_page_decoded_by_its_meta_charset() -> None:
    _, obj = parse_page(page("latin1.html"), page_url=BASE, content_type="text/html")
    assert obj["title"] == "Café crème à Montréal"
    assert obj["description"] == "Déjà vu, naïve façade"
    assert obj["charset"] == "iso-8859-1"


def test_header_charset_that_cannot_decode_falls_back_to_meta() -> None:
    _, obj = parse_page(
        page("cp1252-mislabelled.html"), page_url=BASE, content_type="text/html; charset=utf-8"
    )
    assert obj["title"] == "Café crème à Montréal"
    assert obj["charset"] == "windows-1252"


def test_unknown_charsets_fall_back_to_utf8() -> None:
    _, obj = parse_page(
        page("bogus-meta-charset.html"), page_url=BASE, content_type="text/html; charset=x-nope"
    )
    assert obj["title"] == "Café crème à Montréal"
    assert obj["charset"] == "utf-8"


def test_header_charset_wins_when_it_decodes() -> None:
    text, charset = decode_html("<title>Café</title>".encode(), "utf-8")
    assert (text, charset) == ("<title>Café</title>", "utf-8")
    text, charset = decode_html("Café".encode("cp1252"), "ISO-8859-1")
    assert (text, charset) == ("Café", "iso-8859-1")


def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    text, charset = decode_html(b"<title>caf\xe9 \xff</title>", None)
    assert charset == "utf-8"
    assert text == "<title>caf\ufffd \ufffd</title>"


def test_bom_wins() -> None:
    text, charset = decode_html(b"\xef\xbb\xbf<title>x</title>", "iso-8859-1")
    assert (text, charset) == ("<title>x</title>", "utf-8")
    text, charset = decode_html("<p>é</p>".encode("utf-16"), None)
    assert (text, charset) == ("<p>é</p>", "utf-16")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<meta charset="Shift_JIS">', "shift_jis"),
        (b"<meta charset=utf-8>", "utf-8"),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">', "koi8-r"),
        (b"<meta name=x content=y>", None),
    ],
)
def test_meta_charset_sniffing(head: bytes, expected: str | None) -> None:
    assert sniff_meta_charset(b"<html><head>" + head) == expected
