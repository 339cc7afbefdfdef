"""The base of the ``caldav`` and ``carddav`` platforms: credentials, discovery, checks.

Each job reads the session's credentials and opens its own :class:`DavClient`
(closed after the job). Discovery (principal, then home set, then the
collections below it, with the ``/.well-known/`` fallback) is cached per
credentials for ``SOCKETHUB_DAV_DISCOVERY_CACHE`` seconds: ``fetch`` always
discovers afresh, the other verbs reuse a fresh enough result, and look again
once when their target is not in it (a collection created since).

Failures are answered as Sockethub does: ``<platform>:<code>`` without the
``Error: `` prefix (:class:`CodeError`); the per-verb rules Sockethub declares
but never enforces are checked here before any request, as
``<platform>:invalid-<verb>: <reason>``.
"""

from __future__ import annotations

import ssl
import time
import xml.etree.ElementTree as ET
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import certifi
import httpx

from platform_runners.address_guard import parse_allowlist
from platform_runners.dav import xml
from platform_runners.dav.client import Account, DavClient, DavError, parse_url, strip_userinfo
from platform_runners.platform import CodeError, Context, Emitter, Handler, Platform, PlatformError
from platform_runners.settings import RunnerSettings
from schemas.envelopes import JSONDict
from schemas.platform_registry import PlatformDescriptor

VERBS = ("fetch", "query", "create", "update", "delete")


class VerbRuleError(Exception):
    """A request breaks a per-verb rule; ``str`` is the reason."""


@dataclass(frozen=True)
class Discovery:
    """What differs between CalDAV and CardDAV discovery."""

    home_set: tuple[str, str]
    collection: tuple[str, str]
    """The resourcetype element of the collections kept."""
    props: tuple[tuple[str, str], ...]
    well_known: str
    no_home: str
    """The code when no home set is found (``not-caldav``)."""
    invalid_target: str
    """The code when the target is not a discovered collection (``invalid-calendar``)."""


