"""SockethubServer runs ``message`` events in the reader only when no earlier event of the
session is still on its way to the session lock; otherwise they keep the task path."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.transport.socketio_server import SockethubServer


class Recorder:
    def __init__(self, server: SockethubServer, accept: bool = True) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.accept = accept
        self.release = asyncio.Event()
        server.inline_message = self.inline
        server.on("message", self.message)
        server.on("credentials", self.credentials)

    async def inline(self, sid: str, eio_sid: str, ack_id: int | None, args: list[Any]) -> bool:
        if self.accept:
            self.calls.append(("inline", args[0]))
        return self.accept

    async def message(self, sid: str, payload: object) -> None:
        self.calls.append(("task", payload))

    async def credentials(self, sid: str, payload: object) -> None:
        self.calls.append(("credentials", payload))
        await self.release.wait()


def _server(monkeypatch: pytest.MonkeyPatch) -> SockethubServer:
    server = SockethubServer(async_mode="asgi")
    monkeypatch.setattr(server.manager, "sid_from_eio_sid", lambda eio_sid, ns: "s-" + eio_sid)
    monkeypatch.setattr(server.manager, "is_connected", lambda sid, ns: sid != "s-gone")
    return server


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_messages_run_inline_unless_an_earlier_task_has_not_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = _server(monkeypatch)
    recorder = Recorder(server)

    await server._handle_event("e1", None, 1, ["message", "m1"])
    await server._handle_event("e1", "/", 2, ["credentials", "c"])
    await server._handle_event("e1", "/", 3, ["message", "m2"])
    await server._handle_event("e2", "/", 4, ["message", "other session"])
    assert recorder.calls == [("inline", "m1"), ("inline", "other session")]

    await _settle()
    assert recorder.calls[2:] == [("credentials", "c"), ("task", "m2")]
    await server._handle_event("e1", "/", 5, ["message", "m3"])
    assert recorder.calls[-1] == ("inline", "m3")
    recorder.release.set()
    await _settle()


async def test_a_declined_message_takes_the_task_path(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _server(monkeypatch)
    recorder = Recorder(server, accept=False)
    await server._handle_event("e1", "/", 1, ["message", "m1"])
    assert recorder.calls == []
    await _settle()
    assert recorder.calls == [("task", "m1")]


async def test_other_namespaces_and_gone_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _server(monkeypatch)
    recorder = Recorder(server)
    await server._handle_event("gone", "/", 1, ["message", "m1"])
    await server._handle_event("e1", "/chat", 2, ["message", "m2"])
    await _settle()
    assert recorder.calls == []
