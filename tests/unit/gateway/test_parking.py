"""A gateway that stops with connection state recovery on parks its sessions, as a lost
transport does, instead of ending them: no ``session_closed``, credentials kept (set to
expire with the parked entry), no window timer; and a result that comes while it parks is
left in the log for the recovering gateway rather than acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.recovery import Entry
from gateway.socket_handlers import PARKED, PID, ProtocolHandlers
from schemas.envelopes import Request, RequestKind
from schemas.platform_registry import PlatformRegistry
from tests.unit.gateway.test_socket_handlers import (
    WAIT,
    Gateway,
    Server,
    Store,
    credentials,
    echo,
    until,
)

WINDOW = 1
PARKED_TTL = 9
STOPPED_TTL = 7


class Index:
    """The recovery index's Redis side, in memory."""

    def __init__(self) -> None:
        self.window = WINDOW
        self.parked_ttl = PARKED_TTL
        self.stopped_ttl = STOPPED_TTL
        self.refresh_s = 1.0
        self.puts: list[tuple[str, str, int | None]] = []
        self.taken: list[str] = []

    async def put(self, pid: str, entry: Entry, ttl: int | None = None) -> None:
        self.puts.append((pid, entry.sid, ttl))

    async def take(self, pid: str, epoch: str | None = None) -> Entry | None:
        self.taken.append(pid)
        return None

    async def refresh(self, pids: list[str]) -> None:
        pass


class Recovery:
    def __init__(self) -> None:
        self.index = Index()
        self.window = WINDOW

    async def segment(self) -> tuple[str, dict[int, int]]:
        return "replies", {0: 0}


class ParkingStore(Store):
    def __init__(self) -> None:
        super().__init__()
        self.expiries: list[tuple[str, int | None]] = []

    async def expire_session(self, sid: str, ttl: int | None = None) -> None:
        self.expiries.append((sid, ttl))


class TransportServer(Server):
    """Tracks connected sids; closing the transports reports each disconnect, as engine.io
    does."""

    def __init__(self) -> None:
        super().__init__()
        self.connected: list[str] = []

    def on_resume(self, resume: Any) -> None:
        self.resume = resume

    async def close_transports(self) -> None:
        for sid in self.connected:
            await self.handlers["disconnect"](sid, PARKED)
        self.connected.clear()


class RecoveringGateway(Gateway):
    def __init__(self) -> None:
        super().__init__(recovery_window=WINDOW, request_timeout=30)
        self.server = TransportServer()
        self.store = ParkingStore()
        self.recovery = Recovery()
        self.handlers = ProtocolHandlers(
            self.server,  # type: ignore[arg-type]
            self.settings,
            PlatformRegistry(self.settings.platform_ids()),
            self.bridge,  # type: ignore[arg-type]
            self.store,  # type: ignore[arg-type]
            self.metrics,
            recovery=self.recovery,  # type: ignore[arg-type]
        )

    async def connect_recoverable(self, sid: str) -> None:
        PID.set(f"pid-{sid}")
        assert await self.connect(sid)
        self.server.connected.append(sid)
        await until(lambda: (f"pid-{sid}", sid, None) in self.recovery.index.puts)

    def session_closed(self) -> list[Request]:
        return [
            r
            for _, r, _ in self.bridge.produced
            if isinstance(r, Request) and r.kind is RequestKind.SESSION_CLOSED
        ]


async def test_a_stopping_gateway_parks_its_sessions_instead_of_ending_them() -> None:
    gw = RecoveringGateway()
    for sid in ("s1", "s2"):
        await gw.connect_recoverable(sid)
        stored = await gw.server.event("credentials", sid, credentials())
        assert "error" not in stored
    await gw.handlers.park_all(gw.server.close_transports, WAIT)
    await gw.handlers.close()
    assert len(gw.handlers.sessions) == 0
    parked = [(pid, sid) for pid, sid, ttl in gw.recovery.index.puts if ttl == STOPPED_TTL]
    assert sorted(parked) == [("pid-s1", "s1"), ("pid-s2", "s2")]
    assert sorted(gw.store.expiries) == [("s1", STOPPED_TTL), ("s2", STOPPED_TTL)]
    # Nothing ends, now or when the window has passed (no timer in a stopped process).
    await asyncio.sleep(WINDOW + 0.5)
    assert gw.session_closed() == [] and gw.store.ended == []
    assert gw.recovery.index.taken == []


async def test_a_client_that_disconnects_itself_while_the_gateway_stops_ends() -> None:
    gw = RecoveringGateway()
    await gw.connect_recoverable("s1")
    await gw.server.event("credentials", "s1", credentials())

    async def client_leaves() -> None:
        await gw.server.handlers["disconnect"]("s1", "client disconnect")

    await gw.handlers.park_all(client_leaves, WAIT)
    await gw.handlers.close()
    assert [r.session_id for r in gw.session_closed()] == ["s1"]
    assert gw.store.ended == ["s1"] and gw.store.expiries == []


async def test_a_result_that_comes_while_parking_is_left_for_the_recovering_gateway() -> None:
    gw = RecoveringGateway()
    await gw.connect_recoverable("s1")
    acks: list[Any] = []
    await gw.server.message("s1", echo("late"), acks)
    await until(lambda: len(gw.bridge.requests()) == 1)
    [request] = gw.bridge.requests()
    answered = asyncio.Event()

    async def transports() -> None:
        await gw.bridge.answer(request)  # the result arrives after acks stopped
        answered.set()
        await gw.server.close_transports()

    await gw.handlers.park_all(transports, WAIT)
    await gw.handlers.close()
    assert answered.is_set()
    assert acks == []  # unacknowledged, after the client's offset: the replay delivers it
    assert gw.session_closed() == []
