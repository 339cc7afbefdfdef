"""Packets a standard client never sends, through the real server on 127.0.0.1: binary
events whose attachments do not fit, are too large or are none, and the reserved event
names. Each used to leave the connection unanswered (found by test_fuzz_frames.py)."""

from __future__ import annotations

import json
from typing import Any

from gateway.packets import Refused
from gateway.transport.socketio_server import MALFORMED_ATTACHMENTS
from tests.unit.gateway.transport.harness import RawPeer, lean_server, serving

LIMIT = 4096


def _server() -> Any:
    sio = lean_server(max_http_buffer_size=LIMIT)
    closed: list[str] = []

    async def echo(sid: str, *args: Any) -> Any:
        for arg in args:
            if isinstance(arg, Refused):
                return {"error": arg.reason}
        return {"args": len(args), "binary": [isinstance(a, bytes) for a in args]}

    async def disconnect(sid: str, reason: object = None) -> None:
        closed.append(sid)

    sio.on("echo", echo)
    sio.on("disconnect", disconnect)
    return sio, closed


async def _answer(peer: RawPeer, ack: int) -> Any:
    frame = await peer.frame()
    assert isinstance(frame, str) and frame.startswith(f"43{ack}["), frame
    return json.loads(frame[2 + len(str(ack)) :])[0]


async def test_attachments_that_fit_no_placeholder_get_an_error_ack_and_the_next_event_works() -> (
    None
):
    sio, _ = _server()
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        await peer.ws.send('451-1["echo",{"_placeholder":true,"num":3}]')
        await peer.ws.send(b"\x00")
        assert await _answer(peer, 1) == {"error": MALFORMED_ATTACHMENTS}
        await peer.ws.send('451-2["echo",{"_placeholder":true,"num":"0"}]')
        await peer.ws.send(b"\x00")
        assert await _answer(peer, 2) == {"error": MALFORMED_ATTACHMENTS}
        await peer.emit("echo", 1, ack=3)
        assert await _answer(peer, 3) == {"args": 1, "binary": [False]}


async def test_a_binary_event_with_no_attachments_is_handled_at_once() -> None:
    sio, _ = _server()
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        await peer.ws.send('450-1["echo",{"_placeholder":true,"num":0}]')
        assert await _answer(peer, 1) == {"error": MALFORMED_ATTACHMENTS}
        await peer.ws.send('450-2["echo",1]')
        assert await _answer(peer, 2) == {"args": 1, "binary": [False]}


async def test_attachments_past_the_payload_limit_are_not_kept_and_refused() -> None:
    sio, _ = _server()
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        placeholders = [{"_placeholder": True, "num": i} for i in range(3)]
        await peer.ws.send(f"453-1{json.dumps(['echo', *placeholders])}")
        for _ in range(3):
            await peer.ws.send(b"x" * 2000)  # each under the limit, together over it
        answer = await _answer(peer, 1)
        assert answer == {
            "error": f"Error: event larger than {LIMIT} bytes (SOCKETHUB_MAX_PAYLOAD)"
        }
        await peer.ws.send(f"452-2{json.dumps(['echo', *placeholders[:2]])}")
        await peer.ws.send(b"a")
        await peer.ws.send(b"b")
        assert await _answer(peer, 2) == {"args": 2, "binary": [True, True]}
        assert not sio._attaching


async def test_reserved_event_names_from_a_client_are_ignored() -> None:
    sio, closed = _server()
    async with serving(sio) as served, RawPeer.connected(served) as peer:
        await peer.emit("disconnect", "x", ack=1)
        await peer.emit("connect", {"asgi.scope": {"client": ["10.0.0.1", 1]}}, ack=2)
        await peer.emit("echo", ack=3)
        assert await _answer(peer, 3) == {"args": 0, "binary": []}  # nothing for 1 or 2
        assert closed == []
        assert sio.manager.is_connected(peer.sid, "/")
