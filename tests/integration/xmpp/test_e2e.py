"""XMPP through the whole path: Socket.IO clients, the gateway, Kafka, xmpp runners, Prosody."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from schemas.platform_registry import canonical_context
from tests.fixtures.gateway import Client, GatewayProcess, running_gateway
from tests.fixtures.persistent import LOOPBACK_ALLOWLIST, said
from tests.fixtures.runners import RunnerStack, started_runners
from tests.integration.peers import kill_the_holder, new_client, next_matching
from tests.integration.xmpp.conftest import PASSWORD, Accounts
from tests.integration.xmpp.harness import Harness
from tests.integration.xmpp.prosody import MUC, Prosody

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

XMPP = canonical_context("xmpp")


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"xmpp{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def gateway(
    stack_env: dict[str, str], prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log_dir = tmp_path_factory.mktemp("xmpp-gw")
    with running_gateway(stack_env, log_dir, topic_prefix=prefix, request_timeout=90) as process:
        yield process


@pytest.fixture(scope="module")
def xmpp_stack(
    kafka_bootstrap: str,
    redis_url: str,
    stack_env: dict[str, str],
    prefix: str,
    prosody: Prosody,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunnerStack]:
    root = tmp_path_factory.mktemp("xmpp-e2e")
    env = {
        "SOCKETHUB_SECRET": stack_env["SOCKETHUB_SECRET"],
        "SOCKETHUB_REQUEST_PARTITIONS": stack_env["SOCKETHUB_REQUEST_PARTITIONS"],
        "SOCKETHUB_CONNECTION_GRACE": "3",
        "SOCKETHUB_XMPP_CA_FILE": str(prosody.cert),
        "SOCKETHUB_XMPP_TIMEOUT": "30",
        "SOCKETHUB_FETCH_ALLOWLIST": LOOPBACK_ALLOWLIST,
    }
    stack = RunnerStack(kafka_bootstrap, redis_url, prefix, root / "logs", env)
    with started_runners(stack, "xmpp", instance="a"):
        yield stack


@pytest.fixture
async def clients(gateway: GatewayProcess, xmpp_stack: RunnerStack) -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.close()


def actor(jid: str) -> dict[str, Any]:
    return {"id": jid, "type": "person", "name": jid.split("@")[0]}


def activity(verb: str, jid: str, **fields: Any) -> dict[str, Any]:
    return {"@context": XMPP, "type": verb, "actor": actor(jid), **fields}


async def login(client: Client, jid: str, server: Prosody, password: str) -> dict[str, Any]:
    obj = {
        "type": "credentials",
        "userAddress": jid,
        "password": password,
        "resource": "e2e",
        "server": server.server,
    }
    stored = await client.call("credentials", activity("credentials", jid, object=obj))
    assert "error" not in stored, stored
    answer: dict[str, Any] = await client.call("message", activity("connect", jid))
    return answer


async def test_two_clients_see_each_other_in_a_room(
    clients: list[Client], gateway: GatewayProcess, prosody: Prosody, accounts: Accounts
) -> None:
    one, two = await new_client(gateway, clients), await new_client(gateway, clients)
    alice, bob = accounts.new("alice"), accounts.new("bob")
    room = {"id": f"e2e{uuid.uuid4().hex[:6]}@{MUC}", "type": "room"}
    for client, jid in ((one, alice), (two, bob)):
        connected = await login(client, jid, prosody, PASSWORD)
        assert "error" not in connected, connected
        assert connected["@context"] == XMPP
        joined = await client.call("message", activity("join", jid, target=room))
        assert "error" not in joined, joined
    hello = activity("send", alice, target=room, object={"type": "message", "content": "hi"})
    sent = await one.call("message", hello)
    assert "error" not in sent, sent
    event = await next_matching(two, said("hi"))
    nick = alice.split("@")[0]
    assert event["actor"] == {"type": "person", "id": f"{room['id']}/{nick}", "name": nick}
    assert event["target"] == {"type": "room", "id": room["id"]}
    assert event["@context"] == XMPP
    back = activity("send", bob, target=room, object={"type": "message", "content": "yo"})
    assert "error" not in await two.call("message", back)
    await next_matching(one, said("yo"))
    members = await one.call(
        "message", activity("query", alice, target=room, object={"type": "attendance"})
    )
    assert sorted(members["object"]["members"]) == sorted([nick, bob.split("@")[0]])


async def test_wrong_password_and_uninitialized(
    clients: list[Client], gateway: GatewayProcess, prosody: Prosody, accounts: Accounts
) -> None:
    client = await new_client(gateway, clients)
    jid = accounts.new("carol")
    wrong = await login(client, jid, prosody, "definitely-wrong-pw")
    assert wrong["error"].startswith("Error: authentication failed for ")
    assert "definitely-wrong-pw" not in wrong["error"]
    room = {"id": f"nope@{MUC}", "type": "room"}
    early = await client.call("message", activity("join", jid, target=room))
    assert early["error"] == "Error: join called on uninitialized platform"


async def test_killed_runner_hands_the_connection_over(
    clients: list[Client],
    gateway: GatewayProcess,
    xmpp_stack: RunnerStack,
    prosody: Prosody,
    accounts: Accounts,
) -> None:
    """SIGKILL the runner that holds the connection: the spare re-establishes it (and the room)
    from the desired state and tells the session; an observer outside the stack sees it speak."""
    observer = Harness(prosody)
    await observer.platform.start()
    try:
        await _handover(clients, gateway, xmpp_stack, prosody, accounts, observer)
    finally:
        await observer.close()


async def _handover(
    clients: list[Client],
    gateway: GatewayProcess,
    stack: RunnerStack,
    prosody: Prosody,
    accounts: Accounts,
    observer: Harness,
) -> None:
    client = await new_client(gateway, clients)
    alice, watcher = accounts.new("alice"), accounts.new("watcher")
    room = {"id": f"ho{uuid.uuid4().hex[:6]}@{MUC}", "type": "room"}
    await observer.login("obs", watcher, PASSWORD)
    await observer.call("obs", "join", watcher, target=room)
    assert "error" not in await login(client, alice, prosody, PASSWORD)
    assert "error" not in await client.call("message", activity("join", alice, target=room))
    await kill_the_holder(stack, "xmpp", client)
    hello = activity("send", alice, target=room, object={"type": "message", "content": "still"})
    assert "error" not in await client.call("message", hello)
    await observer.sink.wait_for("obs", said("still"), within=60)
