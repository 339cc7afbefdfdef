"""The gateway's ASGI application: HTTP routes, with Socket.IO mounted beside them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import socketio
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.demo import routes as demo_routes
from gateway.health import Readiness
from gateway.kafka_bridge import KafkaBridge
from gateway.metrics import GatewayMetrics
from gateway.packets import PacketLimits, SockethubPacket
from gateway.settings import GatewaySettings
from gateway.socket_handlers import ProtocolHandlers
from gateway.transport.engineio_server import LeanSockethubServer
from schemas.platform_registry import PlatformRegistry
from sockethub.runtime.credentials import CredentialStore
from sockethub.runtime.heap import freeze_startup_heap
from sockethub.runtime.redis_client import redis_client

log = structlog.get_logger("gateway")


def packet_limits(settings: GatewaySettings) -> PacketLimits:
    """The limits checked as each frame is decoded (:mod:`gateway.packets`)."""
    return PacketLimits(
        max_depth=settings.max_depth,
        event_bytes={"activity-object": (settings.max_object_bytes, "SOCKETHUB_MAX_OBJECT_BYTES")},
    )


def socketio_server(settings: GatewaySettings) -> LeanSockethubServer:
    """The gateway's Socket.IO server, with its limits, before any handler is registered."""
    return LeanSockethubServer(
        async_mode="asgi",
        cors_allowed_origins=settings.origins(),
        max_http_buffer_size=settings.max_payload,
        max_queue_bytes=settings.max_outbound_bytes,
        serializer=SockethubPacket.limited(packet_limits(settings)),
        always_connect=True,
        async_handlers=True,
        logger=False,
        engineio_logger=False,
    )


LANDING = """<!doctype html><html><head><meta charset="utf-8"><title>Sockethub</title></head>
<body><h1>Sockethub</h1><p>This gateway speaks the Sockethub protocol over Socket.IO at
<code>{path}</code>.</p></body></html>"""


def create_app(settings: GatewaySettings) -> ASGIApp:
    """Starlette for HTTP, python-socketio at ``settings.path`` in front of it."""
    metrics = GatewayMetrics()
    registry = PlatformRegistry(settings.platform_ids(), dummy_faults=settings.dummy_faults)
    redis = redis_client(settings.redis_url)
    store = CredentialStore(
        redis, settings.secret, prefix=settings.topic_prefix, ttl=settings.credentials_ttl
    )
    bridge = KafkaBridge(
        settings,
        gateway_id=settings.gateway_id,
        platforms=list(registry.ids()),
        metrics=metrics,
    )
    readiness = Readiness(settings, redis, bridge=bridge)
    sio = socketio_server(settings)
    handlers = ProtocolHandlers(sio, settings, registry, bridge, store, metrics)

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> JSONResponse:
        status = await readiness.check()
        return JSONResponse(status, status_code=200 if status["ready"] else 503)

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    async def landing(request: Request) -> HTMLResponse:
        return HTMLResponse(LANDING.format(path=settings.path))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await bridge.start()
        log.info(
            "gateway_started",
            gateway_id=settings.gateway_id,
            reply_topic=bridge.reply_topic,
            platforms=list(registry.ids()),
            fingerprint=registry.fingerprint,
        )
        freeze_startup_heap("gateway")
        try:
            yield
        finally:
            await handlers.close()
            await bridge.stop()
            await readiness.close()
            await redis.aclose()
            log.info("gateway_stopped", gateway_id=settings.gateway_id)

    http = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_route),
            *demo_routes(settings),  # the demo page at "/" comes before the plain landing page
            Route("/", landing),
        ],
        lifespan=lifespan,
    )
    app: ASGIApp = socketio.ASGIApp(
        sio, other_asgi_app=http, socketio_path=settings.path.strip("/")
    )
    return app
