"""XMPP sessions on the real Prosody survive a ``kill -9`` of their gateway, as IRC ones do
(tests/integration/irc/test_recovery.py): Node socket.io-clients reconnect to another
gateway and recover their sessions with the same XMPP streams, get every room message of
the outage in order and once, and the room sees none of them leave or join again."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.gateway import GatewayFactory
from tests.fixtures.persistent import LOOPBACK_ALLOWLIST, said
from tests.fixtures.recovery import (
    SETTINGS,
    NodeClient,
    kill9,
    logged_requests,
    replacement,
    runner_env,
)
from tests.fixtures.runners import RunnerStack, started_runners
from tests.integration.xmpp.conftest import PASSWORD, Accounts
from tests.integration.xmpp.harness import Harness
from tests.integration.xmpp.prosody import MUC, Prosody
from tests.integration.xmpp.test_e2e import activity

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(600)]

CLIENTS = 3
IN_FLIGHT = 2
"""``send`` requests each client has under way at the kill."""
OUTAGE = 3
"""Room messages the observer sends while the gateway is down."""


@pytest.fixture
def prefix() -> str:
    return f"xrec{uuid.uuid4().hex[:8]}"


@pytest.fixture
def xmpp_runner(
    kafka_bootstrap: str,
    redis_url: str,
    stack_env: dict[str, str],
    prefix: str,
    prosody: Prosody,
    tmp_path: Path,
) -> Iterator[RunnerStack]:
    env = runner_env(
        stack_env,
        SOCKETHUB_XMPP_CA_FILE=str(prosody.cert),
        SOCKETHUB_XMPP_TIMEOUT="30",
        SOCKETHUB_FETCH_ALLOWLIST=LOOPBACK_ALLOWLIST,
    )
    stack = RunnerStack(kafka_bootstrap, redis_url, prefix, tmp_path / "runner-logs", env)
    with started_runners(stack, "xmpp"):
        yield stack


def in_room(events: list[Any], room: str, start: str) -> list[str]:
    """Contents of the room's messages that start with ``start``, in arrival order."""
    return [
        str(e["object"]["content"])
        for e in events
        if e.get("type") == "send"
        and e.get("target", {}).get("id") == room
        and str(e.get("object", {}).get("content", "")).startswith(start)
    ]


