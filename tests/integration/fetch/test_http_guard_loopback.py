"""The guarded client against real loopback servers.

127.0.0.2 is allow-listed; 127.0.0.1 (the sentinel) and 0.0.0.0 are not, so
every refusal here is a refusal of a loopback address: even a broken guard
would only ever reach this machine.
"""

from __future__ import annotations

import ssl
from datetime import timedelta
from pathlib import Path

import pytest

from platform_runners.http_guard import (
    FEED_CONTENT_TYPES,
    BlockedAddressError,
    ContentTypeError,
    FetchError,
    FetchTimeoutError,
    GuardedClient,
    GuardSettings,
    HttpStatusError,
    ResponseTooLargeError,
    TooManyRedirectsError,
)
from tests.fixtures.certs import self_signed
from tests.integration.fetch.loopback import Server

pytestmark = pytest.mark.timeout(60)


async def test_allow_listed_loopback_is_fetched(client: GuardedClient, origin: Server) -> None:
    response = await client.fetch(origin.url("/feeds/rss2.xml"), accept=FEED_CONTENT_TYPES)
    assert response.status == 200
    assert response.mime_type == "application/rss+xml"
    assert response.charset == "utf-8"
    assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert response.url == origin.url("/feeds/rss2.xml")


async def test_without_allowlist_loopback_is_refused(origin: Server) -> None:
    before = len(origin.hits)
    with pytest.raises(BlockedAddressError, match=r"^blocked non-public address 127\.0\.0\.2$"):
        await GuardedClient().fetch(origin.url("/feeds/rss2.xml"))
    assert len(origin.hits) == before


async def test_direct_refusals_never_connect(client: GuardedClient, sentinel: Server) -> None:
    before = len(sentinel.hits)
    for url, ip in [
        (sentinel.url("/x"), "127.0.0.1"),
        (f"http://0.0.0.0:{sentinel.port}/x", "0.0.0.0"),
        (f"http://[::1]:{sentinel.port}/x", "::1"),
        (f"http://[::ffff:127.0.0.1]:{sentinel.port}/x", "::ffff:127.0.0.1"),
        (f"http://2130706433:{sentinel.port}/x", "127.0.0.1"),  # 127.0.0.1 as one number
    ]:
        with pytest.raises(BlockedAddressError) as caught:
            await client.fetch(url)
        assert str(caught.value) == f"blocked non-public address {ip}"
    assert len(sentinel.hits) == before


async def test_redirect_chain_ending_at_refused_address(
    client: GuardedClient, origin: Server, sentinel: Server
) -> None:
    before = len(sentinel.hits)
    url = origin.url(f"/to?url={sentinel.url('/feeds/rss2.xml')}")
    with pytest.raises(BlockedAddressError, match=r"^blocked non-public address 127\.0\.0\.1$"):
        await client.fetch(url)
    # and through several hops first
    hop2 = origin.url(f"/to?url={sentinel.url('/secret')}")
    with pytest.raises(BlockedAddressError, match=r"^blocked non-public address 127\.0\.0\.1$"):
        await client.fetch(origin.url(f"/to?url={hop2}"))
    assert len(sentinel.hits) == before


async def test_redirect_to_unspecified_address(client: GuardedClient, origin: Server) -> None:
    with pytest.raises(BlockedAddressError, match=r"^blocked non-public address 0\.0\.0\.0$"):
        await client.fetch(origin.url(f"/to?url=http://0.0.0.0:{origin.port}/feeds/rss2.xml"))


async def test_redirect_to_other_scheme_is_refused(client: GuardedClient, origin: Server) -> None:
    with pytest.raises(FetchError, match=r"^unsupported URL scheme file for file:"):
        await client.fetch(origin.url("/to?url=file:///etc/passwd"))


async def test_redirects_within_the_limit_are_followed(
    client: GuardedClient, origin: Server
) -> None:
    response = await client.fetch(origin.url("/redirect/5"))
    assert response.url == origin.url("/feeds/rss2.xml")
    assert b"Sockethub Blog" in response.body


