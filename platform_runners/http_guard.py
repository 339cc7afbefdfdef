"""The one guarded HTTP client that the feeds and metadata platforms fetch with.

A client may ask the server to fetch any URL, so every fetch is guarded against
server-side request forgery:

* the host is resolved here, once per hop, and every resolved address is
  classified by the outbound guard that IRC and XMPP share
  (:mod:`platform_runners.address_guard`); one non-public address refuses the
  hop unless it lies in the allow-list (``SOCKETHUB_FETCH_ALLOWLIST``);
* the connection goes to exactly the addresses that were checked (pinning: the
  network backend never resolves a name, so DNS rebinding cannot swap them),
  while the Host header, TLS SNI and certificate check keep the URL's name;
* redirects are followed here, each hop checked again, up to a limit;
* the body is streamed and decoded with a hard size cap (also after gzip);
* connect, read and total timeouts; only ``http``/``https``; a content-type check.

Why httpcore (the transport under httpx, already a dependency) rather than
aiohttp: its public ``AsyncNetworkBackend`` hook is exactly the seam pinning
needs (``connect_tcp`` gets the URL's host; TLS still verifies that name), it
has per-phase timeouts, and it does no redirects, cookies, proxies or
decompression of its own, so none of those can bypass the checks above.
aiohttp is only a test dependency.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import certifi
import httpcore
import httpx

from platform_runners import address_guard
from platform_runners.address_guard import (  # re-exported: the feeds tests import them here
    IPAddress as IPAddress,
)
from platform_runners.address_guard import (
    IPNetwork,
    OutboundGuard,
    Resolver,
    parse_allowlist,
    system_resolver,
)
from platform_runners.address_guard import classify_address as classify_address
from platform_runners.address_guard import format_address as format_address
from platform_runners.address_guard import is_allowed as is_allowed

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

FEED_CONTENT_TYPES = ("xml", "rss", "atom", "rdf", "text/")
"""Substrings of an acceptable feed content type (``text/*`` covers text/plain)."""
HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml")


class FetchError(Exception):
    """A fetch failed; ``str(exc)`` is the client-facing text (without ``Error: ``)."""


class BlockedAddressError(FetchError):
    def __init__(self, ip: str) -> None:
        super().__init__(f"blocked non-public address {ip}")
        self.ip = ip


class HttpStatusError(FetchError):
    """The server answered with a 4xx/5xx status (the platforms word this differently)."""

    def __init__(self, status: int, reason: str, url: str) -> None:
        super().__init__(f"request failed: {status} {reason} for {url}")
        self.status = status
        self.reason = reason
        self.url = url


class ResponseTooLargeError(FetchError):
    pass


class TooManyRedirectsError(FetchError):
    pass


class FetchTimeoutError(FetchError):
    pass


class ContentTypeError(FetchError):
    pass


@dataclass(frozen=True, slots=True)
class FetchResponse:
    url: str
    """The final URL, after redirects."""
    status: int
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with ``, ``."""
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def mime_type(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of Content-Type, if any."""
        return content_type_charset(self.content_type)


def content_type_charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip("\"'"):
            return value.strip().strip("\"'").lower()
    return None


@dataclass(frozen=True, slots=True)
class GuardSettings:
    allowlist: tuple[IPNetwork, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    connect_timeout: float = 10.0
    read_timeout: float = 15.0
    total_timeout: float = 30.0
    user_agent: str = "sockethub-kafka (+https://sockethub.org)"

    @classmethod
    def from_allowlist(cls, allowlist: str | Iterable[str], **kwargs: Any) -> GuardSettings:
        """Settings with ``SOCKETHUB_FETCH_ALLOWLIST``-style CIDRs (``fetch_allowlist``)."""
        return cls(allowlist=parse_allowlist(allowlist), **kwargs)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses vetted for ``(host, port)``; never resolves names."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.pins: dict[tuple[str, int], list[str]] = {}

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self.pins.get((host.lower(), port))
        if not addresses:
            raise httpcore.ConnectError(f"no vetted address for {host}:{port}")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectTimeout:
                raise
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedClient:
    """Fetches URLs with the guard above. One instance can serve many fetches at once."""

    def __init__(
        self,
        settings: GuardSettings | None = None,
        *,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``resolver`` and ``ssl_context`` (certifi's CAs by default) are for tests."""
        self.settings = settings or GuardSettings()
        self._resolver = resolver
        self._ssl = ssl_context or ssl.create_default_context(cafile=certifi.where())

    async def fetch(
        self, url: str, *, accept: Sequence[str] = (), accept_header: str = "*/*"
    ) -> FetchResponse:
        """GET ``url`` (following redirects); raises :class:`FetchError` on any failure.

        ``accept`` lists substrings of acceptable content types; an empty list
        (or a response without Content-Type) accepts anything.
        """
        s = self.settings
        try:
            async with asyncio.timeout(s.total_timeout):
                response = await self._fetch(url, accept_header)
        except TimeoutError:
            raise FetchTimeoutError(
                f"request timed out after {s.total_timeout:g}s for {url}"
            ) from None
        mime = response.mime_type
        if accept and mime and not any(a in mime for a in accept):
            raise ContentTypeError(f"unsupported content type {mime} for {url}")
        return response

    async def _fetch(self, url: str, accept_header: str) -> FetchResponse:
        s = self.settings
        backend = PinnedBackend()
        async with httpcore.AsyncConnectionPool(
            ssl_context=self._ssl, network_backend=backend, max_connections=4
        ) as pool:
            current = _parse_url(url)
            for _hop in range(s.max_redirects + 1):
                host, port = _pin_key(current), current.port or _default_port(current.scheme)
                backend.pins[(host, port)] = await self._vet(host, port)
                status, reason, headers, body = await self._get(pool, current, accept_header)
                if status in REDIRECT_STATUSES and "location" in headers:
                    try:
                        current = _parse_url(str(current.join(headers["location"])))
                    except httpx.InvalidURL as exc:
                        raise FetchError(f"invalid redirect location for {url}: {exc}") from None
                    continue
                if status >= 400:
                    raise HttpStatusError(status, reason, url)
                return FetchResponse(str(current), status, headers, body)
        raise TooManyRedirectsError(f"too many redirects (more than {s.max_redirects}) for {url}")

    async def _vet(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and check every address; the vetted list is what we connect to."""
        guard = OutboundGuard(self.settings.allowlist, self._resolver)
        try:
            return await guard.vet(host, port)
        except address_guard.BlockedAddressError as exc:
            raise BlockedAddressError(exc.ip) from None
        except address_guard.GuardError as exc:
            raise FetchError(str(exc)) from None

    async def _get(
        self, pool: httpcore.AsyncConnectionPool, url: httpx.URL, accept_header: str
    ) -> tuple[int, str, dict[str, str], bytes]:
        s = self.settings
        request = httpcore.Request(
            "GET",
            httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=[
                (b"Host", url.netloc),
                (b"Accept", accept_header.encode("ascii")),
                (b"Accept-Encoding", b"gzip, deflate"),
                (b"User-Agent", s.user_agent.encode("ascii", "replace")),
            ],
            extensions={
                "timeout": {
                    "connect": s.connect_timeout,
                    "read": s.read_timeout,
                    "write": s.read_timeout,
                    "pool": s.connect_timeout,
                }
            },
        )
        try:
            response = await pool.handle_async_request(request)
            try:
                headers = _headers(response.headers)
                reason = bytes(response.extensions.get("reason_phrase", b"")).decode(
                    "latin-1", "replace"
                ) or _standard_reason(response.status)
                if response.status in REDIRECT_STATUSES or response.status >= 400:
                    return response.status, reason, headers, b""
                body = await self._read_capped(response, headers, str(url))
                return response.status, reason, headers, body
            finally:
                await response.aclose()
        except httpcore.ConnectTimeout:
            raise FetchTimeoutError(
                f"connection timed out after {s.connect_timeout:g}s for {url}"
            ) from None
        except (httpcore.ReadTimeout, httpcore.WriteTimeout, httpcore.PoolTimeout):
            raise FetchTimeoutError(
                f"request timed out after {s.read_timeout:g}s without data for {url}"
            ) from None
        except httpcore.ConnectError as exc:
            raise FetchError(f"connection failed for {url}: {exc or 'refused'}") from None
        except (httpcore.ProtocolError, httpcore.NetworkError) as exc:
            raise FetchError(f"request failed for {url}: {exc or type(exc).__name__}") from None

    async def _read_capped(
        self, response: httpcore.Response, headers: dict[str, str], url: str
    ) -> bytes:
        cap = self.settings.max_bytes
        too_large = ResponseTooLargeError(f"response too large (more than {cap} bytes) for {url}")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise too_large
        decoder = _decoder(headers.get("content-encoding", ""), url)
        chunks: list[bytes] = []
        size = 0
        async for raw in response.aiter_stream():
            data = raw
            if decoder is not None:
                # max_length bounds what one small compressed chunk may expand to.
                data = decoder.decompress(raw, cap - size + 1)
                if decoder.unconsumed_tail:
                    raise too_large
            size += len(data)
            if size > cap:
                raise too_large
            chunks.append(data)
        if decoder is not None:
            tail = decoder.flush()
            size += len(tail)
            if size > cap:
                raise too_large
            chunks.append(tail)
        return b"".join(chunks)


def _decoder(encoding: str, url: str) -> Any:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise FetchError(f"unsupported content encoding {encoding} for {url}")


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(f"invalid URL {url}: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme {parsed.scheme or '(none)'} for {url}")
    if not parsed.host:
        raise FetchError(f"invalid URL {url}: no host")
    return parsed


def _pin_key(url: httpx.URL) -> str:
    """The host as the network backend will see it (httpcore passes ``raw_host`` decoded)."""
    return url.raw_host.decode("ascii").lower()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _standard_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
