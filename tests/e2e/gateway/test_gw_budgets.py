"""Per-session budgets and the depth cap on a real gateway (issue 21, items 2 and 7): a
client flooding large ``activity-object`` frames gets error acks, the gateway's memory
stays put, and another session's echoes are not held up; a small, deeply nested payload
gets an error ack instead of a RecursionError."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gateway import Client, GatewayProcess, _start_gateway, dummy, wait_ready
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

FLOOD_FRAMES = 200
EMPTY_LISTS = 84_000
"""``[],`` each: a frame of about 250 KiB, under the default max_payload (256 KiB)."""
CONCURRENT = 8
RSS_GROWTH_LIMIT = 32 * 1024 * 1024
TOO_LARGE = "Error: activity-object larger than 16384 bytes (SOCKETHUB_MAX_OBJECT_BYTES)"
TOO_DEEP = "Error: payload nested deeper than 64 levels (SOCKETHUB_MAX_DEPTH)"


@pytest.fixture(scope="module")
def budgeted(
    stack_env: dict[str, str],
    shared_gateway_prefix: str,
    dummy_runner: RunnerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    """A gateway of its own (its memory is measured), with the default budgets; the rate
    limit is raised so that every flooded frame is answered rather than dropped."""
    gateway = _start_gateway(
        stack_env,
        Path(tmp_path_factory.mktemp("budgeted")),
        topic_prefix=shared_gateway_prefix,
        rate_limit=100_000,
    )
    try:
        wait_ready(gateway)
        yield gateway
    finally:
        gateway.stop()


def rss(gateway: GatewayProcess) -> int:
    """The gateway process's resident set, in bytes."""
    for line in Path(f"/proc/{gateway.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def echo_latencies(client: Client, stop: asyncio.Event) -> list[float]:
    """Echo round trips of a bystander session until ``stop``."""
    latencies: list[float] = []
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        ack = await client.call("message", dummy("echo", id=f"bystander-{n}"))
        latencies.append(time.monotonic() - started)
        assert ack["id"] == f"bystander-{n}" and "error" not in ack
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
    return latencies


async def test_an_activity_object_flood_is_refused_and_memory_stays_put(
    budgeted: GatewayProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    flooder = await Client(budgeted.url).connect()
    bystander = await Client(budgeted.url).connect()
    try:
        # Warm up both paths once, so the baseline includes what any first use allocates.
        assert (await bystander.call("message", dummy("echo", id="warm")))["id"] == "warm"
        small = {"id": "warm", "type": "person"}
        assert await flooder.call("activity-object", small) == small
        before = rss(budgeted)
        peak = before

        stop = asyncio.Event()
        echoes = asyncio.ensure_future(echo_latencies(bystander, stop))
        big = {"id": "big", "type": "person", "lists": [[] for _ in range(EMPTY_LISTS)]}
        answers: list[object] = []
        sem = asyncio.Semaphore(CONCURRENT)

        async def send(n: int) -> None:
            nonlocal peak
            async with sem:
                answers.append(await flooder.call("activity-object", {**big, "id": f"big-{n}"}))
                peak = max(peak, rss(budgeted))

        await asyncio.gather(*(send(n) for n in range(FLOOD_FRAMES)))
        stop.set()
        latencies = sorted(await echoes)
        after = rss(budgeted)

        growth = peak - before
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
        with capsys.disabled():  # shown by `make test`, not only on failure
            print(
                f"\nactivity-object flood: {FLOOD_FRAMES} frames of "
                f"~{3 * EMPTY_LISTS // 1024} KiB; "
                f"gateway RSS {before / 2**20:.1f} MiB before, peak {peak / 2**20:.1f} MiB "
                f"(+{growth / 2**20:.1f} MiB), {after / 2**20:.1f} MiB after; "
                f"bystander echoes: {len(latencies)}, p99 {p99 * 1000:.0f} ms, "
                f"worst {latencies[-1] * 1000:.0f} ms"
            )
        assert answers == [{"context": "error", "error": TOO_LARGE, "content": None}] * (
            FLOOD_FRAMES
        )
        assert growth <= RSS_GROWTH_LIMIT
        assert p99 < 1.0
        assert flooder.sio.connected and bystander.sio.connected
    finally:
        await flooder.close()
        await bystander.close()


async def test_a_600_deep_payload_gets_an_error_ack(budgeted: GatewayProcess) -> None:
    deep: object = {}
    for _ in range(600):
        deep = {"a": deep}
    client = await Client(budgeted.url).connect()
    limit = sys.getrecursionlimit()
    # The test's own client walks the payload recursively to encode it.
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for event in ("message", "credentials", "activity-object"):
            ack = await client.call(event, {**dummy("echo"), "object": deep})
            assert ack.get("error") == TOO_DEEP, event
        assert (await client.call("message", dummy("echo", id="after")))["id"] == "after"
    finally:
        sys.setrecursionlimit(limit)
        await client.close()
    assert "RecursionError" not in budgeted.log_text()
