"""A gateway killed with ``kill -9`` sends no ``session_closed``: its sessions' IRC connections
must still be released, once its liveness key is gone and the grace has run out. The real
ngircd tells: a watcher in the same channel sees the QUIT."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.recovery import RecoveryIndex
from platform_runners.irc.message import Message
from sockethub.runtime.redis_client import redis_client
from tests.fixtures.gateway import Client, GatewayProcess, running_gateway
from tests.fixtures.persistent import LOOPBACK_ALLOWLIST
from tests.fixtures.runners import RunnerStack, started_runners
from tests.integration.irc.ngircd import Ngircd
from tests.integration.irc.test_e2e import activity, login, nick, room
from tests.integration.irc.test_protocol import connection, until

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

GRACE = 3
"""The session grace (gateway) and connection grace (runner), short for the test."""
LIVENESS = {"heartbeat_interval": "0.5", "heartbeat_ttl": "2"}
WINDOW = 6
"""The recovery window of the ride-through test (0 elsewhere: release after the grace)."""


@pytest.fixture
def prefix() -> str:
    return f"orph{uuid.uuid4().hex[:8]}"


@pytest.fixture
def window() -> int:
    return 0


@pytest.fixture
def irc_runner(
    kafka_bootstrap: str,
    redis_url: str,
    stack_env: dict[str, str],
    prefix: str,
    tmp_path: Path,
    window: int,
) -> Iterator[RunnerStack]:
    env = {
        "SOCKETHUB_RECOVERY_WINDOW": str(window),
        "SOCKETHUB_SECRET": stack_env["SOCKETHUB_SECRET"],
        "SOCKETHUB_REQUEST_PARTITIONS": stack_env["SOCKETHUB_REQUEST_PARTITIONS"],
        "SOCKETHUB_CONNECTION_GRACE": str(GRACE),
        "SOCKETHUB_ORPHAN_CHECK_INTERVAL": "0.5",
        "SOCKETHUB_FETCH_ALLOWLIST": LOOPBACK_ALLOWLIST,
        **{f"SOCKETHUB_{k.upper()}": v for k, v in LIVENESS.items()},
    }
    stack = RunnerStack(kafka_bootstrap, redis_url, prefix, tmp_path / "runner-logs", env)
    with started_runners(stack, "irc"):
        yield stack


@pytest.fixture
def gateway(
    stack_env: dict[str, str], prefix: str, tmp_path: Path, irc_runner: RunnerStack, window: int
) -> Iterator[GatewayProcess]:
    with running_gateway(
        stack_env,
        tmp_path / "gateway-logs",
        topic_prefix=prefix,
        request_timeout=90,
        session_grace=GRACE,
        recovery_window=window,
        **LIVENESS,
    ) as process:
        yield process


async def test_kill_9_of_the_gateway_releases_its_irc_connections(
    gateway: GatewayProcess,
    irc_runner: RunnerStack,
    ngircd: Ngircd,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _killed_then_quit(gateway, irc_runner, ngircd, capsys, low=0, high=GRACE + 10)


@pytest.mark.parametrize("window", [WINDOW])
async def test_with_recovery_the_connections_ride_through_the_window_then_quit(
    gateway: GatewayProcess,
    irc_runner: RunnerStack,
    ngircd: Ngircd,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nobody reconnects: the connection stays up for the window (the session could come
    back through another gateway), then the server sees QUIT within the window + 10 s."""
    await _killed_then_quit(gateway, irc_runner, ngircd, capsys, low=WINDOW, high=WINDOW + 10)


@pytest.mark.parametrize("window", [WINDOW])
async def test_a_clean_stop_parks_the_sessions_then_their_connections_quit(
    gateway: GatewayProcess,
    irc_runner: RunnerStack,
    ngircd: Ngircd,
    redis_url: str,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SIGTERM with recovery on: the session is parked (no session_closed), and nobody
    reconnects. The runner releases the connection as after a kill, no sooner than the
    window and no later than after a kill (the liveness key goes at the stop, it does not
    have to expire), and the credentials expire with the parked entry."""
    redis = redis_client(redis_url)
    try:
        await _killed_then_quit(
            gateway, irc_runner, ngircd, capsys, low=WINDOW, high=WINDOW + 10, clean=True
        )
        sid = gateway.log_text().split('"session_id": "', 1)[1].split('"', 1)[0]
        parked = RecoveryIndex(redis, prefix, WINDOW).stopped_ttl
        async with asyncio.timeout(parked + 10):
            while await redis.exists(f"{prefix}:creds:{{{sid}}}:index"):  # noqa: ASYNC110
                await asyncio.sleep(0.5)
    finally:
        await redis.aclose()


async def _killed_then_quit(
    gateway: GatewayProcess,
    irc_runner: RunnerStack,
    ngircd: Ngircd,
    capsys: pytest.CaptureFixture[str],
    *,
    low: float,
    high: float,
    clean: bool = False,
) -> None:
    channel = f"#orphan{uuid.uuid4().hex[:6]}"
    seen: list[Message] = []
    watcher = connection(ngircd, seen)
    await watcher.open()
    client = await Client(gateway.url).connect()
    try:
        await watcher.join(channel)
        name = nick()
        connected = await login(client, name, ngircd)
        assert "error" not in connected, connected
        joined = await client.call("message", activity("join", name, target=room(channel)))
        assert "error" not in joined, joined
        await until(lambda: any(m.command == "JOIN" and m.nick == name for m in seen))

        killed = time.monotonic()
        if clean:
            assert await asyncio.to_thread(gateway.stop) in (0, -signal.SIGTERM)
        else:
            os.killpg(gateway.proc.pid, signal.SIGKILL)
            gateway.proc.wait(10)
        # Generous here; the figure is checked against the bound below.
        await until(lambda: any(m.command == "QUIT" and m.nick == name for m in seen), 120)
        elapsed = time.monotonic() - killed
        with capsys.disabled():
            print(
                f"\norphan: {'SIGTERM' if clean else 'kill -9'} of the gateway to the IRC "
                f"QUIT: {elapsed:.1f} s "
                f"(at least {low} s, bound {high} s)"
            )
        assert low <= elapsed <= high
        irc_runner.processes[0].wait_for_log("persistent.orphan.released", timeout=5)
        if clean:  # released as an orphan at the window's end, not ended with a grace
            assert "persistent.grace.expired" not in irc_runner.processes[0].log_text()
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await client.close()
        await watcher.close()
