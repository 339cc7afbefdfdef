"""Fuzz: raw engine.io / Socket.IO frames against the gateway's own Socket.IO server and
protocol handlers (in-memory Kafka bridge and credential store), served by real uvicorn on
127.0.0.1.

Each example opens a raw websocket and sends a sequence of frames: protocol events with
payloads at the extremes (deep, large, odd JSON), binary events with right and wrong
attachments, unknown and reserved event names, and junk. The invariants:

- every event of the protocol that asked for an acknowledgement gets exactly one, unless a
  documented end comes first (the client closes, leaves the namespace, sends a frame larger
  than SOCKETHUB_MAX_PAYLOAD, or leaves a binary event's attachments unsent);
- unknown and reserved events (``connect``, ``disconnect``) get none (spec section 2);
- the server stays up, and a well-behaved client on its own connection is answered after
  every example.

The example count and seed are fixed (``derandomize``), so CI sees the same examples every
run; ``SOCKETHUB_FUZZ_EXAMPLES`` raises the count for a longer local run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from gateway.app import socketio_server
from gateway.metrics import GatewayMetrics
from gateway.requests import PendingRequest
from gateway.settings import GatewaySettings
from gateway.socket_handlers import ProtocolHandlers
from schemas.platform_registry import PlatformRegistry, canonical_context
from tests.unit.gateway.test_socket_handlers import Bridge, Store
from tests.unit.gateway.transport.harness import WAIT, RawPeer, Served, serving

T = TypeVar("T")

MAX_PAYLOAD = 65536
KNOWN = ("message", "credentials", "activity-object", "schemas")
OWED_BASE = 900_000_000
"""Acknowledgement ids the test owes itself an answer for; junk frames use small ids."""

settings.register_profile(
    "sockethub-fuzz",
    max_examples=int(os.environ.get("SOCKETHUB_FUZZ_EXAMPLES", "120")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class AnsweringBridge(Bridge):
    """The in-memory bridge, with a runner that answers every request at once."""

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(settings)
        self.tasks: set[asyncio.Task[None]] = set()

    async def submit(self, pending: PendingRequest, key: str) -> None:
        await super().submit(pending, key)
        request = pending.request
        self.deliveries[request.activity_id].set_result(None)
        task = asyncio.ensure_future(self.answer(request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class LiveGateway:
    """The gateway's Socket.IO server and handlers on a loop of their own (a thread), so
    that hypothesis' synchronous examples can drive it across examples."""

    def __init__(self) -> None:
        self.settings = GatewaySettings(
            max_payload=MAX_PAYLOAD,
            # Not what is fuzzed here, and both drop events without an ack by design.
            rate_limit=1_000_000,
            max_connections_per_ip=10_000,
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self.served: Served | None = None
        self.watcher: RawPeer | None = None
        self._checks = 0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 3 * WAIT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        sio = socketio_server(self.settings)
        registry = PlatformRegistry(self.settings.platform_ids())
        self.handlers = ProtocolHandlers(
            sio,
            self.settings,
            registry,
            AnsweringBridge(self.settings),  # type: ignore[arg-type]
            Store(),  # type: ignore[arg-type]
            GatewayMetrics(),
        )
        self.sio = sio
        self.served = await self._stack.enter_async_context(
            serving(sio, ws_max_size=self.settings.max_payload)
        )
        self.watcher = await self._stack.enter_async_context(RawPeer.connected(self.served))
        # Read the watcher all the time, so that its pongs never wait for an example.
        self._answers: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read_watcher(self.watcher))

    async def _read_watcher(self, watcher: RawPeer) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                with contextlib.suppress(TimeoutError):
                    self._answers.put_nowait(await watcher.frame(within=3600))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)

    async def _stop(self) -> None:
        self._reader.cancel()
        await self._stack.aclose()
        # engine.io's service and ping tasks outlive the server; end them on their loop.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def still_answers(self) -> None:
        """The well-behaved client, on its own connection since the start, is answered."""
        assert self.watcher is not None
        self._checks += 1
        await self.watcher.emit("message", echo_activity(), ack=self._checks)
        answer = await asyncio.wait_for(self._answers.get(), WAIT)
        assert isinstance(answer, str) and answer.startswith(f"43{self._checks}["), answer
        assert '"error"' not in answer, answer