async def test_too_many_redirects(client: GuardedClient, origin: Server) -> None:
    with pytest.raises(TooManyRedirectsError) as caught:
        await client.fetch(origin.url("/redirect/6"))
    assert str(caught.value) == f"too many redirects (more than 5) for {origin.url('/redirect/6')}"
    with pytest.raises(TooManyRedirectsError):
        await client.fetch(origin.url("/loop"))
    strict = GuardedClient(GuardSettings.from_allowlist("127.0.0.2/32", max_redirects=0))
    with pytest.raises(TooManyRedirectsError, match=r"more than 0"):
        await strict.fetch(origin.url("/redirect/1"))


async def test_streamed_body_over_the_cap(client: GuardedClient, origin: Server) -> None:
    with pytest.raises(ResponseTooLargeError) as caught:
        await client.fetch(origin.url("/huge"))
    assert (
        str(caught.value)
        == f"response too large (more than 5242880 bytes) for {origin.url('/huge')}"
    )


async def test_declared_length_over_the_cap(client: GuardedClient, origin: Server) -> None:
    with pytest.raises(ResponseTooLargeError, match=r"^response too large"):
        await client.fetch(origin.url("/huge-declared"))


async def test_gzip_bomb_is_capped_after_inflating(client: GuardedClient, origin: Server) -> None:
    with pytest.raises(ResponseTooLargeError, match=r"^response too large"):
        await client.fetch(origin.url("/gzip-bomb"))


async def test_gzip_is_decoded(client: GuardedClient, origin: Server) -> None:
    response = await client.fetch(origin.url("/gzip/rss2.xml"))
    assert b"<title>Sockethub Blog</title>" in response.body


async def test_small_cap(origin: Server) -> None:
    small = GuardedClient(GuardSettings.from_allowlist("127.0.0.2/32", max_bytes=100))
    with pytest.raises(ResponseTooLargeError, match=r"more than 100 bytes"):
        await small.fetch(origin.url("/feeds/rss2.xml"))


async def test_read_timeout(origin: Server) -> None:
    quick = GuardedClient(GuardSettings.from_allowlist("127.0.0.2/32", read_timeout=0.5))
    with pytest.raises(FetchTimeoutError) as caught:
        await quick.fetch(origin.url("/slow-headers"))
    assert str(caught.value) == (
        f"request timed out after 0.5s without data for {origin.url('/slow-headers')}"
    )


async def test_total_timeout_on_a_dripping_body(origin: Server) -> None:
    quick = GuardedClient(
        GuardSettings.from_allowlist("127.0.0.2/32", read_timeout=10, total_timeout=1.0)
    )
    with pytest.raises(FetchTimeoutError) as caught:
        await quick.fetch(origin.url("/drip"))
    assert str(caught.value) == f"request timed out after 1s for {origin.url('/drip')}"


async def test_http_status_error(client: GuardedClient, origin: Server) -> None:
    with pytest.raises(HttpStatusError) as caught:
        await client.fetch(origin.url("/missing"))
    assert (caught.value.status, caught.value.reason) == (404, "Not Found")
    assert str(caught.value) == f"request failed: 404 Not Found for {origin.url('/missing')}"
    with pytest.raises(HttpStatusError, match=r"^request failed: 418 I'm a teapot for "):
        await client.fetch(origin.url("/teapot"))


async def test_content_type_check(client: GuardedClient, origin: Server) -> None:
    with pytest.raises(ContentTypeError) as caught:
        await client.fetch(origin.url("/json"), accept=FEED_CONTENT_TYPES)
    assert (
        str(caught.value) == f"unsupported content type application/json for {origin.url('/json')}"
    )


async def test_connection_refused_is_a_clear_error(client: GuardedClient) -> None:
    # port 9 (discard) on the allow-listed loopback address: nothing listens there
    with pytest.raises(FetchError, match=r"^connection failed for http://127\.0\.0\.2:9/"):
        await client.fetch("http://127.0.0.2:9/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.2/feed", "unsupported URL scheme ftp for ftp://127.0.0.2/feed"),
        ("/relative/feed.xml", "unsupported URL scheme (none) for /relative/feed.xml"),
        ("http:///nohost", "invalid URL http:///nohost: no host"),
    ],
)
async def test_bad_urls(client: GuardedClient, url: str, message: str) -> None:
    with pytest.raises(FetchError) as caught:
        await client.fetch(url)
    assert str(caught.value) == message


