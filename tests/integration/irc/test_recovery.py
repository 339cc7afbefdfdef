"""Sessions on the real ngircd survive a ``kill -9`` of their gateway: Node socket.io-clients
reconnect to another gateway, recover their sessions (same sid, the same IRC connections),
and get every channel message sent during the outage and the results of their requests that
were in flight, in order, none twice. The server sees no new login, JOIN or QUIT for them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from platform_runners.irc.message import Message
from tests.e2e.proxy.topology import haproxy
from tests.fixtures.gateway import GatewayFactory, GatewayProcess, wait_ready
from tests.fixtures.persistent import LOOPBACK_ALLOWLIST
from tests.fixtures.recovery import (
    SETTINGS,
    NodeClient,
    kill9,
    logged_requests,
    replacement,
    runner_env,
    sigterm,
)
from tests.fixtures.runners import RunnerStack, started_runners
from tests.integration.irc.ngircd import Ngircd
from tests.integration.irc.test_e2e import HOST, activity, nick, room
from tests.integration.irc.test_protocol import connection, until

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(600)]

CLIENTS = 10
"""Node clients (the issue asks for twenty behind HAProxy; ten keep a shared 2-core machine
responsive)."""
IN_FLIGHT = 3
"""``send`` requests each client has under way at the kill."""
OUTAGE = 5
"""Channel messages the watcher sends while the gateway is down."""


@pytest.fixture
def prefix() -> str:
    return f"rec{uuid.uuid4().hex[:8]}"


@pytest.fixture
def irc_runner(
    kafka_bootstrap: str, redis_url: str, stack_env: dict[str, str], prefix: str, tmp_path: Path
) -> Iterator[RunnerStack]:
    env = runner_env(stack_env, SOCKETHUB_FETCH_ALLOWLIST=LOOPBACK_ALLOWLIST)
    stack = RunnerStack(kafka_bootstrap, redis_url, prefix, tmp_path / "runner-logs", env)
    with started_runners(stack, "irc"):
        yield stack


def contents(messages: list[Any], prefix: str) -> list[str]:
    return [
        m["object"]["content"]
        for m in messages
        if str(m.get("object", {}).get("content", "")).startswith(prefix)
    ]


async def test_irc_sessions_resume_through_a_gateway_kill(
    gateway_factory: GatewayFactory,
    irc_runner: RunnerStack,
    ngircd: Ngircd,
    prefix: str,
    stack_env: dict[str, str],
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The killed gateway's replacement takes its port, as a balancer's next server would."""
    a = gateway_factory(topic_prefix=prefix, **SETTINGS)

    def replace() -> GatewayProcess:
        return replacement(gateway_factory, a, **SETTINGS)

    with capsys.disabled():
        await _scenario(CLIENTS, a.url, a, replace, ngircd, prefix, stack_env, redis_url)


