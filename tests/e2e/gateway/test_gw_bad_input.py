"""Hostile and malformed input against a running gateway: each gets the spec's error
(or a disconnect, for the caps); the connection and the gateway keep working, and
another session never notices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.gateway import DUMMY_CONTEXT, Client, GatewayFactory, GatewayProcess, dummy
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

SAFE_VERBS = ["echo", "greet", "fail", "throw", "credentials", "fly", "", "connect"]
PLATFORM_URLS = [
    DUMMY_CONTEXT[2],
    "https://sockethub.org/ns/context/platform/feeds/v1.jsonld",
    "https://sockethub.org/ns/context/platform/bogus/v1.jsonld",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
contexts = st.one_of(
    st.just(DUMMY_CONTEXT),
    st.lists(st.sampled_from([*DUMMY_CONTEXT[:2], *PLATFORM_URLS]), max_size=4),
    json_values,
)
actors = st.one_of(
    st.text(max_size=10),
    st.fixed_dictionaries(
        {"id": st.text(max_size=10)},
        optional={"type": st.sampled_from(["person", "room", "feed", "alien", 7])},
    ),
    json_values,
)
activities = st.fixed_dictionaries(
    {},
    optional={
        "@context": contexts,
        "context": st.sampled_from(["dummy", "irc", "nope", 3]),
        "type": st.sampled_from(SAFE_VERBS) | json_values,
        "actor": actors,
        "target": actors,
        "object": json_values,
        "id": st.text(max_size=10) | json_values,
        "published": st.text(max_size=25),
        "foo": json_values,
    },
)
payloads = st.one_of(activities, json_values)
events = st.sampled_from(["message", "credentials", "activity-object", "schemas"])


def _is_hazard(payload: object) -> bool:
    """Verbs that would legitimately take long (hang) or crash the runner on purpose."""
    return isinstance(payload, dict) and payload.get("type") in ("hang", "exit1", "sigkill")


@pytest.fixture
async def fuzz_gateway(
    gateway_factory: GatewayFactory, shared_gateway_prefix: str, dummy_runner: RunnerProcess
) -> GatewayProcess:
    # The rate limit is raised so that fast error answers never trip it here.
    return gateway_factory(topic_prefix=shared_gateway_prefix, rate_limit=100_000)


@pytest.fixture
async def bystander(fuzz_gateway: GatewayProcess) -> AsyncIterator[Client]:
    client = await Client(fuzz_gateway.url).connect()
    yield client
    assert client.sio.connected
    ack = await client.call("message", dummy("echo", id="bystander"))
    assert ack["id"] == "bystander" and "error" not in ack
    await client.close()


async def test_generated_payloads_get_answers_and_the_session_survives(
    fuzz_gateway: GatewayProcess, bystander: Client
) -> None:
    client = await Client(fuzz_gateway.url).connect()
    loop = asyncio.get_running_loop()
    answered: list[tuple[str, object, Any]] = []

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(event=events, payload=payloads)
    def probe(event: str, payload: object) -> None:
        if _is_hazard(payload):
            return
        ack = asyncio.run_coroutine_threadsafe(client.call(event, payload), loop).result(90)
        answered.append((event, payload, ack))
        assert isinstance(ack, dict), (event, payload, ack)
        if event == "schemas":
            assert "fingerprint" in ack
        elif "error" in ack:
            assert isinstance(ack["error"], str) and ack["error"]
        elif event == "message":
            assert (
                ack.get("actor") == {"id": "dummy", "type": "platform"}
                or ack.get("context") == "dummy"
            ), ack

    try:
        await asyncio.to_thread(probe)
        assert client.sio.connected
        ack = await client.call("message", dummy("echo", id="still-here"))
        assert ack["id"] == "still-here" and "error" not in ack
    finally:
        await client.close()
    assert len(answered) >= 100


class RawSocket:
    """Engine.IO v4 over a bare websocket, to send what no Socket.IO client would."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, gateway: GatewayProcess) -> RawSocket:
        url = f"ws://127.0.0.1:{gateway.port}/sockethub/?EIO=4&transport=websocket"
        raw = cls(await http.ws_connect(url))
        assert (await raw.receive()).startswith("0{")
        await raw.ws.send_str("40")
        assert (await raw.receive()).startswith("40{")
        return raw

    async def receive(self, wait: float = 30) -> str:
        while True:
            message = await self.ws.receive(timeout=wait)
            if message.type is not aiohttp.WSMsgType.TEXT:
                return f"<{message.type.name}>"
            if message.data == "2":  # engine.io ping
                await self.ws.send_str("3")
                continue
            return str(message.data)

    async def ack(self, ack_id: int, payload: object, event: str = "message") -> Any:
        await self.ws.send_str(f"42{ack_id}" + json.dumps([event, payload]))
        return await self.ack_for(ack_id)

    async def ack_for(self, ack_id: int) -> Any:
        while True:
            text = await self.receive()
            if text.startswith(f"43{ack_id}["):
                return json.loads(text[len(f"43{ack_id}") :])[0]


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"x": value}
    return value


async def test_raw_frames_deep_nesting_and_invalid_utf8(
    fuzz_gateway: GatewayProcess, bystander: Client
) -> None:
    async with aiohttp.ClientSession() as http:
        raw = await RawSocket.open(http, fuzz_gateway)
        # Nested deeper than validation allows: the spec's shape, an error string.
        ack = await raw.ack(1, dummy("echo", object=_nested(40)))
        assert ack["error"] == "activity stream is nested too deeply."
        # Deeper than the JSON decoder's recursion limit: dropped, connection intact.
        await raw.ws.send_str('422["message",' + "[" * 20_000 + "]" * 20_000 + "]")
        # Packets that are not Socket.IO at all, or not JSON.
        for junk in ["4garbage", '42["message",', "42{}", "49", '43["x"]', "4-"]:
            await raw.ws.send_str(junk)
        await raw.ws.send_bytes(b"\x00\xff\xfe")
        ack = await raw.ack(3, dummy("echo", id="after-junk"))
        assert ack["id"] == "after-junk" and "error" not in ack

        # A text frame that is not UTF-8 breaks the websocket protocol: that one closes.
        broken = await RawSocket.open(http, fuzz_gateway)
        await broken.ws.send_frame(b'42["message","\xff\xfe"]', aiohttp.WSMsgType.TEXT)
        assert (await broken.receive()).startswith("<CLOS")

        # Invalid UTF-8 in a polling POST: refused, and the gateway carries on.
        base = f"{fuzz_gateway.url}/sockethub/?EIO=4&transport=polling"
        async with http.get(base) as r:
            sid = json.loads((await r.text())[1:])["sid"]
        async with http.post(f"{base}&sid={sid}", data=b"40\xff\xfe") as r:
            assert r.status in (200, 400)
        assert fuzz_gateway.alive()

        ack = await raw.ack(4, dummy("echo", id="still-fine"))
        assert ack["id"] == "still-fine"
