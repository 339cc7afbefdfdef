"""The gateway's ASGI application: HTTP routes, with Socket.IO mounted beside them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from gateway.health import Readiness
from gateway.settings import GatewaySettings

LANDING = """<!doctype html><html><head><meta charset="utf-8"><title>Sockethub</title></head>
<body><h1>Sockethub</h1><p>This gateway speaks the Sockethub protocol over Socket.IO at
<code>{path}</code>.</p></body></html>"""


def create_app(settings: GatewaySettings) -> Starlette:
    redis = Redis.from_url(settings.redis_url)
    readiness = Readiness(settings, redis)

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> JSONResponse:
        status = await readiness.check()
        return JSONResponse(status, status_code=200 if status["ready"] else 503)

    async def landing(request: Request) -> HTMLResponse:
        return HTMLResponse(LANDING.format(path=settings.path))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await readiness.close()
            await redis.aclose()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/", landing),
        ],
        lifespan=lifespan,
    )
