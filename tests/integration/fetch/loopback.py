"""Real HTTP servers on loopback for the fetch tests (fixtures in ``conftest.py``).

``origin`` serves feeds, pages and misbehaviours on 127.0.0.2 (the allow-listed
address); ``sentinel`` listens on 127.0.0.1 and counts every request, so a test
can prove that a refused address was never contacted. Nothing here or in the
tests leaves 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

DATA = Path(__file__).resolve().parents[2] / "data"
ORIGIN_HOST = "127.0.0.2"
SENTINEL_HOST = "127.0.0.1"
ALLOWLIST = "127.0.0.2/32"

FEED_TYPES = {
    "rss2.xml": "application/rss+xml; charset=utf-8",
    "atom.xml": "application/atom+xml",
    "rdf.xml": "application/rdf+xml",  # the XML declaration says ISO-8859-1
    "rss091.xml": "text/xml; charset=iso-8859-1",
    "malformed.xml": "application/rss+xml",
    "not-a-feed.xml": "application/xml",
    "empty-channel.xml": "application/rss+xml",
}
PAGE_TYPES = {
    "opengraph.html": "text/html; charset=utf-8",
    "twitter-only.html": "text/html",
    "plain.html": "text/html",
    "malformed.html": "text/html",
    "latin1.html": "text/html",
    "cp1252-mislabelled.html": "text/html; charset=utf-8",  # wrong on purpose
    "bogus-meta-charset.html": "text/html; charset=x-no-such-charset",
}


@dataclass
class Server:
    host: str
    port: int = 0
    hits: list[str] = field(default_factory=list)
    hosts_seen: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


async def start_server(app: web.Application, server: Server) -> web.AppRunner:
    @web.middleware
    async def record(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        server.hits.append(request.path_qs)
        server.hosts_seen.append(request.headers.get("Host", ""))
        return await handler(request)

    app.middlewares.append(record)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, server.host, 0)
    await site.start()
    server.port = runner.addresses[0][1]
    return runner


def origin_app(release: asyncio.Event) -> web.Application:
    app = web.Application()
    routes = web.RouteTableDef()

    def data_file(folder: str, types: dict[str, str], name: str) -> web.Response:
        """``tests/data/<folder>/<name>`` with its listed content type; 404 if not listed."""
        if name not in types:
            raise web.HTTPNotFound()
        body = (DATA / folder / name).read_bytes()
        return web.Response(body=body, headers={"Content-Type": types[name]})

    @routes.get("/feeds/{name}")
    async def feed(request: web.Request) -> web.Response:
        return data_file("feeds", FEED_TYPES, request.match_info["name"])

    @routes.get("/pages/{name}")
    async def page(request: web.Request) -> web.Response:
        return data_file("pages", PAGE_TYPES, request.match_info["name"])

    @routes.get("/gzip/rss2.xml")
    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress((DATA / "feeds" / "rss2.xml").read_bytes())
        return web.Response(
            body=body,
            headers={"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"},
        )

    @routes.get("/huge")
    async def huge(request: web.Request) -> web.StreamResponse:
        """6 MiB, chunked (no Content-Length): only the streaming cap can stop it."""
        response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        await response.prepare(request)
        await response.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
        chunk = b"x" * 65536
        for _ in range(96):
            await response.write(chunk)
        await response.write(b"</title></channel></rss>")
        return response

    @routes.get("/huge-declared")
    async def huge_declared(request: web.Request) -> web.Response:
        return web.Response(
            body=b"<rss/>" * (1024 * 1024), headers={"Content-Type": "application/rss+xml"}
        )

    bomb_body: list[bytes] = []

    @routes.get("/gzip-bomb")
    async def bomb(request: web.Request) -> web.Response:
        """About 64 KiB on the wire, 64 MiB once inflated."""
        if not bomb_body:
            bomb_body.append(gzip.compress(b"<" + b" " * (64 * 1024 * 1024), compresslevel=9))
        body = bomb_body[0]
        return web.Response(
            body=body, headers={"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
        )

    @routes.get("/redirect/{n}")
    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        target = f"/redirect/{n - 1}" if n > 1 else "/feeds/rss2.xml"
        raise web.HTTPFound(target)

    @routes.get("/loop")
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/loop")

    @routes.get("/to")
    async def to(request: web.Request) -> web.Response:
        """Redirect to ``?url=`` (with 307 to show the method-keeping codes work too)."""
        raise web.HTTPTemporaryRedirect(request.query["url"])

    @routes.get("/missing")
    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    @routes.get("/teapot")
    async def teapot(request: web.Request) -> web.Response:
        return web.Response(status=418, reason="I'm a teapot")

    @routes.get("/json")
    async def json(request: web.Request) -> web.Response:
        return web.json_response({"not": "a feed"})

    @routes.get("/slow-headers")
    async def slow_headers(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 60)
        return web.Response(text="late")

    @routes.get("/drip")
    async def drip(request: web.Request) -> web.StreamResponse:
        """A byte every 100 ms: never idle long enough for a read timeout."""
        response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        await response.prepare(request)
        while not release.is_set():
            await response.write(b" ")
            await asyncio.sleep(0.1)
        return response

    @routes.get("/echo-host")
    async def echo_host(request: web.Request) -> web.Response:
        host = request.headers.get("Host", "")
        body = f'<rss version="2.0"><channel><title>{host}</title></channel></rss>'
        return web.Response(text=body, content_type="application/rss+xml")

    app.add_routes(routes)
    return app
