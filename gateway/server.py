"""``sockethub gateway``: serve the ASGI app with uvicorn."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.transport.uvicorn_protocol import LeanWebSocketProtocol
from sockethub.runtime.observability import configure_logging


def uvicorn_config(settings: GatewaySettings) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
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


def serve(settings: GatewaySettings) -> None:
    configure_logging(settings, process="gateway")
    uvicorn.Server(uvicorn_config(settings)).run()
