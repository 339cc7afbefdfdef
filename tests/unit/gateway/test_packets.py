"""SockethubPacket writes and reads exactly what python-socketio's own Packet does."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.packets import SockethubPacket, dumps, has_binary, loads

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(alphabet=st.characters(max_codepoint=0x7F))
    | st.sampled_from(["\ud800", "a\udfffb", "\x00\x1f\u2028", "\x7f", "1e400", "é"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        | st.dictionaries(st.integers(0, 3) | st.booleans() | st.none(), inner, max_size=2)
    ),
    max_leaves=20,
)
BINARY = st.recursive(
    SCALARS | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, types included, with NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args, **kwargs)
    except (ValueError, TypeError, RecursionError) as exc:
        return "error", type(exc)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_dumps_writes_the_same_text_as_json(value: Any) -> None:
    expected = _outcome(json.dumps, value, separators=(",", ":"))
    assert _outcome(dumps, value, separators=(",", ":")) == expected


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_loads_reads_the_same_value_as_json(value: Any) -> None:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (ValueError, TypeError):
        return
    expected = _outcome(json.loads, text)
    got = _outcome(loads, text)
    assert got[0] == expected[0]
    assert got[0] == "error" or _same(got[1], expected[1])


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='{}[]",:0123456789.eE-+ truefalsnNIfiy\\u\x00é\ud800', max_size=30))
def test_loads_accepts_and_refuses_what_json_does(text: str) -> None:
    expected = _outcome(json.loads, text)
    got = _outcome(loads, text)
    assert got[0] == expected[0]
    assert got[0] == "error" or _same(got[1], expected[1])


@settings(max_examples=300, deadline=None)
@given(BINARY)
def test_binary_check_agrees_with_socketio(value: Any) -> None:
    assert has_binary(value) == socketio.packet.Packet.data_is_binary(value)


def _encode(cls: type[socketio.packet.Packet], kind: int, data: Any, ack_id: int | None) -> Any:
    return cls(kind, data=data, id=ack_id).encode()


@settings(max_examples=300, deadline=None)
@given(VALUES, st.sampled_from([None, 0, 7, 12345]), st.sampled_from(["message", "schemas"]))
def test_packets_encode_and_decode_like_socketio(
    value: Any, ack_id: int | None, event: str
) -> None:
    for kind, data in ((socketio.packet.EVENT, [event, value]), (socketio.packet.ACK, [value])):
        ours = _outcome(_encode, SockethubPacket, kind, data, ack_id)
        theirs = _outcome(_encode, socketio.packet.Packet, kind, data, ack_id)
        assert ours == theirs
        if ours[0] != "ok":
            continue
        decoded = SockethubPacket(encoded_packet=ours[1])
        expected = socketio.packet.Packet(encoded_packet=ours[1])
        assert (decoded.packet_type, decoded.id) == (expected.packet_type, expected.id)
        assert _same(decoded.data, expected.data)


def test_big_integers_and_floats_keep_the_standard_library_form() -> None:
    assert loads("[100000000000000000000000001]") == [100000000000000000000000001]
    assert dumps({"n": 1e16, "x": float("nan")}, separators=(",", ":")) == '{"n":1e+16,"x":NaN}'
    assert dumps({"t": "é"}, separators=(",", ":")) == '{"t":"\\u00e9"}'
    assert loads("[NaN]")[0] != loads("[NaN]")[0]


@pytest.mark.parametrize("text", ['{"a":1,"a":2}', "[1, 2 ]", '"\\u00e9\\n"', "-0", "[true,null]"])
def test_plain_texts_read_alike(text: str) -> None:
    assert _same(loads(text), json.loads(text))


def test_the_gateway_server_sends_sockethub_packets() -> None:
    from gateway.transport.socketio_server import SockethubServer

    assert SockethubServer(async_mode="asgi").packet_class is SockethubPacket
