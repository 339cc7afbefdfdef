"""Key-ordered lanes and the suspect gate."""

from __future__ import annotations

import asyncio
import random

from platform_runners.lanes import Gate, Lanes


async def test_order_within_a_key_and_concurrency_across_keys() -> None:
    done: dict[str, list[int]] = {}
    running = 0
    peak = 0

    async def work(item: tuple[str, int]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(random.uniform(0, 0.003))
        done.setdefault(item[0], []).append(item[1])
        running -= 1

    lanes: Lanes[tuple[str, int]] = Lanes(work, limit=4)
    for n in range(20):
        for key in "abcdefgh":
            lanes.submit(key, (key, n))
    assert await lanes.wait_idle(within=10)
    assert done == {key: list(range(20)) for key in "abcdefgh"}
    assert peak == 4
    assert len(lanes) == 0


async def test_one_slow_session_does_not_block_others() -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def work(item: str) -> None:
        if item == "slow-1":
            await release.wait()
        done.append(item)

    lanes: Lanes[str] = Lanes(work, limit=2)
    lanes.submit("slow", "slow-1")
    lanes.submit("slow", "slow-2")
    for n in range(5):
        lanes.submit("fast", f"fast-{n}")
    assert await lanes.wait_idle(lambda item: item.startswith("fast"), within=5)
    assert done == [f"fast-{n}" for n in range(5)]
    release.set()
    assert await lanes.wait_idle(within=5)
    assert done[-2:] == ["slow-1", "slow-2"]


async def test_drop_and_cancel() -> None:
    started: list[int] = []

    async def work(item: int) -> None:
        started.append(item)
        await asyncio.Event().wait()

    lanes: Lanes[int] = Lanes(work, limit=1)
    for n in range(3):
        lanes.submit("k", n)
    await asyncio.sleep(0)
    assert started == [0]
    assert lanes.drop_queued(lambda item: item == 2) == [2]
    assert not await lanes.wait_idle(within=0.05)
    assert await lanes.cancel_running(lambda item: True) == [0]
    await asyncio.sleep(0)
    assert started == [0, 1]  # the next queued item of the key starts
    await lanes.cancel_running(lambda item: True)
    assert await lanes.wait_idle(within=1)


async def test_backpressure_wait_below() -> None:
    gate = asyncio.Event()

    async def work(item: int) -> None:
        await gate.wait()

    lanes: Lanes[int] = Lanes(work, limit=2)
    for n in range(5):
        lanes.submit(n % 2, n)
    waiter = asyncio.create_task(lanes.wait_below(3))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    gate.set()
    await asyncio.wait_for(waiter, 5)


async def test_gate_runs_a_suspect_alone() -> None:
    gate = Gate()
    inside: list[str] = []
    log: list[tuple[str, int]] = []

    async def normal(name: str, hold: float) -> None:
        async with gate.shared():
            inside.append(name)
            log.append((name, len(inside)))
            await asyncio.sleep(hold)
            inside.remove(name)

    async def suspect() -> bool:
        async with gate.exclusive(drain=5) as alone:
            log.append(("suspect", len(inside)))
            await asyncio.sleep(0.02)
            return alone

    first = asyncio.create_task(normal("a", 0.05))
    await asyncio.sleep(0.01)
    s = asyncio.create_task(suspect())
    await asyncio.sleep(0.01)
    late = asyncio.create_task(normal("b", 0))  # must wait for the suspect
    assert await s
    await asyncio.gather(first, late)
    assert log == [("a", 1), ("suspect", 0), ("b", 1)]


async def test_gate_stops_waiting_for_a_hanging_neighbour() -> None:
    gate = Gate()
    hang = asyncio.Event()

    async def hanging() -> None:
        async with gate.shared():
            await hang.wait()

    task = asyncio.create_task(hanging())
    await asyncio.sleep(0.01)
    async with gate.exclusive(drain=0.05) as alone:
        assert alone is False
    hang.set()
    await task
