"""The runner's internal HTTP listener: ``/healthz``, ``/readyz`` and ``/metrics``.

It runs on the runner's own event loop, so a loop blocked by a handler fails the liveness
probe as it should; a thread (prometheus_client's own server) would keep answering.
Only GET, only these three paths, small bounded requests: it is for the orchestrator and
Prometheus, never for clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = structlog.get_logger("platform_runners.health")

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT = 5.0

Status = Callable[[], dict[str, Any]]
"""The runner's readiness: a dict with a boolean ``ready`` and any details."""


class HealthServer:
    def __init__(self, host: str, port: int, status: Status) -> None:
        self.host = host
        self.port = port
        self._status = status
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("runner.health.listening", host=self.host, port=self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) of one request."""
        if method != "GET":
            return 405, "text/plain", b"method not allowed\n"
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return 200, "text/plain", b"ok"
        if path == "/readyz":
            status = self._status()
            body = json.dumps(status).encode()
            return (200 if status.get("ready") else 503), "application/json", body
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            if len(head) > MAX_REQUEST_BYTES:
                raise ValueError("request head too large")
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(parts) != 3:
                raise ValueError("malformed request line")
            code, media_type, body = self.respond(parts[0], parts[1])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            code, media_type, body = 400, "text/plain", b"bad request\n"
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  503: "Service Unavailable"}[code]  # fmt: skip
        head_out = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: {media_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head_out.encode("latin-1") + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