class FakeResolver:
    """Answers from a script, one answer per lookup, and records the lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_names_are_pinned_to_the_checked_address(origin: Server, sentinel: Server) -> None:
    """DNS rebinding: the name resolves to 127.0.0.2 once, then to 127.0.0.1.

    The client looks the name up once, checks that answer and connects to it;
    the Host header keeps the name.
    """
    resolver = FakeResolver(["127.0.0.2"], ["127.0.0.1"])
    pinned = GuardedClient(GuardSettings.from_allowlist("127.0.0.2/32"), resolver=resolver)
    before = len(sentinel.hits)
    response = await pinned.fetch(f"http://feeds.test:{origin.port}/echo-host")
    assert f"<title>feeds.test:{origin.port}</title>".encode() in response.body
    assert resolver.lookups == [("feeds.test", origin.port)]
    assert len(sentinel.hits) == before


async def test_every_hop_is_resolved_and_checked_again(origin: Server, sentinel: Server) -> None:
    resolver = FakeResolver(["127.0.0.2"], ["127.0.0.1"])
    pinned = GuardedClient(GuardSettings.from_allowlist("127.0.0.2/32"), resolver=resolver)
    before = len(sentinel.hits)
    start = f"http://feeds.test:{origin.port}/to?url=/echo-host"
    with pytest.raises(BlockedAddressError, match=r"^blocked non-public address 127\.0\.0\.1$"):
        await pinned.fetch(start)
    assert len(resolver.lookups) == 2
    assert len(sentinel.hits) == before


async def test_one_refused_address_among_several_refuses_the_name(origin: Server) -> None:
    resolver = FakeResolver(["127.0.0.2", "::ffff:169.254.169.254"])
    pinned = GuardedClient(GuardSettings.from_allowlist("127.0.0.2/32"), resolver=resolver)
    with pytest.raises(
        BlockedAddressError, match=r"^blocked non-public address ::ffff:169\.254\.169\.254$"
    ):
        await pinned.fetch(f"http://feeds.test:{origin.port}/echo-host")


async def test_unresolvable_name(origin: Server) -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    pinned = GuardedClient(GuardSettings.from_allowlist("127.0.0.2/32"), resolver=nxdomain)
    with pytest.raises(FetchError, match=r"^could not resolve host nowhere\.test: "):
        await pinned.fetch("http://nowhere.test/feed")


async def test_ipv6_literal_is_pinned_and_allow_listed() -> None:
    """An allow-listed ``[::1]`` is reached (the pin key is the bare address)."""
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="<rss/>", content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "::1", 0).start()
    except OSError:
        await runner.cleanup()
        pytest.skip("no IPv6 loopback on this machine")
    try:
        port = runner.addresses[0][1]
        v6 = GuardedClient(GuardSettings.from_allowlist("::1/128"))
        response = await v6.fetch(f"http://[::1]:{port}/")
        assert response.body == b"<rss/>"
        with pytest.raises(BlockedAddressError, match=r"^blocked non-public address ::1$"):
            await GuardedClient().fetch(f"http://[::1]:{port}/")
    finally:
        await runner.cleanup()


async def test_https_to_a_pinned_address_keeps_sni_and_certificate_name(tmp_path: Path) -> None:
    """TLS goes to the vetted 127.0.0.2 while SNI and the certificate check use the name."""
    from aiohttp import web

    cert, key = self_signed(
        tmp_path, "feeds.test", dns_names=["feeds.test"], valid_for=timedelta(hours=1)
    )
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(cert, key)
    seen_sni: list[str | None] = []

    def on_sni(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
        seen_sni.append(name)

    server_ssl.sni_callback = on_sni

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=request.headers["Host"], content_type="text/xml")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.2", 0, ssl_context=server_ssl).start()
    port = runner.addresses[0][1]
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        resolver = FakeResolver(["127.0.0.2"])
        tls = GuardedClient(
            GuardSettings.from_allowlist("127.0.0.2/32"), resolver=resolver, ssl_context=trust
        )
        response = await tls.fetch(f"https://feeds.test:{port}/")
        assert response.body == f"feeds.test:{port}".encode()
        assert seen_sni == ["feeds.test"]
        # the address itself is not the certificate's name: verification fails, clearly
        with pytest.raises(FetchError, match=r"^connection failed for https://127\.0\.0\.2:"):
            await tls.fetch(f"https://127.0.0.2:{port}/")
    finally:
        await runner.cleanup()