class DavPlatform(Platform):
    """Verbs ``fetch``, ``query``, ``create``, ``update``, ``delete`` on one DAV account."""

    discovery: Discovery
    target_type: str

    def __init__(
        self, settings: RunnerSettings, descriptor: PlatformDescriptor, emitter: Emitter
    ) -> None:
        super().__init__(settings, descriptor, emitter)
        self.allowlist = parse_allowlist(settings.fetch_allowlist)
        # Loading the CA bundle costs more than a request's set-up: once per platform.
        self.ssl_context = ssl.create_default_context(cafile=certifi.where())
        self._cache: dict[str, tuple[float, list[JSONDict]]] = {}

    def handlers(self) -> Mapping[str, Handler]:
        return {verb: self._handler(verb) for verb in VERBS}

    def _handler(self, verb: str) -> Handler:
        async def handle(ctx: Context) -> JSONDict | None:
            return await self.run(ctx, verb)

        return handle

    # --- the job ----------------------------------------------------------------------------

    def code(self, code: str) -> CodeError:
        return CodeError(f"{self.name}:{code}")

    async def account(self, ctx: Context) -> Account:
        found = await ctx.credentials()
        obj = found.get("object")
        if not isinstance(obj, dict) or not isinstance(obj.get("url"), str):
            raise PlatformError(f"{self.name}:invalid-url")
        try:
            url = strip_userinfo(obj["url"])
        except DavError:
            raise PlatformError(f"{self.name}:invalid-url") from None
        token = obj.get("token")
        return Account(
            url=url,
            username=None if token is not None else str(obj.get("username", "")),
            password=None if token is not None else str(obj.get("password", "")),
            token=None if token is None else str(token),
        )

    def client(self, account: Account) -> DavClient:
        try:
            return DavClient(
                account,
                allowlist=self.allowlist,
                timeout=self.settings.dav.timeout,
                allow_insecure_http=self.settings.dav.allow_insecure_http,
                ssl_context=self.ssl_context,
            )
        except DavError as exc:
            # Refused before any request: Sockethub answers these with the Error: prefix.
            raise PlatformError(f"{self.name}:{exc.code}") from None

    async def run(self, ctx: Context, verb: str) -> JSONDict | None:
        activity = ctx.activity
        try:
            self.check_rules(verb, activity)
        except VerbRuleError as exc:
            raise self.code(f"invalid-{verb}: {exc}") from None
        account = await self.account(ctx)
        async with self.client(account) as client:
            try:
                return await self.dispatch(verb, client, activity)
            except DavError as exc:
                if exc.code == "authentication-failed":
                    self._cache.pop(account.cache_key(), None)
                ctx.log.info(f"{self.name}.failed", code=exc.code)
                raise self.code(exc.code) from None

    async def dispatch(self, verb: str, client: DavClient, activity: JSONDict) -> JSONDict:
        if verb == "fetch":
            return self.fetch_result(activity, await self.discover(client, fresh=True))
        collection = await self.target(client, activity)
        steps: dict[str, Callable[[DavClient, JSONDict, JSONDict], Awaitable[JSONDict]]] = {
            "query": self.query,
            "create": self.create,
            "update": self.update,
            "delete": self.delete,
        }
        return await steps[verb](client, collection, activity)

    # --- per-verb rules ---------------------------------------------------------------------

    def check_rules(self, verb: str, activity: JSONDict) -> None:
        """The declared per-verb constraints; :class:`VerbRuleError` names the first broken."""
        if verb == "fetch":
            return  # a target or object on fetch is ignored, as Sockethub does
        target = activity.get("target")
        if not isinstance(target, dict) or not isinstance(target.get("id"), str):
            raise VerbRuleError(f"{verb} needs a target {self.target_type}")
        obj = activity.get("object")
        if verb == "query":
            return
        if not isinstance(obj, dict):
            raise VerbRuleError(f"{verb} needs an object")
        for key in ("id", "etag", "uid") if verb == "update" else ("id", "etag"):
            if verb in ("update", "delete") and not obj.get(key):
                raise VerbRuleError(f"{verb} needs object.{key}")
        self.check_object(verb, obj)

    @abstractmethod
    def check_object(self, verb: str, obj: JSONDict) -> None:
        """Platform-specific object rules for create/update/delete."""

    # --- discovery --------------------------------------------------------------------------

    async def discover(self, client: DavClient, *, fresh: bool = False) -> list[JSONDict]:
        key = client.account.cache_key()
        ttl = self.settings.dav.discovery_cache
        cached = self._cache.get(key)
        if not fresh and cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await self._discover(client)
        if ttl > 0:
            self._prune()
            self._cache[key] = (time.monotonic() + ttl, found)
        return found

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires, _found) in self._cache.items() if expires <= now]:
            del self._cache[key]

    async def _discover(self, client: DavClient) -> list[JSONDict]:
        try:
            return await self._discover_from(client, client.account.url)
        except DavError as exc:
            if exc.code not in ("not-found", self.discovery.no_home):
                raise
        base = client.base
        well_known = str(base.copy_with(raw_path=self.discovery.well_known.encode()))
        return await self._discover_from(client, well_known)

    async def _propfind(
        self, client: DavClient, url: str, depth: str, props: tuple[tuple[str, str], ...]
    ) -> tuple[str, list[xml.DavResponse]]:
        answer = await client.request(
            "PROPFIND",
            url,
            headers={"Depth": depth, "Content-Type": "application/xml; charset=utf-8"},
            body=xml.propfind_body(props),
        )
        if answer.status == 404:
            raise DavError("not-found")
        if answer.status != 207:
            raise DavError("invalid-response")
        try:
            return answer.url, xml.multistatus(answer.body)
        except xml.XmlError:
            raise DavError("invalid-response") from None

    async def _home(self, client: DavClient, url: str) -> str | None:
        d = self.discovery
        principal_prop = (xml.DAV, "current-user-principal")
        at, responses = await self._propfind(client, url, "0", (principal_prop, d.home_set))
        props = responses[0].props if responses else {}
        home = xml.href_of(props.get(xml.qname(*d.home_set)))
        if home:
            return client.resolve(home, at)
        principal = xml.href_of(props.get(xml.qname(*principal_prop)))
        if not principal:
            return None
        at, responses = await self._propfind(
            client, client.resolve(principal, at), "0", (principal_prop, d.home_set)
        )
        props = responses[0].props if responses else {}
        home = xml.href_of(props.get(xml.qname(*d.home_set)))
        return client.resolve(home, at) if home else None

    async def _discover_from(self, client: DavClient, url: str) -> list[JSONDict]:
        d = self.discovery
        home = await self._home(client, url)
        if home is None:
            raise DavError(d.no_home)
        at, responses = await self._propfind(client, home, "1", d.props)
        found: list[JSONDict] = []
        for response in responses:
            kinds = response.props.get(xml.qname(xml.DAV, "resourcetype"))
            if kinds is None or kinds.find(xml.qname(*d.collection)) is None:
                continue
            href = client.resolve(response.href, at)
            found.append(self.describe(href, response.props))
        return found

    @abstractmethod
    def describe(self, href: str, props: dict[str, ET.Element]) -> JSONDict:
        """The descriptor of one discovered collection."""

    async def target(self, client: DavClient, activity: JSONDict) -> JSONDict:
        """The discovered collection the target names exactly (trailing slash included)."""
        invalid = DavError(self.discovery.invalid_target)
        try:
            wanted = str(parse_url(str(activity["target"]["id"])))
        except DavError:
            raise invalid from None
        for fresh in (False, True):
            for collection in await self.discover(client, fresh=fresh):
                if collection["id"] == wanted:
                    return collection
        raise invalid

    # --- results ----------------------------------------------------------------------------

    @abstractmethod
    def fetch_result(self, activity: JSONDict, collections: list[JSONDict]) -> JSONDict: ...

    @abstractmethod
    async def query(
        self, client: DavClient, collection: JSONDict, activity: JSONDict
    ) -> JSONDict: ...

    @abstractmethod
    async def create(
        self, client: DavClient, collection: JSONDict, activity: JSONDict
    ) -> JSONDict: ...

    @abstractmethod
    async def update(
        self, client: DavClient, collection: JSONDict, activity: JSONDict
    ) -> JSONDict: ...

    async def delete(self, client: DavClient, collection: JSONDict, activity: JSONDict) -> JSONDict:
        obj = activity["object"]
        url = member_url(client, collection["id"], str(obj["id"]))
        answer = await client.request("DELETE", url, headers={"If-Match": str(obj["etag"])})
        check_write(answer.status, "delete-failed")
        return reply(activity, {"id": obj["id"], "type": obj.get("type", self.item_type)})

    item_type: str = ""


