"""An HTTP client for one DAV account: origin lock, outbound guard, Basic/Digest/Bearer.

Every URL it is asked for, or redirected to, must keep the credentials URL's
scheme (else ``https-required``) and origin (else ``unsafe-redirect``), so the
credentials are never sent anywhere else. Each hop resolves its host once
through the outbound guard and connects only to the vetted addresses
(:class:`~platform_runners.http_guard.PinnedBackend`). Failures are
:class:`DavError` with the spec's code; the platform adds its prefix.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import certifi
import httpcore
import httpx

from platform_runners import address_guard
from platform_runners.address_guard import IPNetwork, OutboundGuard, Resolver, system_resolver
from platform_runners.http_guard import PinnedBackend

MAX_BODY = 10 * 1024 * 1024
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
WRITE_METHODS = frozenset({"PUT", "DELETE"})
USER_AGENT = b"sockethub-kafka (+https://sockethub.org)"


class DavError(Exception):
    """A failure with the spec's code (``conflict``, ``not-found``...), without the prefix."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Account:
    """The credentials of one DAV account (password or token form)."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def cache_key(self) -> str:
        """A digest standing for these credentials (secrets are not kept as keys)."""
        raw = "\x00".join([self.url, self.username or "", self.password or "", self.token or ""])
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


def parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise DavError("invalid-url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DavError("invalid-url")
    return parsed


def strip_userinfo(url: str) -> str:
    """The URL without ``user:password@`` (never used, never echoed)."""
    parsed = parse_url(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


def origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host.lower(), url.port or (443 if url.scheme == "https" else 80)


# --- authentication ---------------------------------------------------------------------------

_DIGEST_HASHES = {"MD5": "md5", "MD5-SESS": "md5", "SHA-256": "sha256", "SHA-256-SESS": "sha256"}


def split_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """``WWW-Authenticate`` (several headers joined by commas) as ``(scheme, params)``.

    A comma-separated item that starts with a token and a space opens a new
    challenge; an item ``key=value`` is a parameter of the current one.
    """
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in header:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    challenges: list[tuple[str, dict[str, str]]] = []
    for item in filter(None, items):
        head, _, rest = item.partition(" ")
        if "=" not in head:
            challenges.append((head.lower(), {}))
            item = rest.strip()
            if not item or "=" not in item:
                continue
        if not challenges:
            continue
        key, _, value = item.partition("=")
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        challenges[-1][1][key.strip().lower()] = value
    return challenges


@dataclass
class Digest:
    """One accepted Digest challenge; :meth:`header` counts its uses (``nc``)."""

    realm: str
    nonce: str
    algorithm: str
    qop: str | None
    opaque: str | None
    count: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Digest | None:
        """None when this client cannot answer the challenge (RFC 7616 subset of the spec)."""
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in _DIGEST_HASHES or "nonce" not in params or "realm" not in params:
            return None
        if params.get("userhash", "false").lower() == "true":
            return None
        qop = None
        if "qop" in params:
            offered = [q.strip().lower() for q in params["qop"].split(",")]
            if "auth" not in offered:
                return None
            qop = "auth"
        return cls(params["realm"], params["nonce"], algorithm, qop, params.get("opaque"))

    def header(
        self, method: str, uri: str, username: str, password: str, cnonce: str | None = None
    ) -> str:
        name = _DIGEST_HASHES[self.algorithm]

        def h(text: str) -> str:
            return hashlib.new(name, text.encode()).hexdigest()

        self.count += 1
        nc = f"{self.count:08x}"
        cnonce = cnonce or base64.b64encode(os.urandom(18)).decode()
        ha1 = h(f"{username}:{self.realm}:{password}")
        if self.algorithm.endswith("-SESS"):
            ha1 = h(f"{ha1}:{self.nonce}:{cnonce}")
        ha2 = h(f"{method}:{uri}")
        if self.qop:
            response = h(f"{ha1}:{self.nonce}:{nc}:{cnonce}:{self.qop}:{ha2}")
        else:
            response = h(f"{ha1}:{self.nonce}:{ha2}")
        parts = [
            f'username="{_quote(username)}"',
            f'realm="{_quote(self.realm)}"',
            f'nonce="{_quote(self.nonce)}"',
            f'uri="{_quote(uri)}"',
            f"algorithm={self.algorithm}",
            f'response="{response}"',
        ]
        if self.qop:
            parts += [f"qop={self.qop}", f"nc={nc}", f'cnonce="{_quote(cnonce)}"']
        if self.opaque is not None:
            parts.append(f'opaque="{_quote(self.opaque)}"')
        return "Digest " + ", ".join(parts)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# --- the client -------------------------------------------------------------------------------


class DavClient:
    """One job's HTTP client for one account; use ``async with``, then :meth:`request`."""

    def __init__(
        self,
        account: Account,
        *,
        allowlist: tuple[IPNetwork, ...] = (),
        timeout: float = 15.0,
        allow_insecure_http: bool = False,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """:class:`DavError` ``invalid-url`` / ``https-required`` for an unusable URL."""
        self.account = account
        self.base = parse_url(account.url)
        if self.base.scheme != "https" and not allow_insecure_http:
            raise DavError("https-required")
        self.timeout = timeout
        self._guard = OutboundGuard(allowlist, resolver)
        self._ssl = ssl_context or ssl.create_default_context(cafile=certifi.where())
        self._backend = PinnedBackend()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=self._ssl, network_backend=self._backend, max_connections=2
        )
        self._scheme: str | None = None
        """``basic`` or ``digest`` once a 401 chose it; then sent up-front."""
        self._digest: Digest | None = None

    async def __aenter__(self) -> DavClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._pool.aclose()

    def resolve(self, href: str, base: str | None = None) -> str:
        """An href from the server as an absolute URL, checked against the origin lock."""
        try:
            url = parse_url(str(httpx.URL(base or str(self.base)).join(href)))
        except httpx.InvalidURL:
            raise DavError("invalid-response") from None
        self.check_origin(url)
        return str(url)

    def check_origin(self, url: httpx.URL) -> None:
        if url.scheme != self.base.scheme:
            raise DavError("https-required")
        if origin(url) != origin(self.base):
            raise DavError("unsafe-redirect")

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Answer:
        """One request, its redirects and auth retries within the timeout."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._request(method, url, dict(headers or {}), body)
        except TimeoutError:
            raise DavError("connection-failed") from None

    async def _request(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Answer:
        current = parse_url(url)
        self.check_origin(current)
        for _hop in range(MAX_REDIRECTS + 1):
            answer = await self._authenticated(method, current, headers, body)
            if answer.status not in REDIRECTS:
                return answer
            location = answer.headers.get("location")
            if not location:
                raise DavError("invalid-response")
            if method in WRITE_METHODS and answer.status not in (307, 308):
                raise DavError("unsafe-redirect")
            try:
                current = parse_url(str(current.join(location)))
            except httpx.InvalidURL:
                raise DavError("invalid-response") from None
            self.check_origin(current)
        raise DavError("too-many-redirects")

    async def _authenticated(
        self, method: str, url: httpx.URL, headers: dict[str, str], body: bytes
    ) -> Answer:
        a = self.account
        stale_retry = True
        for tried in range(3):
            answer = await self._send(method, url, {**headers, **self._auth(method, url)}, body)
            if answer.status == 403:
                raise DavError("authentication-failed")
            if answer.status != 401:
                return answer
            if a.token is not None or tried == 2:
                raise DavError("authentication-failed")
            challenges = split_challenges(answer.headers.get("www-authenticate", ""))
            if self._scheme is not None:
                # Only a Digest nonce that went stale earns another try, and only once.
                digest = _stale_digest(challenges)
                if self._scheme != "digest" or digest is None or not stale_retry:
                    raise DavError("authentication-failed")
                stale_retry = False
                self._digest = digest
                continue
            self._choose(challenges)
        raise DavError("authentication-failed")

    def _choose(self, challenges: list[tuple[str, dict[str, str]]]) -> None:
        for scheme, params in challenges:
            if scheme == "digest":
                digest = Digest.from_params(params)
                if digest is not None:
                    self._scheme, self._digest = "digest", digest
                    return
        if any(scheme == "basic" for scheme, _params in challenges):
            self._scheme = "basic"
            return
        raise DavError("unsupported-authentication")

    def _auth(self, method: str, url: httpx.URL) -> dict[str, str]:
        a = self.account
        if a.token is not None:
            return {"Authorization": f"Bearer {a.token}"}
        user, password = a.username or "", a.password or ""
        if self._scheme == "basic":
            raw = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        if self._scheme == "digest" and self._digest is not None:
            uri = url.raw_path.decode("ascii")
            return {"Authorization": self._digest.header(method, uri, user, password)}
        return {}

    async def _send(
        self, method: str, url: httpx.URL, headers: dict[str, str], body: bytes
    ) -> Answer:
        host = url.raw_host.decode("ascii").lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            self._backend.pins[(host, port)] = await self._guard.vet(host, port)
        except address_guard.GuardError:
            raise DavError("connection-failed") from None
        raw_headers: list[tuple[bytes, bytes]] = [
            (b"Host", url.netloc),
            (b"User-Agent", USER_AGENT),
            (b"Accept-Encoding", b"identity"),
        ]
        raw_headers += [(k.encode("latin-1"), v.encode("utf-8")) for k, v in headers.items()]
        if body or method in ("PUT", "PROPFIND", "REPORT"):
            raw_headers.append((b"Content-Length", str(len(body)).encode()))
        request = httpcore.Request(
            method.encode("ascii"),
            httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=raw_headers,
            content=body,
        )
        try:
            response = await self._pool.handle_async_request(request)
            try:
                data = await _read_capped(response)
            finally:
                await response.aclose()
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError):
            raise DavError("connection-failed") from None
        return Answer(response.status, _headers(response.headers), data, str(url))


def _stale_digest(challenges: list[tuple[str, dict[str, str]]]) -> Digest | None:
    for scheme, params in challenges:
        if scheme == "digest" and params.get("stale", "").lower() == "true":
            return Digest.from_params(params)
    return None


async def _read_capped(response: httpcore.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise DavError("connection-failed")
        chunks.append(chunk)
    return b"".join(chunks)


def _headers(raw: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = bytes(name).decode("latin-1").lower()
        text = bytes(value).decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers
