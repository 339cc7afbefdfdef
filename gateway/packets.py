"""Socket.IO packets with orjson where it gives exactly the standard library's result.

python-socketio encodes and decodes every packet's JSON with the ``json`` module,
which is slower than orjson on every packet, and walks every outgoing payload for
``bytes`` with ``functools.reduce`` and a list per container. Here:

- writing: orjson's output is used only when the payload holds nothing but
  strings, integers, booleans, None, dicts and lists/tuples (no floats, whose
  text orjson writes differently, e.g. ``1e+16``/``1e16`` and ``NaN``/``null``), and
  when that output is printable ASCII (``json.dumps`` escapes everything else,
  DEL included, as ``\\uXXXX``). Anything orjson refuses (integers beyond 64 bits, lone surrogates,
  non-string keys, deep nesting) goes to ``json.dumps``. The text is the same,
  byte for byte (``tests/unit/gateway/test_packets.py``).
- reading: orjson's value is used unless it holds a float (orjson reads integers
  beyond 64 bits as floats); what orjson refuses (``NaN``, lone surrogates,
  ``1e400``) is read by ``json.loads``, which raises what it raised before.
- the binary check is one early-exit walk (plain loops: ``any()`` over a generator
  pays for a generator frame resumed per item).

Limits (:meth:`SockethubPacket.limited`) are checked while a frame is decoded, before
any recursive work on its value: an event with a byte limit whose frame is larger is
not parsed at all, and a value nested deeper than the depth cap is not walked further.
Either way the packet's data becomes ``[event, Refused(reason)]``, so the event's
handler still runs (and can acknowledge with the reason) without the payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import socketio

__all__ = ["PacketLimits", "Refused", "SockethubPacket", "dumps", "has_binary", "loads"]

_SEPARATORS = (",", ":")
_TEXT_TYPES = frozenset({socketio.packet.EVENT, socketio.packet.ACK})


def has_binary(data: object) -> bool:
    """Whether ``data`` holds bytes anywhere in its lists and dict values."""
    kind = type(data)
    if kind is dict:
        for item in data.values():  # type: ignore[attr-defined]  # noqa: SIM110
            if has_binary(item):
                return True
        return False
    if kind is list:
        for item in data:  # type: ignore[attr-defined]  # noqa: SIM110
            if has_binary(item):
                return True
        return False
    if kind is str or kind is int or kind is bool or kind is float or data is None:
        return False
    if isinstance(data, (bytes, bytearray)):
        return True
    if isinstance(data, (list, dict)):
        return any(has_binary(item) for item in (data.values() if isinstance(data, dict) else data))
    return False


def _float_free(data: object) -> bool:
    """Only str, int, bool, None, dict and list/tuple inside: the types orjson writes
    as ``json.dumps`` does."""
    kind = type(data)
    if kind is str or kind is int or kind is bool or data is None:
        return True
    if kind is dict:
        for item in data.values():  # type: ignore[attr-defined]  # noqa: SIM110
            if not _float_free(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in data:  # type: ignore[attr-defined]  # noqa: SIM110
            if not _float_free(item):
                return False
        return True
    return False


def _orjson_text(data: object) -> str | None:
    """orjson's text of ``data`` if it is ``json.dumps``'s (compact separators), else None.
    ``data`` must have passed :func:`_float_free`."""
    try:
        out = orjson.dumps(data)
    except orjson.JSONEncodeError:
        return None
    if out.isascii() and b"\x7f" not in out:
        return out.decode("ascii")
    return None


def dumps(data: Any, **kwargs: Any) -> str:
    """``json.dumps(data, **kwargs)``, through orjson when the text is the same."""
    if kwargs.get("separators") == _SEPARATORS and len(kwargs) == 1 and _float_free(data):
        text = _orjson_text(data)
        if text is not None:
            return text
    return json.dumps(data, **kwargs)


def _floatless(value: object) -> bool:
    kind = type(value)
    if kind is dict:
        for item in value.values():  # type: ignore[attr-defined]  # noqa: SIM110
            if not _floatless(item):
                return False
        return True
    if kind is list:
        for item in value:  # type: ignore[attr-defined]  # noqa: SIM110
            if not _floatless(item):
                return False
        return True
    return kind is not float


class _TooDeep(Exception):
    pass


def _floatless_within(value: object, depth_left: int) -> bool:
    """:func:`_floatless`, raising :class:`_TooDeep` past ``depth_left`` levels of containers
    (so the walk itself never recurses deeper than the cap)."""
    kind = type(value)
    if kind is dict or kind is list:
        if depth_left <= 0:
            raise _TooDeep
        items: Any = value.values() if kind is dict else value  # type: ignore[attr-defined]
        floatless = True
        for item in items:
            if type(item) in _LEAVES:
                if type(item) is float:
                    floatless = False
            elif not _floatless_within(item, depth_left - 1):
                floatless = False
        return floatless
    return kind is not float


_LEAVES = frozenset({str, int, float, bool, type(None)})


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads(text)``, through orjson when the value is the same."""
    if not kwargs:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
        else:
            if _floatless(value):
                return value
    return json.loads(text, **kwargs)