def collection_result(activity: JSONDict, summary: str, items: list[JSONDict], *,
                      always_id: bool) -> JSONDict:  # fmt: skip
    """A ``collection`` answer; ``fetch`` always carries ``id`` (null without one)."""
    result: JSONDict = {"@context": activity.get("@context")}
    if always_id or "id" in activity:
        result["id"] = activity.get("id")
    result |= {"type": "collection", "summary": summary, "totalItems": len(items), "items": items}
    return result


def reply(activity: JSONDict, obj: JSONDict) -> JSONDict:
    """The request's envelope (same verb, actor, target) with the result object."""
    result: JSONDict = {"@context": activity.get("@context")}
    if "id" in activity:
        result["id"] = activity["id"]
    result["type"] = activity["type"]
    result["actor"] = activity.get("actor")
    result["target"] = activity.get("target")
    result["object"] = obj
    return result


def check_write(status: int, failed: str) -> None:
    """The spec's codes for a write's (or its GET's) status."""
    if status == 412:
        raise DavError("conflict")
    if status == 404:
        raise DavError("not-found")
    if not 200 <= status < 300:
        raise DavError(failed)


def member_url(client: DavClient, collection: str, item: str) -> str:
    """``item`` if it lies strictly below ``collection`` on the same origin, else
    ``invalid-resource``: no query, fragment, backslash, encoded slash, or dot segment
    (after up to three rounds of percent-decoding)."""
    invalid = DavError("invalid-resource")
    try:
        parts = urlsplit(item)
        parsed = parse_url(item)
    except (DavError, ValueError):
        raise invalid from None
    if parts.query or parts.fragment or "?" in item or "#" in item or "\\" in item:
        raise invalid
    lowered = parts.path.lower()
    if "%2f" in lowered or "%5c" in lowered:
        raise invalid
    path = parts.path
    for _round in range(4):
        if any(segment in (".", "..") for segment in path.split("/")) or "\\" in path:
            raise invalid
        path = unquote(path)
    try:
        client.check_origin(parsed)
    except DavError:
        raise invalid from None
    base = httpx.URL(collection)
    if parsed.scheme != base.scheme or parsed.host != base.host or parsed.port != base.port:
        raise invalid
    base_path = unquote(base.raw_path.decode("ascii"))
    prefix = base_path if base_path.endswith("/") else base_path + "/"
    path = unquote(parts.path)
    if not path.startswith(prefix) or path == prefix:
        raise invalid
    return str(parsed)


def etag_of(headers: dict[str, str]) -> str | None:
    return headers.get("etag") or None