def echo_activity(content: Any = "hi") -> dict[str, Any]:
    return {
        "@context": canonical_context("dummy"),
        "type": "echo",
        "actor": {"id": "jimmy@dummy", "type": "person"},
        "object": {"type": "message", "content": content},
    }


@pytest.fixture(scope="module")
def live() -> Iterator[LiveGateway]:
    gateway = LiveGateway()
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


# -- what the client sends ------------------------------------------------------------------


@dataclass
class Unit:
    """Frames sent together; ``owed``: the ack id they must be answered on (None: no
    answer is owed), ``silent``: an ack id that must get no answer; ``final``: after these
    frames, the connection may end or stop answering (a documented end)."""

    frames: list[str | bytes]
    owed: int | None = None
    silent: int | None = None
    final: bool = False


@dataclass
class Plan:
    units: list[Unit] = field(default_factory=list)


leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=24,
)


@st.composite
def activities(draw: st.DrawFn) -> Any:
    """Activities near valid: the dummy echo with fields dropped, replaced or nested."""
    activity: dict[str, Any] = echo_activity(draw(st.text(max_size=20)))
    for key in draw(st.lists(st.sampled_from(sorted(activity)), max_size=2, unique=True)):
        del activity[key]
    if draw(st.booleans()):
        activity[draw(st.sampled_from(["type", "actor", "object", "target", "id", "context"]))] = (
            draw(values)
        )
    return activity


@st.composite
def deep_text(draw: st.DrawFn) -> str:
    """A JSON text nested from a few to far past every cap (orjson's and the recursion
    limit's included)."""
    depth = draw(st.sampled_from([1, 31, 32, 33, 63, 64, 65, 66, 200, 600, 1100, 5000]))
    kind = draw(st.sampled_from(["list", "dict", "mixed"]))
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "dict":
        return '{"a":' * depth + "1" + "}" * depth
    return '[{"a":' * (depth // 2) + "0" + "}]" * (depth // 2)


@st.composite
def big_text(draw: st.DrawFn) -> str:
    """Strings around the byte limits, up to just under SOCKETHUB_MAX_PAYLOAD."""
    size = draw(st.sampled_from([0, 16000, 16384, 16500, 60000]))
    return json.dumps({"type": "x", "content": "x" * size})


def argument_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        values.map(json.dumps),
        activities().map(json.dumps),
        deep_text(),
        big_text(),
    )


@st.composite
def owed_event(draw: st.DrawFn, ack: int) -> Unit:
    event = draw(st.sampled_from(KNOWN))
    args = draw(st.lists(argument_texts(), max_size=2))
    body = ",".join([json.dumps(event), *args])
    return Unit([f"42{ack}[{body}]"], owed=ack)


@st.composite
def binary_event(draw: st.DrawFn, ack: int) -> Unit:
    """A binary event whose attachments all arrive: its placeholders fit or not, and
    its attachments are small or together past SOCKETHUB_MAX_PAYLOAD."""
    event = draw(st.sampled_from(KNOWN))
    count = draw(st.integers(min_value=0, max_value=4))
    nums = draw(
        st.lists(
            st.one_of(
                st.integers(min_value=-1, max_value=5),
                st.just("0"),
                st.none(),
                st.just([0]),
            ),
            max_size=4,
        )
    )
    placeholders = [{"_placeholder": True, "num": n} for n in nums]
    arg = {"object": {"type": "message", "content": placeholders}}
    header = f"45{count}-{ack}{json.dumps([event, arg])}"
    size = draw(st.sampled_from([0, 10, 40000]))
    attachments: list[str | bytes] = [bytes([i % 256]) * size for i in range(count)]
    return Unit([header, *attachments], owed=ack)


@st.composite
def silent_event(draw: st.DrawFn, ack: int) -> Unit:
    name: Any = draw(
        st.sampled_from(["connect", "disconnect", "error", "Message", "", "*"])
        | st.text(max_size=10).filter(lambda s: s not in KNOWN)
        | st.integers()
        | st.none()
        | st.just(["message"])
    )
    args = draw(st.lists(argument_texts(), max_size=1))
    body = ",".join([json.dumps(name), *args])
    return Unit([f"42{ack}[{body}]"], silent=ack)


