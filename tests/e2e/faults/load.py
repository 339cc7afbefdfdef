"""Bounded client load for the fault tests, and the counts each test prints.

A :class:`Load` drives a few Socket.IO clients in an open loop (requests are
sent on a fixed schedule whether or not earlier ones are answered, so many are
in flight when the fault hits), each request a dummy ``echo`` with a unique
``id``. It records, per request, every acknowledgement the client *library*
received (:class:`CountingClient` counts ack packets, so a second answer to one
request would show even though ``call`` returns only the first).

Outcomes as the client sees them:

- **answered**: an ack arrived (a result, or an error such as "could not be
  queued" or "timed out"): an error ack is an answer, not a loss;
- **lost**: no ack within the client's deadline, which is longer than the
  gateway's own request timeout, so a working gateway always answers first;
- **duplicated**: more than one ack for one request.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import socketio

from tests.fixtures.gateway import dummy

CLIENT_DEADLINE = 120.0
"""Seconds a client waits for an ack before counting the request lost."""


class CountingClient(socketio.AsyncClient):  # type: ignore[misc]
    """An AsyncClient that counts every ack packet by ack id, claimed or not."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ack_packets: Counter[int] = Counter()

    async def _handle_ack(self, namespace: str | None, id: int, data: Any) -> None:
        self.ack_packets[id] += 1
        await super()._handle_ack(namespace, id, data)


@dataclass
class Outcome:
    request_id: str
    sent_at: float
    ack: dict[str, Any] | None = None
    answered_at: float | None = None
    client: int = 0

    @property
    def ok(self) -> bool:
        return self.ack is not None and "error" not in self.ack


@dataclass
class Counts:
    sent: int
    answered: int
    ok: int
    error_acks: int
    lost: int
    duplicated: int
    recover_s: float | None
    errors: Counter[str] = field(default_factory=Counter)

    def line(self, name: str) -> str:
        recover = "n/a" if self.recover_s is None else f"{self.recover_s:.1f}s"
        detail = f" {dict(self.errors)}" if self.errors else ""
        return (
            f"[fault {name}] sent={self.sent} answered={self.answered} (ok={self.ok}, "
            f"error acks={self.error_acks}{detail}) lost={self.lost} "
            f"duplicated={self.duplicated} time to recover={recover}"
        )


class Load:
    """``rate`` echoes per second over ``clients`` connections, ``total`` at most."""

    def __init__(self, url: str, *, clients: int, tag: str) -> None:
        self.url = url
        self.tag = tag
        self.sios = [CountingClient(reconnection=False) for _ in range(clients)]
        self.outcomes: dict[str, Outcome] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count()
        self.sids_seen: set[str] = set()
        """The session ids the clients had (kept after they disconnect)."""

    async def connect(self) -> None:
        for sio in self.sios:
            await sio.connect(
                self.url, socketio_path="/sockethub", transports=["websocket"], wait_timeout=30
            )
            self.sids_seen.add(str(sio.get_sid()))

    async def _one(self, index: int, outcome: Outcome) -> None:
        sio = self.sios[index]
        try:
            ack = await sio.call(
                "message", dummy("echo", outcome.request_id, id=outcome.request_id),
                timeout=CLIENT_DEADLINE,
            )  # fmt: skip
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
            return  # lost (or the connection died: counted by the caller)
        outcome.answered_at = time.monotonic()
        outcome.ack = ack if isinstance(ack, dict) else {"error": f"odd ack {ack!r}"}

    def send_one(self, index: int | None = None) -> Outcome:
        n = next(self._ids)
        client = n % len(self.sios) if index is None else index
        outcome = Outcome(f"{self.tag}-{n}", time.monotonic(), client=client)
        self.outcomes[outcome.request_id] = outcome
        task = asyncio.create_task(self._one(client, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return outcome

    async def send(self, count: int, rate: float) -> None:
        """Send ``count`` requests at ``rate`` per second (bounded: count / rate seconds)."""
        start = time.monotonic()
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.send_one()

    async def drain(self, within: float = CLIENT_DEADLINE + 10) -> None:
        """Wait for every request's ack or its deadline."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)

    async def probe_until_ok(self, within: float) -> float:
        """Send one echo at a time until one is answered without error; return when it was
        sent (monotonic). Each probe is bounded by the gateway's own timeout."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            outcome = self.send_one(0)
            while outcome.ack is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if outcome.answered_at is None and time.monotonic() - outcome.sent_at > 70:
                    break
            if outcome.ok:
                return outcome.sent_at
            await asyncio.sleep(0.2)
        raise AssertionError(f"no request answered without error within {within}s")

    def counts(self, recovered_at: float | None, fault_at: float) -> Counts:
        outcomes = list(self.outcomes.values())
        answered = [o for o in outcomes if o.ack is not None]
        errors = Counter(str(o.ack.get("error"))[:60] for o in answered if o.ack and not o.ok)
        acks = sum(sum(sio.ack_packets.values()) for sio in self.sios)
        distinct = sum(len(sio.ack_packets) for sio in self.sios)
        wrong = sum(1 for o in answered if o.ack and o.ack.get("id") != o.request_id)
        return Counts(
            sent=len(outcomes),
            answered=len(answered),
            ok=sum(1 for o in answered if o.ok),
            error_acks=len(answered) - sum(1 for o in answered if o.ok),
            lost=len(outcomes) - len(answered),
            duplicated=acks - distinct + wrong,
            recover_s=None if recovered_at is None else recovered_at - fault_at,
            errors=errors,
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for sio in self.sios:
            if sio.connected:
                await sio.disconnect()
