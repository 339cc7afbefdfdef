"""The DAV client against a scripted loopback server: Digest (with a stale nonce),
redirects and the origin lock, the authentication failures Radicale cannot show."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from platform_runners.address_guard import parse_allowlist
from platform_runners.caldav.platform import CaldavPlatform
from platform_runners.dav.client import Account, DavClient, DavError, split_challenges
from platform_runners.dav.xml import CALDAV
from tests.fixtures.radicale import ALLOWLIST, HOST
from tests.integration.dav.harness import Session, make_platform
from tests.integration.fetch.loopback import Server, start_server

USER, PASSWORD, REALM = "carol", "digest-secret-3", "dav-test"
MULTISTATUS = f"""<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:response><d:href>/dav/</d:href>
<d:propstat><d:prop><c:calendar-home-set><d:href>/dav/home/</d:href></c:calendar-home-set>
</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>"""
HOME = f"""<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:response><d:href>/dav/home/work/</d:href>
<d:propstat><d:prop><d:resourcetype><d:collection/><c:calendar/></d:resourcetype>
<d:displayname>Work</d:displayname></d:prop><d:status>HTTP/1.1 200 OK</d:status>
</d:propstat></d:response></d:multistatus>"""


@dataclass
class Script:
    """What the server does; the test sets it and reads what it saw."""

    nonces: list[str] = field(default_factory=lambda: ["n1"])
    """Nonces in the order they are handed out; an older one is answered ``stale=true``."""
    authorizations: list[str] = field(default_factory=list)


def digest_ok(header: str, method: str, nonce: str) -> bool:
    """An independent check of an RFC 7616 SHA-256 answer with qop=auth."""
    challenges = split_challenges(header)
    if len(challenges) != 1:
        return False
    [(scheme, p)] = challenges
    if scheme != "digest" or p.get("nonce") != nonce or p.get("username") != USER:
        return False

    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    ha1, ha2 = h(f"{USER}:{REALM}:{PASSWORD}"), h(f"{method}:{p['uri']}")
    expected = h(f"{ha1}:{nonce}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
    return p.get("response") == expected


def app_for(script: Script, other_port: list[int]) -> web.Application:
    async def digest(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        script.authorizations.append(header)
        current = script.nonces[0]
        stale = any(digest_ok(header, request.method, old) for old in script.nonces[1:])
        if not digest_ok(header, request.method, current):
            challenge = (
                f'Digest realm="{REALM}", nonce="{current}", qop="auth", algorithm=SHA-256'
                + (", stale=true" if stale else "")
            )
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        body = HOME if request.path.startswith("/dav/home/") else MULTISTATUS
        return web.Response(status=207, text=body, content_type="application/xml")

    async def scripted(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "ntlm":
            return web.Response(status=401, headers={"WWW-Authenticate": "NTLM"})
        if name == "forbidden":
            return web.Response(status=403)
        if name == "bearer":
            ok = request.headers.get("Authorization") == "Bearer tok-1"
            return web.Response(status=207 if ok else 401, text=MULTISTATUS)
        if name == "loop":
            return web.Response(status=301, headers={"Location": "/s/loop"})
        if name == "moved":
            return web.Response(status=301, headers={"Location": "/s/bearer"})
        if name == "away":
            return web.Response(
                status=307, headers={"Location": f"http://{HOST}:{other_port[0]}/s/bearer"}
            )
        if name == "nolocation":
            return web.Response(status=302)
        if name == "huge":
            return web.Response(status=207, body=b" " * (10 * 1024 * 1024 + 1))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/dav/{tail:.*}", digest)
    app.router.add_route("*", "/s/{name}", scripted)
    return app


@pytest.fixture(scope="module")
async def dav() -> AsyncIterator[tuple[Server, Script, Server]]:
    other_port: list[int] = []
    sentinel = Server(HOST)
    sentinel_runner = await start_server(web.Application(), sentinel)
    other_port.append(sentinel.port)
    script = Script()
    server = Server(HOST)
    runner = await start_server(app_for(script, other_port), server)
    yield server, script, sentinel
    await runner.cleanup()
    await sentinel_runner.cleanup()


def url(server: Server, path: str) -> str:
    return f"http://{HOST}:{server.port}{path}"


def client(server: Server, **secret: str) -> DavClient:
    account = Account(url(server, "/"), **(secret or {"username": USER, "password": PASSWORD}))
    return DavClient(
        account,
        allowlist=parse_allowlist(ALLOWLIST),
        allow_insecure_http=True,
    )


async def test_digest_discovery_through_the_platform(dav: tuple[Server, Script, Server]) -> None:
    server, script, _ = dav
    s = Session(make_platform(CaldavPlatform), "caldav:carol")
    s.login(url(server, "/dav/"), username=USER, password=PASSWORD)
    result = await s.send("fetch")
    assert [item["id"] for item in result["items"]] == [url(server, "/dav/home/work/")]
    # The first request went without credentials; after the 401 Digest was sent up-front.
    assert script.authorizations[0] == ""
    assert all(a.startswith("Digest ") for a in script.authorizations[1:])
    assert len(script.authorizations) == 3  # unauthenticated, then home set, then home


async def test_a_stale_nonce_gets_one_more_try(dav: tuple[Server, Script, Server]) -> None:
    server, script, _ = dav
    async with client(server) as c:
        assert (await c.request("PROPFIND", url(server, "/dav/"))).status == 207
        script.nonces.insert(0, "n2")  # the server moves on: n1 is stale now
        script.authorizations.clear()
        assert (await c.request("PROPFIND", url(server, "/dav/"))).status == 207
    assert len(script.authorizations) == 2


async def test_wrong_digest_password(dav: tuple[Server, Script, Server]) -> None:
    server, _, _ = dav
    async with client(server, username=USER, password="wrong") as c:
        with pytest.raises(DavError, match="authentication-failed"):
            await c.request("PROPFIND", url(server, "/dav/"))


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/s/ntlm", "unsupported-authentication"),
        ("/s/forbidden", "authentication-failed"),
        ("/s/loop", "too-many-redirects"),
        ("/s/away", "unsafe-redirect"),
        ("/s/nolocation", "invalid-response"),
        ("/s/huge", "connection-failed"),
    ],
)
async def test_refusals(dav: tuple[Server, Script, Server], path: str, code: str) -> None:
    server, _, sentinel = dav
    async with client(server) as c:
        with pytest.raises(DavError) as caught:
            await c.request("PROPFIND", url(server, path))
    assert caught.value.code == code
    assert sentinel.hits == []  # credentials never left the origin


async def test_bearer_and_followed_redirects(dav: tuple[Server, Script, Server]) -> None:
    server, _, _ = dav
    async with client(server, token="tok-1") as c:
        answer = await c.request("PROPFIND", url(server, "/s/moved"))
        assert answer.status == 207 and answer.url == url(server, "/s/bearer")
        with pytest.raises(DavError, match="unsafe-redirect"):
            await c.request("PUT", url(server, "/s/moved"), body=b"x")
    async with client(server, token="wrong") as c:
        with pytest.raises(DavError, match="authentication-failed"):
            await c.request("PROPFIND", url(server, "/s/bearer"))
