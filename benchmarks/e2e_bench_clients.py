"""The client side of ``e2e_bench.py``: one process holding many Socket.IO clients.

Started by the benchmark as ``python benchmarks/e2e_bench_clients.py URL PATH COUNT TAG``.
It connects COUNT python-socketio ``AsyncClient``s (websocket transport), prints one JSON
line ``{"event": "connected", ...}``, then obeys JSON commands read from stdin, one per
line, answering each with one JSON line on stdout:

- ``{"cmd": "rate", "rate": R, "duration": D, "start_at": T}``: open loop. From wall clock
  time T, send R dummy echoes per second for D seconds, round-robin over the clients.
  Latency runs from each request's *scheduled* time to its acknowledgement, so a client
  that falls behind shows up in the figures (no coordinated omission).
- ``{"cmd": "closed", "window": W, "duration": D, "start_at": T}``: saturation. Every
  client keeps W requests outstanding for D seconds.
- ``{"cmd": "quit"}``: disconnect everything and exit.

Every send is bounded by the duration and every wait by ``ACK_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import resource
import sys
import time
from typing import Any

import socketio

ACK_TIMEOUT = 30.0
CONNECT_PARALLEL = 32
CONTEXT = [
    "https://www.w3.org/ns/activitystreams",
    "https://sockethub.org/ns/context/v1.jsonld",
    "https://sockethub.org/ns/context/platform/dummy/v1.jsonld",
]


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard one (each client holds a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def echo(request_id: str) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "echo",
        "id": request_id,
        "actor": {"id": "bench@dummy", "type": "person", "name": "Bench"},
        "object": {"type": "message", "content": "hello " + request_id},
    }


class Tally:
    """What one load phase saw: latencies (ms) of good answers, and the failures."""

    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.errors = 0
        self.timeouts = 0
        self.wrong = 0
        self.latencies_ms: list[float] = []
        self.last_answer = 0.0
        self.window_end = float("inf")
        self.in_window = 0
        """Good answers that arrived before the end of the sending window (throughput)."""

    async def call(self, client: socketio.AsyncClient, request_id: str, t0: float) -> None:
        self.sent += 1
        try:
            ack = await client.call("message", echo(request_id), timeout=ACK_TIMEOUT)
        except socketio.exceptions.TimeoutError:
            self.timeouts += 1
            return
        except Exception:
            self.errors += 1
            return
        now = time.perf_counter()
        self.last_answer = now
        if not isinstance(ack, dict) or ack.get("id") != request_id:
            self.wrong += 1
        elif "error" in ack:
            self.errors += 1
        else:
            self.answered += 1
            self.in_window += now <= self.window_end
            self.latencies_ms.append((now - t0) * 1000.0)

    def report(self, started: float, duration: float) -> dict[str, Any]:
        return {
            "event": "result",
            "sent": self.sent,
            "answered": self.answered,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "wrong": self.wrong,
            "in_window": self.in_window,
            "duration": duration,
            "drain_s": max(0.0, self.last_answer - started - duration),
            "latencies_ms": [round(x, 3) for x in self.latencies_ms],
        }


async def _sleep_until_wall(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_rate(
    clients: list[socketio.AsyncClient], tag: str, rate: float, duration: float, start_at: float
) -> dict[str, Any]:
    tally = Tally()
    tasks: set[asyncio.Task[None]] = set()
    await _sleep_until_wall(start_at)
    started = time.perf_counter()
    tally.window_end = started + duration
    total = int(rate * duration)
    ring = itertools.cycle(clients)
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(tally.call(next(ring), f"{tag}-r{n}", due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=ACK_TIMEOUT + 5)
    return tally.report(started, duration)


async def run_closed(
    clients: list[socketio.AsyncClient], tag: str, window: int, duration: float, start_at: float
) -> dict[str, Any]:
    tally = Tally()
    await _sleep_until_wall(start_at)
    started = time.perf_counter()
    end = tally.window_end = started + duration
    counter = itertools.count()

    async def lane(client: socketio.AsyncClient) -> None:
        while time.perf_counter() < end:
            await tally.call(client, f"{tag}-c{next(counter)}", time.perf_counter())

    lanes = [lane(c) for c in clients for _ in range(window)]
    await asyncio.wait_for(asyncio.gather(*lanes), duration + ACK_TIMEOUT + 5)
    return tally.report(started, duration)


async def connect_all(url: str, path: str, count: int) -> list[socketio.AsyncClient]:
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    clients: list[socketio.AsyncClient] = []

    async def one() -> None:
        client = socketio.AsyncClient(reconnection=False)
        async with gate:
            for attempt in range(5):
                try:
                    await client.connect(
                        url, socketio_path=path, transports=["websocket"], wait_timeout=30
                    )
                    break
                except socketio.exceptions.ConnectionError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))
        clients.append(client)

    await asyncio.gather(*(one() for _ in range(count)))
    return clients


def emit_line(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def main(url: str, path: str, count: int, tag: str) -> None:
    raise_nofile()
    started = time.perf_counter()
    clients = await connect_all(url, path, count)
    emit_line(
        {"event": "connected", "clients": len(clients), "seconds": time.perf_counter() - started}
    )
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command["cmd"] == "quit":
                break
            if command["cmd"] == "rate":
                result = await run_rate(
                    clients, tag, command["rate"], command["duration"], command["start_at"]
                )
            elif command["cmd"] == "closed":
                result = await run_closed(
                    clients, tag, command["window"], command["duration"], command["start_at"]
                )
            else:
                result = {"event": "error", "detail": f"unknown command {command['cmd']!r}"}
            tag = tag + "x"  # fresh request ids for the next phase
            emit_line(result)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.disconnect()
        emit_line({"event": "bye"})


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
