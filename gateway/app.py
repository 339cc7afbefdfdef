"""The gateway's ASGI applications: the public one (Socket.IO, the landing or demo page and
the client bundles) and the internal one (``/healthz``, ``/readyz``, ``/metrics``, and
``/admin`` when ``SOCKETHUB_ADMIN_TOKEN`` is set)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import socketio
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.address_cap import AddressCap
from gateway.admin import AdminPage, DeadLetterSource
from gateway.demo import bundle_routes
from gateway.demo import routes as demo_routes
from gateway.health import Readiness
from gateway.http_actions import HttpActions
from gateway.kafka_bridge import KafkaBridge
from gateway.metrics import GatewayMetrics
from gateway.packets import PacketLimits, SockethubPacket
from gateway.recovery import Recovery, RecoveryIndex
from gateway.settings import GatewaySettings
from gateway.socket_handlers import PARKED, ProtocolHandlers
from gateway.transport.engineio_server import LeanSockethubServer
from schemas.platform_registry import PlatformRegistry
from sockethub.runtime.credentials import CredentialStore
from sockethub.runtime.heap import freeze_startup_heap
from sockethub.runtime.liveness import GatewayHeartbeat
from sockethub.runtime.redis_client import redis_client
from sockethub.runtime.tracing import tracing_from_env

log = structlog.get_logger("gateway")

PARK_WAIT = 5.0
"""Seconds a stopping gateway waits for acknowledgements under way before it closes the
transports of the sessions it parks (each is one Redis round trip)."""


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


@dataclass(frozen=True)
class GatewayApps:
    public: ASGIApp
    """Socket.IO at ``settings.path``, Starlette behind it; its lifespan runs the gateway."""
    internal: ASGIApp
    """Probes and metrics, for the orchestrator and Prometheus only (no lifespan)."""
    readiness: Readiness
    park: Callable[[], Awaitable[None]] | None = None
    """With recovery on: parks every session and closes the transports, once the server has
    stopped accepting connections and before it closes them itself (a clean shutdown)."""


def create_app(settings: GatewaySettings) -> ASGIApp:
    """The public application alone (benchmarks and tests that need no probes)."""
    return create_apps(settings).public


def create_apps(
    settings: GatewaySettings, *, dead_letters: DeadLetterSource | None = None
) -> GatewayApps:
    """Both applications, sharing one set of clients, metrics and readiness.

    ``dead_letters`` feeds the admin page's dead-letter section (``sockethub gateway``
    passes ``sockethub dlq``'s; the gateway itself cannot import the CLI layer)."""
    metrics = GatewayMetrics(settings.gateway_id)
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
    cap = AddressCap(
        settings.max_connections_per_ip,
        redis,
        prefix=settings.topic_prefix,
        gateway_id=settings.gateway_id,
    )
    tracing = tracing_from_env("sockethub-gateway")
    recovery = None
    if settings.recovery_window > 0:
        index = RecoveryIndex(
            redis,
            settings.topic_prefix,
            settings.recovery_window,
            refresh_s=settings.heartbeat_ttl,
        )
        recovery = Recovery(settings, bridge, index)
    handlers = ProtocolHandlers(
        sio, settings, registry, bridge, store, metrics, cap, tracing, recovery=recovery
    )
    admin = None
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        admin = AdminPage(
            settings, settings.admin_token.get_secret_value(), metrics=metrics, redis=redis,
            platforms=list(registry.ids()), reply_route=bridge.reply_topic,
            session_count=handlers.sessions.__len__, dead_letters=dead_letters,
        )  # fmt: skip
    actions = HttpActions(settings, handlers, redis) if settings.http_actions else None
    park: Callable[[], Awaitable[None]] | None = None
    if recovery is not None:

        async def park() -> None:
            await handlers.park_all(lambda: sio.close_transports(PARKED), PARK_WAIT)

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> JSONResponse:
        status = await readiness.check()
        metrics.ready.set(1 if status["ready"] else 0)
        return JSONResponse(status, status_code=200 if status["ready"] else 503)

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    async def landing(request: Request) -> HTMLResponse:
        return HTMLResponse(LANDING.format(path=settings.path))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await bridge.start()
        # Runners release the persistent connections of this gateway's sessions once this
        # key is gone (a kill -9 sends no session_closed).
        heartbeat = GatewayHeartbeat(
            redis,
            settings.topic_prefix,
            bridge.reply_topic,
            interval=settings.heartbeat_interval,
            ttl=settings.heartbeat_ttl,
            sessions=handlers.sessions.__len__,
        )
        await heartbeat.start()
        await cap.start()
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
            if actions is not None:
                await actions.close()
            await handlers.close()
            await heartbeat.stop()
            await cap.close()
            await bridge.stop()
            await readiness.close()
            if admin is not None:
                await admin.close()
            await redis.aclose()
            if tracing is not None:
                await asyncio.to_thread(tracing.shutdown)  # flushes the queued spans
            log.info("gateway_stopped", gateway_id=settings.gateway_id)

    # /healthz stays public too: a load balancer's check needs nothing internal.
    pages = demo_routes(settings) if settings.demo else bundle_routes()
    http = Starlette(
        routes=[
            Route("/healthz", healthz),
            *(actions.routes() if actions is not None else []),
            *pages,  # the demo page at "/" comes before the plain landing page
            Route("/", landing),
        ],
        lifespan=lifespan,
    )
    public: ASGIApp = socketio.ASGIApp(
        sio, other_asgi_app=http, socketio_path=settings.path.strip("/")
    )
    internal = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_route),
            *(admin.routes() if admin is not None else []),
        ]
    )
    return GatewayApps(public=public, internal=internal, readiness=readiness, park=park)
