"""``sockethub gateway``: serve the public and the internal ASGI apps with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator

import structlog
import uvicorn
from starlette.types import ASGIApp

from gateway.admin import DeadLetterSource
from gateway.app import create_app, create_apps
from gateway.settings import GatewaySettings
from gateway.transport.uvicorn_protocol import LeanWebSocketProtocol
from sockethub.runtime.observability import configure_logging

log = structlog.get_logger("gateway.server")


def uvicorn_config(settings: GatewaySettings, app: ASGIApp | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app if app is not None else create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # uvicorn's records go to the root logger: configure_logging renders them.
        log_config=None,
        access_log=False,
        lifespan="on",
        # uvicorn's websockets-sansio protocol, with lighter per-connection state.
        ws=LeanWebSocketProtocol,
        # engine.io does not bound websocket frames under ASGI: the server does.
        ws_max_size=settings.max_payload,
        # Off by default, as in the Node.js Socket.IO server: the zlib contexts of a
        # compressed connection are more than everything else it holds, and
        # Sockethub's messages are small.
        ws_per_message_deflate=settings.ws_compression,
        # engine.io's own heartbeat (25 s ping, 20 s timeout) finds dead peers; uvicorn's
        # websocket pings would add a second timer and frame per connection.
        ws_ping_interval=None,
    )


class PublicServer(uvicorn.Server):
    """The public listener. With ``park`` (recovery on), its shutdown stops accepting
    connections, then lets ``park`` hand the sessions over and close their transports,
    then closes what is left as uvicorn does (the lifespan shutdown finishes the rest)."""

    def __init__(
        self, config: uvicorn.Config, park: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        super().__init__(config)
        self._park = park

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._park is not None:
            for server in self.servers:
                server.close()
            for sock in sockets or []:
                sock.close()
            try:
                await self._park()
            except Exception as exc:  # the sessions are then lost as after a kill
                log.error("sessions_not_parked", error=repr(exc))
        await super().shutdown(sockets)


class InternalServer(uvicorn.Server):
    """The internal listener: it leaves the signals to the public server, which stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def internal_config(settings: GatewaySettings, app: ASGIApp) -> uvicorn.Config:
    host, port = settings.internal_address()
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", log_config=None,
        access_log=False, lifespan="off",
    )  # fmt: skip


def bind_internal(settings: GatewaySettings) -> socket.socket:
    """Bound before anything starts, so that a taken port fails the start plainly."""
    host, port = settings.internal_address()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def serve_both(
    settings: GatewaySettings,
    internal_socket: socket.socket,
    dead_letters: DeadLetterSource | None = None,
) -> None:
    """The public server owns the signals and the lifespan; the internal one answers
    probes until the public one has finished its shutdown."""
    apps = create_apps(settings, dead_letters=dead_letters)
    public = PublicServer(uvicorn_config(settings, apps.public), apps.park)
    apps.readiness.serving = lambda: public.started and not public.should_exit
    internal = InternalServer(internal_config(settings, apps.internal))
    internal_task = asyncio.create_task(internal.serve(sockets=[internal_socket]))
    try:
        await public.serve()
    finally:
        internal.should_exit = True
        await internal_task


def serve(settings: GatewaySettings, dead_letters: DeadLetterSource | None = None) -> None:
    configure_logging(settings, process="gateway")
    try:
        internal_socket = bind_internal(settings)
    except OSError as exc:
        host, port = settings.internal_address()
        raise SystemExit(
            f"sockethub gateway: cannot listen on {host}:{port} (internal listener): "
            f"{exc.strerror}; choose SOCKETHUB_INTERNAL_PORT"
        ) from None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(serve_both(settings, internal_socket, dead_letters))
        return
    uvloop.run(serve_both(settings, internal_socket, dead_letters))