class _JSON:
    """The ``json`` interface python-socketio's Packet calls."""

    dumps = staticmethod(dumps)
    loads = staticmethod(loads)


@dataclass(frozen=True)
class Refused:
    """An event argument the packet layer refused to decode; ``reason`` names the limit."""

    reason: str


@dataclass(frozen=True)
class PacketLimits:
    """What a decoded event may carry. Each limit's ``name`` is its setting, which the
    refusal's text names."""

    max_depth: int
    """Containers nested in an event's arguments (the frame's own array not counted)."""
    depth_name: str = "SOCKETHUB_MAX_DEPTH"
    event_bytes: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    """Per event name: the largest frame, in bytes of its JSON text, and the setting."""

    def too_deep(self) -> str:
        return f"Error: payload nested deeper than {self.max_depth} levels ({self.depth_name})"


_EVENT_NAME = re.compile(r'\[\s*"([A-Za-z0-9_-]{1,64})"')
"""The event name at the start of a frame's JSON text (peeked without parsing the rest)."""


def _event_name(text: str | bytes) -> str | None:
    head = text[:96]
    if isinstance(head, bytes):
        head = head.decode("ascii", "replace")
    match = _EVENT_NAME.match(head)
    return match.group(1) if match else None


class _LimitedJSON(_JSON):
    """The ``json`` interface of a packet class with :class:`PacketLimits`."""

    def __init__(self, limits: PacketLimits) -> None:
        self.limits = limits
        self._smallest = min((size for size, _ in limits.event_bytes.values()), default=None)

    def loads(self, text: str | bytes, **kwargs: Any) -> Any:
        limits = self.limits
        if self._smallest is not None and len(text) > self._smallest:
            event = _event_name(text)
            limit = limits.event_bytes.get(event) if event is not None else None
            if event is not None and limit is not None and len(text) > limit[0]:
                size, name = limit
                return [event, Refused(f"Error: {event} larger than {size} bytes ({name})")]
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc):  # orjson's own cap is far above any configured one
                return self._refuse_deep(_event_name(text))
            value = None
        else:
            try:
                # +1: the frame's array holds the event's arguments
                if _floatless_within(value, limits.max_depth + 1):
                    return value
            except _TooDeep:
                return self._refuse_deep(value)
        # What orjson refuses or reads differently: the standard library decides.
        try:
            value = json.loads(text, **kwargs)
            _floatless_within(value, limits.max_depth + 1)
        except (RecursionError, _TooDeep):
            return self._refuse_deep(_event_name(text))
        return value

    def _refuse_deep(self, value: object) -> list[object]:
        """``[event, Refused]``; ``value`` is the event name or the decoded frame."""
        if type(value) is list:
            value = value[0] if value else None
        return [value if type(value) is str else None, Refused(self.limits.too_deep())]


class SockethubPacket(socketio.packet.Packet):  # type: ignore[misc]
    """Outgoing packets are checked once: a float-free payload holds no bytes and is
    written by orjson (unless its text would differ)."""

    json = _JSON

    def __init__(
        self,
        packet_type: int = socketio.packet.EVENT,
        data: Any = None,
        namespace: str | None = None,
        id: int | None = None,
        binary: bool | None = None,
        encoded_packet: Any = None,
    ) -> None:
        self._plain = encoded_packet is None and binary is None and _float_free(data)
        super().__init__(
            packet_type, data, namespace, id, False if self._plain else binary, encoded_packet
        )

    def encode(self) -> Any:
        if self._plain and self.data is not None and self.packet_type in _TEXT_TYPES:
            text = _orjson_text(self.data)
            if text is not None:
                head = str(self.packet_type)
                if self.namespace is not None and self.namespace != "/":
                    head += self.namespace + ","
                if self.id is not None:
                    head += str(self.id)
                return head + text
        return super().encode()

    @classmethod
    def data_is_binary(cls, data: object) -> bool:
        return has_binary(data)

    @classmethod
    def limited(cls, limits: PacketLimits) -> type[SockethubPacket]:
        """A packet class whose decoding enforces ``limits`` (see the module docstring)."""
        return type("LimitedSockethubPacket", (cls,), {"json": _LimitedJSON(limits)})
