"""IRC through the whole path: Socket.IO clients, the gateway, Kafka, irc runners, ngircd.

Includes the hand-over: the runner that holds an IRC connection is killed with
SIGKILL and the other runner re-establishes the connection (and its channel)
from the desired state, tells the session, and carries the next message.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from platform_runners.irc.message import Message
from schemas.platform_registry import canonical_context
from tests.fixtures.gateway import Client, GatewayProcess, running_gateway
from tests.fixtures.persistent import LOOPBACK_ALLOWLIST, said
from tests.fixtures.runners import RunnerStack, started_runners
from tests.integration.irc.ngircd import Ngircd
from tests.integration.irc.test_protocol import connection
from tests.integration.peers import kill_the_holder, new_client, next_matching

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

IRC = canonical_context("irc")
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"irc{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def gateway(
    stack_env: dict[str, str], prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log_dir = tmp_path_factory.mktemp("irc-gw")
    with running_gateway(stack_env, log_dir, topic_prefix=prefix, request_timeout=90) as process:
        yield process


@pytest.fixture(scope="module")
def irc_stack(
    kafka_bootstrap: str,
    redis_url: str,
    stack_env: dict[str, str],
    prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunnerStack]:
    root = tmp_path_factory.mktemp("irc-e2e")
    env = {
        "SOCKETHUB_SECRET": stack_env["SOCKETHUB_SECRET"],
        "SOCKETHUB_REQUEST_PARTITIONS": stack_env["SOCKETHUB_REQUEST_PARTITIONS"],
        "SOCKETHUB_CONNECTION_GRACE": "3",
        "SOCKETHUB_IRC_RECONNECT_WINDOW": "40",
        "SOCKETHUB_FETCH_ALLOWLIST": LOOPBACK_ALLOWLIST,
    }
    stack = RunnerStack(kafka_bootstrap, redis_url, prefix, root / "logs", env)
    with started_runners(stack, "irc", instance="a"):
        yield stack


@pytest.fixture
async def clients(gateway: GatewayProcess, irc_stack: RunnerStack) -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.close()


def nick() -> str:
    return f"e{uuid.uuid4().hex[:7]}"


def actor(name: str) -> dict[str, Any]:
    return {"id": f"{name}@{HOST}", "type": "person", "name": name}


def room(channel: str) -> dict[str, Any]:
    return {"id": f"{channel.lstrip('#')}@{HOST}", "type": "room", "name": channel}


def activity(verb: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"@context": IRC, "type": verb, "actor": actor(name), **fields}


async def login(client: Client, name: str, server: Ngircd, **extra: Any) -> dict[str, Any]:
    obj = {"type": "credentials", "nick": name, "server": HOST, "port": server.port}
    obj.update(secure=False, **extra)
    stored = await client.call("credentials", activity("credentials", name, object=obj))
    assert "error" not in stored, stored
    answer: dict[str, Any] = await client.call("message", activity("connect", name))
    return answer


async def test_two_clients_see_each_other_in_a_channel(
    clients: list[Client], gateway: GatewayProcess, ngircd: Ngircd
) -> None:
    one, two = await new_client(gateway, clients), await new_client(gateway, clients)
    alice, bob = nick(), nick()
    for client, name in ((one, alice), (two, bob)):
        connected = await login(client, name, ngircd)
        assert "error" not in connected, connected
        assert connected["@context"] == IRC
        joined = await client.call("message", activity("join", name, target=room("#e2e")))
        assert "error" not in joined, joined
    hello = activity(
        "send", alice, target=room("#e2e"), object={"type": "message", "content": "hi"}
    )
    assert "error" not in await one.call("message", hello)
    event = await next_matching(two, said("hi"))
    assert event["actor"] == actor(alice) and event["target"] == room("#e2e")
    assert event["@context"] == IRC
    back = activity("send", bob, target=room("#e2e"), object={"type": "message", "content": "yo"})
    assert "error" not in await two.call("message", back)
    await next_matching(one, said("yo"))


async def test_nick_clash_and_wrong_password_are_clear_errors(
    clients: list[Client], gateway: GatewayProcess, ngircd: Ngircd, ngircd_password: Ngircd
) -> None:
    one, two = await new_client(gateway, clients), await new_client(gateway, clients)
    taken = nick()
    assert "error" not in await login(one, taken, ngircd)
    clash = await login(two, taken, ngircd)
    assert clash["error"] == f"Error: nickname {taken} is already in use"
    third = await new_client(gateway, clients)
    wrong = await login(third, nick(), ngircd_password, password="nope", sasl=False)
    assert "Bad password" in wrong["error"]
    assert "nope" not in wrong["error"]
    early = await third.call("message", activity("join", nick(), target=room("#x")))
    assert early["error"] == "Error: join called on uninitialized platform"


async def test_server_going_away_and_coming_back(
    clients: list[Client], gateway: GatewayProcess, ngircd_factory: Callable[[], Ngircd]
) -> None:
    server = ngircd_factory()
    client = await new_client(gateway, clients)
    name = nick()
    assert "error" not in await login(client, name, server)
    assert "error" not in await client.call("message", activity("join", name, target=room("#away")))
    server.stop()
    lost = await next_matching(client, lambda e: e.get("type") == "error")
    assert "lost" in lost["error"] and "reconnecting" in lost["error"]
    server.start()
    back = await next_matching(client, lambda e: e.get("type") == "connect")
    assert back["object"]["content"] == f"reconnected to {HOST}"
    members = await client.call(
        "message", activity("query", name, target=room("#away"), object={"type": "attendance"})
    )
    assert members["object"]["members"] == [name]


async def test_killed_runner_hands_the_connection_over(
    clients: list[Client], gateway: GatewayProcess, irc_stack: RunnerStack, ngircd: Ngircd
) -> None:
    watcher_seen: list[Message] = []
    watcher = connection(ngircd, watcher_seen)
    await watcher.open()
    try:
        await watcher.join("#handover")
        await _handover(clients, gateway, irc_stack, ngircd, watcher_seen)
    finally:
        await watcher.close("bye")


async def _handover(
    clients: list[Client],
    gateway: GatewayProcess,
    stack: RunnerStack,
    ngircd: Ngircd,
    watcher_seen: list[Message],
) -> None:
    client = await new_client(gateway, clients)
    name = nick()
    assert "error" not in await login(client, name, ngircd)
    assert "error" not in await client.call(
        "message", activity("join", name, target=room("#handover"))
    )
    await kill_the_holder(stack, "irc", client)
    hello = activity(
        "send", name, target=room("#handover"), object={"type": "message", "content": "still here"}
    )
    assert "error" not in await client.call("message", hello)
    async with asyncio.timeout(30):
        while not any(m.command == "PRIVMSG" and m.trailing == "still here" for m in watcher_seen):  # noqa: ASYNC110 - a plain list filled by the client
            await asyncio.sleep(0.1)