_BINARY_HEAD = re.compile(r"^4[56]")


def _harmless(text: str) -> bool:
    """Junk that does not end the connection or start a binary packet."""
    # "1...": engine.io CLOSE, whatever follows; "41...": leaving the namespace.
    return not (_BINARY_HEAD.match(text) or text.startswith(("1", "41")))


junk = st.one_of(
    st.text(max_size=40).filter(_harmless),
    st.sampled_from(
        [
            "",
            "4",
            "40",
            '40{"token":1}',
            "42",
            "42[]",
            "42{}",
            "421[]",
            '42["message"',
            "43",
            '431["x"]',
            "44",
            '44{"message":"x"}',
            "47",
            '4/nope,1["message",{}]',
            '40/nope,{"a":1}',
            "3",
            "5",
            "6",
            "9",
            "2probe",
        ]
    ),
    argument_texts().map(lambda text: "42" + text),
    st.binary(max_size=64),
).map(lambda frame: Unit([frame]))


@st.composite
def final_unit(draw: st.DrawFn) -> Unit:
    kind = draw(st.sampled_from(["close", "leave", "oversize", "dangling"]))
    if kind == "close":
        return Unit(["1"], final=True)
    if kind == "leave":
        return Unit(["41"], final=True)
    if kind == "oversize":
        return Unit(['42["message","' + "x" * (MAX_PAYLOAD + 1) + '"]'], final=True)
    count = draw(st.integers(min_value=2, max_value=10**9))
    frames: list[str | bytes] = [f'45{count}-7["message",{{"_placeholder":true,"num":0}}]', b"1"]
    return Unit(frames, final=True)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    units: list[Unit] = []
    for i in range(draw(st.integers(min_value=1, max_value=8))):
        ack = OWED_BASE + i
        units.append(
            draw(
                st.one_of(
                    owed_event(ack),
                    owed_event(ack),
                    binary_event(ack),
                    silent_event(ack),
                    junk,
                )
            )
        )
    if draw(st.booleans()):
        units.append(draw(final_unit()))
    else:  # a last event of the protocol, so that everything before it is settled
        units.append(Unit([f'42{OWED_BASE + 99}["schemas",null]'], owed=OWED_BASE + 99))
    return Plan(units)


# -- the check ----------------------------------------------------------------------------

_ACK = re.compile(r"^43(\d+)")


async def _play(live: LiveGateway, plan: Plan) -> None:
    """Send the units; wait for every owed answer; then the final unit, if any, after which
    the connection may end. Count every answer seen."""
    assert live.served is not None
    body = [u for u in plan.units if not u.final]
    ending = [u for u in plan.units if u.final]
    owed = [u.owed for u in body if u.owed is not None]
    silent = {u.silent for u in body if u.silent is not None}
    acks: dict[int, int] = {}

    async def read(frame: str | bytes) -> None:
        if isinstance(frame, str) and (match := _ACK.match(frame)):
            ack = int(match.group(1))
            acks[ack] = acks.get(ack, 0) + 1

    async with RawPeer.connected(live.served) as peer:
        for unit in body:
            for frame in unit.frames:
                await peer.ws.send(frame)
        try:
            while not all(acks.get(ack) for ack in owed):
                await read(await peer.frame())
        except (ConnectionClosed, TimeoutError):
            raise AssertionError(f"answers {acks}, owed {owed}") from None
        for unit in ending:
            with contextlib.suppress(ConnectionClosed):
                for frame in unit.frames:
                    await peer.ws.send(frame)
                # Whatever comes until the end, or a moment: a stray answer is seen.
                with contextlib.suppress(TimeoutError, ConnectionClosed):
                    while True:
                        await read(await peer.frame(within=0.2))
    assert sorted(acks) == sorted(owed), (acks, owed)
    assert all(count == 1 for count in acks.values()), acks
    assert not silent & set(acks), (silent, acks)
    await live.still_answers()


@settings(settings.get_profile("sockethub-fuzz"))
@given(plan=plans())
def test_raw_frames_never_crash_and_owed_acks_are_sent_once(live: LiveGateway, plan: Plan) -> None:
    live.run(_play(live, plan))
