"""The CONNECT answer's ``pid`` and a recovered session's ``sid`` (Socket.IO v4 connection
state recovery), through the real server on 127.0.0.1 with raw frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from tests.unit.gateway.transport.harness import WAIT, RawPeer, lean_server, serving


def _server() -> tuple[Any, list[tuple[str, object]]]:
    sio = lean_server()
    connects: list[tuple[str, object]] = []

    async def resume(auth: object) -> tuple[str | None, str]:
        if isinstance(auth, dict) and auth.get("pid") == "p1":
            return "kept-sid", "p1"
        return None, "fresh-pid"

    async def connect(sid: str, environ: dict[str, Any], auth: object = None) -> bool:
        connects.append((sid, auth))
        return True

    sio.on("connect", connect)
    sio.on_resume(resume)
    return sio, connects


async def _join(url: str, auth: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    ws = await websockets.asyncio.client.connect(url, compression=None)
    assert str(await ws.recv()).startswith("0{")
    await ws.send("40" + json.dumps(auth))
    answer = str(await ws.recv())
    assert answer.startswith("40{"), answer
    return ws, json.loads(answer[2:])


async def test_connect_answers_carry_a_pid_and_a_recovered_session_keeps_its_sid() -> None:
    sio, connects = _server()
    async with serving(sio) as served:
        async with RawPeer.connected(served) as fresh:
            assert fresh.sid not in ("kept-sid", None)
        ws, answer = await _join(served.ws_url(), {"pid": "p1", "offset": "t|0|4"})
        try:
            assert answer == {"sid": "kept-sid", "pid": "p1"}
            # The same sid cannot be open twice: a second claim gets a fresh session.
            other, second = await _join(served.ws_url(), {"pid": "p1", "offset": "t|0|4"})
            await other.close()
            assert second["sid"] != "kept-sid" and second["pid"] == "fresh-pid"
        finally:
            await ws.close()
    assert ("kept-sid", {"pid": "p1", "offset": "t|0|4"}) in connects
    assert connects[0][1] is None


async def test_an_ack_and_the_event_after_it_leave_in_one_batch() -> None:
    """The offset event that follows an ack is queued before any other task runs (no
    per-recipient task as in ``emit``): the writer takes both at once, so a gateway killed
    between them is as unlikely as between two writes."""
    sio = lean_server()
    replies: list[Any] = []
    arrived = asyncio.Event()

    async def direct(sid: str, args: list[Any], reply: Any) -> None:
        replies.append((sid, reply))
        arrived.set()

    sio.on_direct("message", direct, lambda sid: True)
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        await peer.emit("message", {"n": 1}, ack=5)
        await asyncio.wait_for(arrived.wait(), WAIT)
        sid, reply = replies[0]
        queue = sio.eio.sockets[sio.manager.eio_sid_from_sid(sid, "/")].queue
        await reply({"n": 1})
        await sio.emit_now(sid, "sockethub:offset", "t|0|7")
        assert queue.qsize() == 2  # the writer has not run in between
        assert await peer.frame() == '435[{"n":1}]'
        assert await peer.frame() == '42["sockethub:offset","t|0|7"]'
