"""The DAV client's pure parts: Digest answers, challenge parsing, XML, membership."""

from __future__ import annotations

import pytest

from platform_runners.dav import xml
from platform_runners.dav.client import (
    Account,
    DavClient,
    DavError,
    Digest,
    split_challenges,
    strip_userinfo,
)
from platform_runners.dav.platform import member_url

# RFC 7616 section 3.9.1: the same request answered with MD5 and with SHA-256.
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_matches_rfc_7616(algorithm: str, response: str) -> None:
    header = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC_NONCE}", opaque="{RFC_OPAQUE}"'
    )
    [(scheme, params)] = split_challenges(header)
    digest = Digest.from_params(params)
    assert scheme == "digest" and digest is not None
    answer = digest.header("GET", "/dir/index.html", "Mufasa", "Circle of Life", RFC_CNONCE)
    assert f'response="{response}"' in answer
    assert "nc=00000001" in answer and "qop=auth" in answer
    assert f'opaque="{RFC_OPAQUE}"' in answer
    assert "nc=00000002" in digest.header("GET", "/", "Mufasa", "Circle of Life", RFC_CNONCE)


def test_several_challenges_in_one_header() -> None:
    header = (
        'Bearer realm="x", Digest realm="dav", nonce="a,b", algorithm=SHA-256-sess, '
        'Basic realm="Radicale - Password Required"'
    )
    found = split_challenges(header)
    assert [scheme for scheme, _ in found] == ["bearer", "digest", "basic"]
    assert found[1][1] == {"realm": "dav", "nonce": "a,b", "algorithm": "SHA-256-sess"}
    assert found[2][1] == {"realm": "Radicale - Password Required"}


@pytest.mark.parametrize(
    "params",
    [
        {"realm": "r", "nonce": "n", "algorithm": "SHA-512-256"},
        {"realm": "r", "nonce": "n", "qop": "auth-int"},
        {"realm": "r", "nonce": "n", "userhash": "true"},
        {"realm": "r"},
    ],
)
def test_digest_challenges_this_client_cannot_answer(params: dict[str, str]) -> None:
    assert Digest.from_params(params) is None


def test_digest_without_qop_uses_the_rfc_2069_form() -> None:
    digest = Digest.from_params({"realm": "r", "nonce": "n"})
    assert digest is not None
    answer = digest.header("PROPFIND", "/dav/", "u", "p", "c")
    assert "qop=" not in answer and "nc=" not in answer and "algorithm=MD5" in answer


def test_doctype_and_entities_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaa">]>'
        b'<d:multistatus xmlns:d="DAV:">&a;</d:multistatus>'
    )
    with pytest.raises(xml.XmlError):
        xml.multistatus(bomb)
    with pytest.raises(xml.XmlError):
        xml.multistatus(b"<not-closed>")
    with pytest.raises(xml.XmlError):
        xml.multistatus(b'<x xmlns="DAV:"/>')


def test_multistatus_keeps_only_200_props() -> None:
    body = b"""<?xml version="1.0"?>
    <multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
      <response><href>/cal/</href>
        <propstat><prop><displayname>Work</displayname></prop><status>HTTP/1.1 200 OK</status>
        </propstat>
        <propstat><prop><C:calendar-home-set/></prop><status>HTTP/1.1 404 Not Found</status>
        </propstat>
      </response>
    </multistatus>"""
    [response] = xml.multistatus(body)
    assert response.href == "/cal/"
    assert list(response.props) == ["{DAV:}displayname"]
    assert xml.text_of(response.props["{DAV:}displayname"]) == "Work"


def client(url: str = "https://dav.example/") -> DavClient:
    return DavClient(Account(url, "u", "p"))


def test_credentials_url_rules() -> None:
    with pytest.raises(DavError, match="https-required"):
        client("http://dav.example/")
    assert DavClient(Account("http://dav.example/"), allow_insecure_http=True)
    with pytest.raises(DavError, match="invalid-url"):
        client("ftp://dav.example/")
    assert strip_userinfo("https://me:pw@dav.example/x/") == "https://dav.example/x/"


def test_the_origin_lock() -> None:
    c = client()
    assert c.resolve("/cal/", "https://dav.example/") == "https://dav.example/cal/"
    with pytest.raises(DavError, match="unsafe-redirect"):
        c.resolve("https://elsewhere.example/cal/")
    with pytest.raises(DavError, match="unsafe-redirect"):
        c.resolve("https://dav.example:8443/cal/")
    with pytest.raises(DavError, match="https-required"):
        c.resolve("http://dav.example/cal/")


@pytest.mark.parametrize(
    "item",
    [
        "https://dav.example/cal/",
        "https://dav.example/cal",
        "https://dav.example/other/x.ics",
        "https://dav.example/cal/../other/x.ics",
        "https://dav.example/cal/%2e%2e/x.ics",
        "https://dav.example/cal/%252e%252e/x.ics",
        "https://dav.example/cal/a%2Fb.ics",
        "https://dav.example/cal/a%5cb.ics",
        "https://dav.example/cal/x.ics?a=1",
        "https://dav.example/cal/x.ics#f",
        "https://elsewhere.example/cal/x.ics",
        "http://dav.example/cal/x.ics",
        "not a url",
    ],
)
def test_membership_refusals(item: str) -> None:
    with pytest.raises(DavError, match="invalid-resource"):
        member_url(client(), "https://dav.example/cal/", item)


def test_membership_accepts_items_below_the_collection() -> None:
    url = member_url(client(), "https://dav.example/cal/", "https://dav.example/cal/a%40b.ics")
    assert url == "https://dav.example/cal/a%40b.ics"