async def test_xmpp_sessions_resume_through_a_gateway_kill(
    gateway_factory: GatewayFactory,
    xmpp_runner: RunnerStack,
    prosody: Prosody,
    accounts: Accounts,
    prefix: str,
    stack_env: dict[str, str],
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    victim = gateway_factory(topic_prefix=prefix, **SETTINGS)
    room = {"id": f"rec{uuid.uuid4().hex[:6]}@{MUC}", "type": "room"}
    observer = Harness(prosody)
    await observer.platform.start()
    watcher = accounts.new("watcher")
    jids = [accounts.new("resume") for _ in range(CLIENTS)]
    nicks = {jid.split("@")[0] for jid in jids}
    clients: list[NodeClient] = []
    try:
        await observer.login("obs", watcher, PASSWORD)
        await observer.call("obs", "join", watcher, target=room)
        sids = []
        for jid in jids:
            client = await NodeClient.start(victim)
            clients.append(client)
            first = await client.next("connect")
            assert first["recovered"] is False
            sids.append(first["id"])
            obj = {"type": "credentials", "userAddress": jid, "password": PASSWORD,
                   "resource": "rec", "server": prosody.server}  # fmt: skip
            stored = await client.call(activity("credentials", jid, object=obj), "credentials")
            assert "error" not in stored, stored
            for verb, extra in (("connect", {}), ("join", {"target": room})):
                answer = await client.call(activity(verb, jid, **extra))
                assert "error" not in answer, answer
        # Every client is in the room and speaks there before the kill.
        for jid, client in zip(jids, clients, strict=True):
            hello = {"type": "message", "content": f"hello-{jid}"}
            assert "error" not in await client.call(
                activity("send", jid, target=room, object=hello)
            )
            await observer.sink.wait_for("obs", said(f"hello-{jid}"), within=60)
        seen_before = len(observer.sink.of("obs"))

        for client, jid in zip(clients, jids, strict=True):
            for k in range(IN_FLIGHT):
                text = f"{jid}-{k}"
                obj = {"type": "message", "content": text}
                client.send(activity("send", jid, target=room, object=obj), tag=text)
        early = await clients[-1].next("ack")  # the sends are under way: kill now
        kill9(victim)
        killed = time.monotonic()
        for k in range(OUTAGE):
            out = {"type": "message", "content": f"outage-{k}"}
            await observer.call("obs", "send", watcher, target=room, object=out)
        for client in clients:
            await client.next("disconnect")

        new = replacement(gateway_factory, victim, **SETTINGS)
        firsts = [await client.next("connect") for client in clients]
        recovered_in = time.monotonic() - killed
        after = {"type": "message", "content": "after-0"}
        await observer.call("obs", "send", watcher, target=room, object=after)
        # Re-sent credentials, connect and join on a recovered session: harmless.
        again, jid = clients[0], jids[0]
        obj = {"type": "credentials", "userAddress": jid, "password": PASSWORD,
               "resource": "rec", "server": prosody.server}  # fmt: skip
        assert "error" not in await again.call(
            activity("credentials", jid, object=obj), "credentials"
        )
        for verb, extra in (("connect", {}), ("join", {"target": room})):
            answer = await again.call(activity(verb, jid, **extra))
            assert "error" not in answer, answer

        messages: list[list[Any]] = [[] for _ in clients]
        acks: list[list[Any]] = [[] for _ in clients]
        for n, client in enumerate(clients):
            async with asyncio.timeout(60):
                while "after-0" not in in_room(messages[n], room["id"], "after-"):
                    messages[n].append(await client.next("message"))
        await asyncio.sleep(2)  # anything duplicated would come now
        for n, client in enumerate(clients):
            messages[n] += client.drain("message")
            acks[n] += client.drain("ack")
        acks[-1].append(early)
        logged: list[set[str]] = []
        for n in range(len(clients)):
            sends = [
                r
                for r in await logged_requests(stack_env, prefix, "xmpp", sids[n])
                if r.verb == "send"
            ]
            own = {f"{jids[n]}-{k}" for k in range(IN_FLIGHT)}
            logged.append({str(r.activity["object"]["content"]) for r in sends} & own)
        room_events = observer.sink.of("obs")[seen_before:]
    finally:
        for client in clients:
            await client.close()
        await observer.close()

    answered = 0
    for n, jid in enumerate(jids):
        assert firsts[n]["recovered"] is True and firsts[n]["id"] == sids[n], firsts[n]
        got = messages[n]
        assert in_room(got, room["id"], "outage-") == [f"outage-{k}" for k in range(OUTAGE)]
        assert in_room(got, room["id"], "after-") == ["after-0"]
        # Its own sends: each answered once, by its ack or, when the ack was lost, as a
        # message carrying the result (actor: the account; the room's echo has its nick).
        mine = Counter(a["object"]["content"] for a in acks[n] if "object" in a)
        mine.update(
            m["object"]["content"]
            for m in got
            if m.get("type") == "send" and m.get("actor", {}).get("id") == jid
        )
        own = [f"{jid}-{k}" for k in range(IN_FLIGHT)]
        assert all(mine[t] <= 1 for t in own), mine
        # Every send that reached the log is answered, those whose acks were lost at the
        # kill as messages.
        assert {t for t in own if mine[t]} == logged[n], (mine, logged[n])
        answered += sum(mine[t] for t in own)
    # The same streams stayed in the room: no presence of theirs (leaving or joining).
    presences = [
        e
        for e in room_events
        if e.get("type") == "update" and e.get("actor", {}).get("name") in nicks
    ]
    assert presences == []
    assert new.gateway_id != victim.gateway_id
    with capsys.disabled():
        print(
            f"\nxmpp recovery: {CLIENTS} clients; kill -9 to all reconnected and recovered: "
            f"{recovered_in:.1f} s; outage messages delivered {CLIENTS * OUTAGE}; in-flight "
            f"sends answered once {answered} of {CLIENTS * IN_FLIGHT} "
            f"({sum(len(x) for x in logged)} reached the log); no presence change in the room"
        )
