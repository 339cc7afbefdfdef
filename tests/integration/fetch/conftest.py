"""Loopback HTTP servers for the fetch tests: ``origin`` on 127.0.0.2, ``sentinel`` on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from platform_runners.http_guard import GuardedClient, GuardSettings
from tests.integration.fetch.loopback import (
    ALLOWLIST,
    ORIGIN_HOST,
    SENTINEL_HOST,
    Server,
    origin_app,
    start_server,
)


@pytest.fixture(scope="module")
async def origin() -> AsyncIterator[Server]:
    release = asyncio.Event()
    server = Server(ORIGIN_HOST)
    runner = await start_server(origin_app(release), server)
    yield server
    release.set()
    await runner.cleanup()


@pytest.fixture(scope="module")
async def sentinel() -> AsyncIterator[Server]:
    """Answers everything with a feed; any hit means the guard failed."""

    async def anything(request: web.Request) -> web.Response:
        return web.Response(
            text='<rss version="2.0"><channel><title>LEAKED</title></channel></rss>',
            content_type="application/rss+xml",
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    server = Server(SENTINEL_HOST)
    runner = await start_server(app, server)
    yield server
    await runner.cleanup()


@pytest.fixture
def client() -> GuardedClient:
    return GuardedClient(GuardSettings.from_allowlist(ALLOWLIST))