async def test_twenty_clients_through_haproxy_resume_on_the_other_gateway(
    gateway_factory: GatewayFactory,
    irc_runner: RunnerStack,
    ngircd: Ngircd,
    prefix: str,
    stack_env: dict[str, str],
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two gateways behind HAProxy (round robin, websocket only): the clients of the killed
    one reconnect through the proxy to the other, those of the other are untouched."""
    one = gateway_factory(topic_prefix=prefix, wait=False, **SETTINGS)
    two = gateway_factory(topic_prefix=prefix, wait=False, **SETTINGS)
    wait_ready(one)
    wait_ready(two)
    with haproxy([one, two], tmp_path, sticky=False) as url, capsys.disabled():
        await _scenario(20, url, one, lambda: two, ngircd, prefix, stack_env, redis_url)


async def test_clients_through_haproxy_resume_after_a_clean_stop_of_their_gateway(
    gateway_factory: GatewayFactory,
    irc_runner: RunnerStack,
    ngircd: Ngircd,
    prefix: str,
    stack_env: dict[str, str],
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A rolling restart: SIGTERM to one of two gateways behind HAProxy while its clients'
    sends are under way. They are not told to go away; they reconnect through the proxy to
    the other and recover there, with every result and channel message once."""
    one = gateway_factory(topic_prefix=prefix, wait=False, **SETTINGS)
    two = gateway_factory(topic_prefix=prefix, wait=False, **SETTINGS)
    wait_ready(one)
    wait_ready(two)
    with haproxy([one, two], tmp_path, sticky=False) as url, capsys.disabled():
        await _scenario(
            CLIENTS, url, one, lambda: two, ngircd, prefix, stack_env, redis_url, clean=True
        )


async def _scenario(
    count: int,
    url: str,
    victim: GatewayProcess,
    replace: Callable[[], GatewayProcess],
    ngircd: Ngircd,
    prefix: str,
    stack_env: dict[str, str],
    redis_url: str,
    *,
    clean: bool = False,
) -> None:
    """``count`` clients through ``url`` join one channel; ``victim`` is killed (``clean``:
    stopped with SIGTERM) while their sends are under way and the watcher talks;
    ``replace()`` gives the gateway they reconnect to."""
    channel = f"#rec{uuid.uuid4().hex[:6]}"
    seen: list[Message] = []
    watcher = connection(ngircd, seen)
    await watcher.open()
    clients: list[NodeClient] = []
    names = [nick() for _ in range(count)]
    try:
        await watcher.join(channel)
        sids = []
        for name in names:
            client = await NodeClient.start_url(url)
            clients.append(client)
            first = await client.next("connect")
            assert first["recovered"] is False
            sids.append(first["id"])
            obj = {"type": "credentials", "nick": name, "server": HOST, "port": ngircd.port,
                   "secure": False}  # fmt: skip
            stored = await client.call(activity("credentials", name, object=obj), "credentials")
            assert "error" not in stored, stored
            connected = await client.call(activity("connect", name))
            assert "error" not in connected, connected
            joined = await client.call(activity("join", name, target=room(channel)))
            assert "error" not in joined, joined
        await until(lambda: {m.nick for m in seen if m.command == "JOIN"} >= set(names), 60)
        logins = len(seen)
        held = victim.log_text()
        moved = [n for n, sid in enumerate(sids) if f'"session_id": "{sid}"' in held]
        assert moved, "no client is on the gateway to kill"

        # Each client sends; the gateway dies while the answers are on their way.
        for client, name in zip(clients, names, strict=True):
            for k in range(IN_FLIGHT):
                text = f"{name}-{k}"
                obj = {"type": "message", "content": text}
                client.send(activity("send", name, target=room(channel), object=obj), tag=text)
        early = [await clients[moved[-1]].next("ack")]  # the sends are under way: kill now
        killed = time.monotonic()
        stopping = asyncio.ensure_future(sigterm(victim)) if clean else None
        if not clean:
            kill9(victim)
        for k in range(OUTAGE):
            await watcher.say("PRIVMSG", channel, f"outage-{k}")
        reasons = Counter([await clients[n].next("disconnect") for n in moved])
        if stopping is not None:
            await stopping
        stopped_in = time.monotonic() - killed

        b = replace()
        firsts = {n: await clients[n].next("connect") for n in moved}
        recovered_in = time.monotonic() - killed
        lost = [clients[n].seen["disconnect"][-1] - killed for n in moved]
        back = sorted(clients[n].seen["connect"][-1] - killed for n in moved)
        failed = sum(len(clients[n].seen["failed"]) for n in moved)
        await watcher.say("PRIVMSG", channel, "after-0")
        # Re-sent credentials, connect and join on a recovered session: harmless.
        again, name = clients[moved[0]], names[moved[0]]
        obj = {"type": "credentials", "nick": name, "server": HOST, "port": ngircd.port,
               "secure": False}  # fmt: skip
        assert "error" not in await again.call(
            activity("credentials", name, object=obj), "credentials"
        )
        for verb, extra in (("connect", {}), ("join", {"target": room(channel)})):
            answer = await again.call(activity(verb, name, **extra))
            assert "error" not in answer, answer
        messages: list[list[Any]] = [[] for _ in clients]
        acks: list[list[Any]] = [[] for _ in clients]
        for n, client in enumerate(clients):
            async with asyncio.timeout(60):
                while "after-0" not in contents(messages[n], "after-"):
                    messages[n].append(await client.next("message"))
        await asyncio.sleep(2)  # anything duplicated would come now
        for n, client in enumerate(clients):
            messages[n] += client.drain("message")
            acks[n] += client.drain("ack")
        logged: list[set[str]] = []
        for n in range(len(clients)):
            sends = [
                r
                for r in await logged_requests(stack_env, prefix, "irc", sids[n])
                if r.verb == "send"
            ]
            logged.append({str(r.activity["object"]["content"]) for r in sends})
    finally:
        for client in clients:
            await client.close()
        await watcher.close()

    acks[moved[-1]] += early
    total_missed = answered = 0
    for n, name in enumerate(names):
        if n in firsts:
            assert firsts[n]["recovered"] is True and firsts[n]["id"] == sids[n], firsts[n]
        got = messages[n]
        # Channel messages of the outage: all, in order, once (then the live one).
        assert contents(got, "outage-") == [f"outage-{k}" for k in range(OUTAGE)], name
        assert contents(got, "after-") == ["after-0"]
        # Its own sends: each answered once, by its ack or as a message of its own.
        mine = Counter(a["object"]["content"] for a in acks[n] if "object" in a)
        mine.update(
            m["object"]["content"]
            for m in got
            if m.get("actor", {}).get("name") == name and m.get("type") == "send"
        )
        own = [f"{name}-{k}" for k in range(IN_FLIGHT)]
        assert all(mine[t] <= 1 for t in own), mine
        # Every send that reached the log is answered (one lost before that is not),
        # those whose acks were lost at the kill as messages.
        assert {t for t in own if mine[t]} == logged[n] & set(own), (mine, logged[n])
        answered += sum(mine[t] for t in own)
        total_missed += len(contents(got, "outage-"))
    # No new login: no JOIN, QUIT or NICK of theirs after the kill.
    later = seen[logins:]
    assert not [m for m in later if m.nick in names and m.command in ("JOIN", "QUIT", "NICK")]
    assert b.gateway_id != victim.gateway_id
    how = "SIGTERM" if clean else "kill -9"
    print(
        f"\nrecovery: {count} clients, {len(moved)} on the stopped gateway; {how} to all "
        f"of those reconnected and recovered: {recovered_in:.1f} s; outage messages "
        f"delivered {total_missed} (= {count} x {OUTAGE}); in-flight sends answered once "
        f"{answered} of {count * IN_FLIGHT} ({sum(len(x) for x in logged)} reached the log, "
        "all of those answered); no new IRC login\n"
        f"  where the time went: disconnects seen {min(lost):.1f}-{max(lost):.1f} s "
        f"({dict(reasons)}); the gateway gone after {stopped_in:.1f} s; reconnected "
        f"{back[0]:.1f} s (first), {back[len(back) // 2]:.1f} s (median), {back[-1]:.1f} s "
        f"(last); {failed} failed reconnect attempts"
    )
    if clean:
        # Not told to go away: "io server disconnect" is final for socket.io-client.
        assert set(reasons) <= {"transport close", "transport error"}, reasons
