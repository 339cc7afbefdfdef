"""HAProxy in front of gateways, and Socket.IO clients bound to their own loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from sockethub.devstack.processes import free_port, spawn, stop
from tests.fixtures.gateway import GatewayProcess, dummy

PROXY_ADDRESS = "127.0.0.1"
"""HAProxy listens, and connects to the gateways, from this address only: the gateways
trust it and no other."""
COOKIE = "SOCKETHUB_GW"
WAIT = 60.0
"""Bound for one client's connect or answer: generous for a loaded machine."""


def haproxy_config(port: int, gateways: list[GatewayProcess], *, sticky: bool) -> str:
    """What an ingress in front of gateways has: each server checked against the
    gateway's readiness on its internal port (``/readyz`` says 503 as soon as a gateway
    stops), and a connection the dead server refuses retried on another one at once
    (``option redispatch 1``) instead of on the same one after a turn-around second."""
    servers = "\n".join(
        f"    server g{n} {PROXY_ADDRESS}:{gw.port} check port {internal_port(gw)}"
        + (f" cookie g{n}" if sticky else "")
        for n, gw in enumerate(gateways, 1)
    )
    cookie = f"    cookie {COOKIE} insert indirect nocache\n" if sticky else ""
    return f"""global
    maxconn 4000

defaults
    mode http
    retries 3
    option redispatch 1
    timeout connect 5s
    timeout check 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h

frontend sockethub
    bind {PROXY_ADDRESS}:{port}
    option forwardfor
    default_backend gateways

backend gateways
    balance roundrobin
    source {PROXY_ADDRESS}
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fastinter 250ms downinter 1s fall 2 rise 2
{cookie}{servers}
"""


def internal_port(gateway: GatewayProcess) -> int:
    """The port of the gateway's ``/readyz``."""
    return gateway.internal_port or gateway.port + 1


@contextlib.contextmanager
def haproxy(gateways: list[GatewayProcess], workdir: Path, *, sticky: bool) -> Iterator[str]:
    """A running ``haproxy`` (Debian's package) in front of ``gateways``; yields its URL."""
    program = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    name = "sticky" if sticky else "round-robin"
    config = workdir / f"haproxy-{name}.cfg"
    config.write_text(haproxy_config(port, gateways, sticky=sticky))
    proc = spawn([program, "-db", "-f", str(config)], log_path=workdir / f"haproxy-{name}.log")
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (workdir / f"haproxy-{name}.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection((PROXY_ADDRESS, port), 1):
                break
            assert time.monotonic() < deadline, "haproxy did not listen"
            time.sleep(0.1)
        yield f"http://{PROXY_ADDRESS}:{port}"
    finally:
        stop(proc, timeout=10)


@dataclass
class Outcome:
    source: str
    result: str
    """answered, refused (Sockethub's error event), or failed: <why>."""
    server: str | None = None
    """The HAProxy server its stickiness cookie names, if any."""


class _Client(socketio.AsyncClient):  # type: ignore[misc]
    """Notices the engine.io session ending, even before the Socket.IO connect completed
    (``connect`` would otherwise wait its whole timeout)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost = asyncio.Event()

    async def _handle_eio_disconnect(self, reason: Any) -> None:
        self.lost.set()
        await super()._handle_eio_disconnect(reason)


class BoundClient:
    """A python-socketio client whose connections leave from ``source`` (a loopback
    address of its own), keeping cookies for an IP host (HAProxy's stickiness)."""

    def __init__(self, source: str, transports: list[str]) -> None:
        self.source = source
        self.transports = transports
        self.http: aiohttp.ClientSession | None = None
        self.sio: _Client | None = None
        self.errors: asyncio.Queue[Any] = asyncio.Queue()
        self.failure: str | None = None

    async def connect(self, url: str) -> BoundClient:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(self.source, 0)),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )
        self.sio = sio = _Client(reconnection=False, http_session=self.http)
        sio.on("error", self.errors.put)
        connecting = asyncio.ensure_future(
            sio.connect(
                url, socketio_path="/sockethub", transports=self.transports, wait_timeout=WAIT
            )
        )
        lost = asyncio.ensure_future(sio.lost.wait())
        await asyncio.wait({connecting, lost}, return_when=asyncio.FIRST_COMPLETED)
        lost.cancel()
        if not connecting.done():  # the engine.io session ended before Socket.IO connected
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            self.failure = "failed: engine.io session lost while connecting"
        elif connecting.exception() is not None:
            exc = connecting.exception()
            self.failure = f"failed: {type(exc).__name__}: {exc}"
        return self

    def server(self) -> str | None:
        if self.http is None:
            return None
        for cookie in self.http.cookie_jar:
            if cookie.key == COOKIE:
                return cookie.value
        return None

    async def probe(self, content: str) -> Outcome:
        """Send an echo: answered, refused with an error event, or failed."""
        if self.failure is not None or self.sio is None:
            return Outcome(self.source, self.failure or "failed", self.server())
        call = asyncio.ensure_future(
            self.sio.call("message", dummy("echo", content, id=content), timeout=WAIT)
        )
        error = asyncio.ensure_future(self.errors.get())
        done, _ = await asyncio.wait({call, error}, return_when=asyncio.FIRST_COMPLETED)
        for task in (call, error):
            task.cancel()
        if error in done:
            return Outcome(self.source, f"refused: {error.result()['summary']}", self.server())
        try:
            ack = call.result()
        except Exception as exc:
            return Outcome(self.source, f"failed: {type(exc).__name__}", self.server())
        ok = isinstance(ack, dict) and ack.get("id") == content and "error" not in ack
        return Outcome(self.source, "answered" if ok else f"failed: {ack}", self.server())

    async def close(self) -> None:
        if self.sio is not None and self.sio.connected:
            with contextlib.suppress(Exception):
                # A polling client's CLOSE is answered only when its long-poll returns.
                await self.sio.eio.disconnect(abort=True)
        if self.http is not None:
            await self.http.close()


async def run_clients(url: str, sources: list[str], transports: list[str]) -> list[Outcome]:
    """Connect one client per source (all at once), then have each send one echo while
    all stay connected; close them all."""
    clients = [BoundClient(source, transports) for source in sources]
    try:
        await asyncio.gather(*(c.connect(url) for c in clients))
        return list(await asyncio.gather(*(c.probe(f"m{n}") for n, c in enumerate(clients))))
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def handshake_only(url: str, source: str) -> str | None:
    """An engine.io polling handshake and nothing after it (no Socket.IO CONNECT): its
    stickiness cookie's server."""
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
        async with http.get(f"{url}/sockethub/?EIO=4&transport=polling") as response:
            assert response.status == 200, await response.text()
            body = await response.text()
            assert body.startswith("0{"), body
        return next((c.value for c in jar if c.key == COOKIE), None)
