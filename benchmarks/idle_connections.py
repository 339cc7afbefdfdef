"""What each lean transport piece (gateway/transport/) buys: memory per idle websocket
connection and gateway CPU per Socket.IO echo, with the piece on and off.

Run: ``.venv/bin/python benchmarks/idle_connections.py [--conns 3000] [--rounds 2]``.

For each variant it starts one gateway process (``gateway.app.create_app`` served by
``gateway.server.uvicorn_config``, lifespan off: no Kafka or Redis), so the connect handler,
sessions and settings are the gateway's own. The ``message`` handler answers at once (no
Kafka), so CPU per echo is the front's share only: a piece's share of the whole gateway's
CPU per echo is smaller still. Idle connections and echoes come from the Node clients of
``benchmarks/js/clients.mjs`` (as in ``benchmarks/e2e_bench.py``).

Variants: ``lean`` (everything on), ``stock`` (python-socketio's and uvicorn's own
classes), and ``-<piece>`` (everything but that piece), see ``VARIANTS``. The order of
the variants is rotated in each round so slow drift of the machine spreads over all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.measure import cpu_seconds
from benchmarks.node_clients import ClientProcs, raise_nofile, rss_kib
from sockethub.devstack.processes import free_port

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = [
    "lean",
    "stock",
    "-ws_queue",  # uvicorn protocol: asyncio.Queue + asyncio.Event instead of ReceiveQueue/Flag
    "-ws_handshake",  # uvicorn protocol: keeps the handshake request/response/scope headers
    "-packet_queue",  # engine.io: asyncio.Queue as each socket's outgoing queue
    "-handler",  # engine.io: no LeanAsyncSocket (a reader task and wait_for per packet)
]


def apply_variant(variant: str) -> tuple[type[Any], type[Any]]:
    """The Socket.IO server class and uvicorn ``ws`` protocol class for ``variant``."""
    import engineio
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from gateway.transport import engineio_server as eio
    from gateway.transport import uvicorn_protocol as uvp
    from gateway.transport.socketio_server import SockethubServer

    if variant == "stock":
        return SockethubServer, WebSocketsSansIOProtocol
    if variant == "-ws_queue":

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            WebSocketsSansIOProtocol.__init__(self, *args, **kwargs)

        uvp.LeanWebSocketProtocol.__init__ = init  # type: ignore[method-assign]
    elif variant == "-ws_handshake":
        uvp.LeanWebSocketProtocol.start_keepalive = (  # type: ignore[method-assign]
            WebSocketsSansIOProtocol.start_keepalive
        )
    elif variant == "-packet_queue":
        eio.LeanEngineIOServer.create_queue = engineio.AsyncServer.create_queue
    elif variant == "-handler":
        eio.LeanEngineIOServer._trigger_event = engineio.AsyncServer._trigger_event
    elif variant != "lean":
        raise SystemExit(f"unknown variant {variant}")
    return eio.LeanSockethubServer, uvp.LeanWebSocketProtocol


def serve(variant: str, port: int) -> None:
    """The gateway under test (a child process)."""
    import logging

    import structlog
    import uvicorn

    import gateway.app
    from gateway.server import uvicorn_config
    from gateway.settings import GatewaySettings

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    server_class, protocol = apply_variant(variant)
    gateway.app.LeanSockethubServer = server_class  # type: ignore[attr-defined]
    created: list[Any] = []

    class Recording(server_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    gateway.app.LeanSockethubServer = Recording  # type: ignore[attr-defined]
    settings = GatewaySettings(
        secret="s" * 32,
        host="127.0.0.1",
        port=port,
        allowed_origins="*",
        rate_limit=10**6,
        max_connections_per_ip=10**6,
    )
    config = uvicorn_config(settings)
    config.lifespan = "off"
    config.ws = protocol
    (sio,) = created

    def answer(data: Any) -> Any:
        return {"id": data.get("id") if isinstance(data, dict) else None}

    if hasattr(sio, "on_direct"):  # the gateway answers messages in the connection's reader

        async def direct(sid: str, args: list[Any], reply: Any) -> None:
            if reply is not None:
                await reply(answer(args[0] if args else None))

        sio.on_direct("message", direct, lambda sid: True)
    else:
        sio.inline_message = None

        async def message(sid: str, data: Any) -> Any:
            return answer(data)

        sio.on("message", message)
    uvicorn.Server(config).run()


async def measure(variant: str, conns: int, procs: int, rate: int, seconds: int) -> dict[str, Any]:
    port = free_port()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        f"--serve={variant}",
        "--port",
        str(port),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        # echoes first: their first-use allocations are not the idle connections' memory,
        # and they give the CPU per echo.
        echoers = ClientProcs(url, 50, 1, f"{variant}-e")
        await echoers.start()
        await echoers.command({"cmd": "rate", "rate": rate, "duration": 3, "start_at": 0}, 120)
        cpu0 = cpu_seconds(child.pid)
        start_at = time.time() + 1
        parts = await echoers.command(
            {"cmd": "rate", "rate": rate, "duration": seconds, "start_at": start_at}, 300
        )
        cpu = cpu_seconds(child.pid) - cpu0
        answered = sum(p["answered"] for p in parts)
        await echoers.close()
        await asyncio.sleep(3)
        base = rss_kib(child.pid)
        idle = ClientProcs(url, conns, procs, f"{variant}-i")
        await idle.start()
        await asyncio.sleep(5)  # the connects' garbage settles; a few pings go by
        rss = rss_kib(child.pid)
        await idle.close()
        return {
            "variant": variant,
            "kib_per_conn": round((rss - base) / conns, 2),
            "cpu_ms_per_echo": round(cpu / answered * 1000, 4) if answered else None,
            "answered": answered,
        }
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), 30)


async def run(args: argparse.Namespace) -> None:
    raise_nofile()
    variants = args.variants.split(",") if args.variants else VARIANTS
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for variant in order:
            row = await measure(variant, args.conns, args.procs, args.rate, args.seconds)
            rows[variant].append(row)
            print(json.dumps(row), flush=True)
    lean = rows.get("lean")
    print(f"\n{'variant':<14} {'KiB/conn':>9} {'ms CPU/echo':>12}")
    for variant, got in rows.items():
        kib = statistics.median(g["kib_per_conn"] for g in got)
        cpu = statistics.median(g["cpu_ms_per_echo"] for g in got)
        extra = ""
        if lean and variant != "lean":
            lean_kib = statistics.median(g["kib_per_conn"] for g in lean)
            lean_cpu = statistics.median(g["cpu_ms_per_echo"] for g in lean)
            extra = (
                f"  piece saves {kib - lean_kib:+.2f} KiB ({(kib - lean_kib) / kib:.0%})"
                f", {cpu - lean_cpu:+.4f} ms ({(cpu - lean_cpu) / cpu:.0%})"
            )
        print(f"{variant:<14} {kib:>9.2f} {cpu:>12.4f}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--variants", default="", help="comma-separated (default: all)")
    parser.add_argument("--conns", type=int, default=3000, help="idle connections")
    parser.add_argument("--procs", type=int, default=2, help="client processes holding them")
    parser.add_argument("--rate", type=int, default=800, help="echoes per second")
    parser.add_argument("--seconds", type=int, default=15, help="echo phase length")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
