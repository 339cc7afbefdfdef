"""The rate limiter (per session and per address) and the in-process connection cap."""

from __future__ import annotations

from gateway.address_cap import AddressCap
from gateway.limits import RateLimiter, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_allows_up_to_the_limit_per_second_then_blocks_once() -> None:
    clock = Clock()
    limiter = RateLimiter(100, 5.0, clock)
    assert all(limiter.check("s") is Verdict.ALLOW for _ in range(100))
    assert limiter.check("s") is Verdict.BLOCK
    assert limiter.check("s") is Verdict.BLOCKED
    clock.now += 4.9
    assert limiter.check("s") is Verdict.BLOCKED
    clock.now += 0.2
    assert limiter.check("s") is Verdict.ALLOW


def test_a_new_window_each_second() -> None:
    clock = Clock()
    limiter = RateLimiter(3, 5.0, clock)
    for _ in range(10):
        assert [limiter.check("s") for _ in range(3)] == [Verdict.ALLOW] * 3
        clock.now += 1.0


def test_sessions_are_independent_and_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 5.0, clock)
    assert limiter.check("a") is Verdict.ALLOW
    assert limiter.check("a") is Verdict.BLOCK
    assert limiter.check("b") is Verdict.ALLOW
    limiter.forget("a")
    limiter.forget("b")
    assert len(limiter) == 0
    assert limiter.check("a") is Verdict.ALLOW


def test_a_block_holds_for_the_address_and_outlives_a_reconnect() -> None:
    clock = Clock()
    shared: list[tuple[str, float]] = []
    limiter = RateLimiter(1, 5.0, clock, on_block=lambda a, s: shared.append((a, s)))
    assert limiter.check("a", "127.0.0.2") is Verdict.ALLOW
    assert limiter.check("a", "127.0.0.2") is Verdict.BLOCK
    assert shared == [("127.0.0.2", 5.0)]
    limiter.forget("a")  # the client reconnects: a new session, the same address
    limiter.opened("b", "127.0.0.2")
    limiter.opened("c", "127.0.0.3")
    assert limiter.check("b", "127.0.0.2") is Verdict.BLOCK  # told once
    assert limiter.check("b", "127.0.0.2") is Verdict.BLOCKED
    assert limiter.check("c", "127.0.0.3") is Verdict.ALLOW
    assert shared == [("127.0.0.2", 5.0)]  # an inherited block is not shared again
    clock.now += 5.1
    assert limiter.check("b", "127.0.0.2") is Verdict.ALLOW
    limiter.opened("d", "127.0.0.2")
    assert limiter.check("d", "127.0.0.2") is Verdict.ALLOW


def test_a_block_from_elsewhere_holds_for_new_sessions_not_live_ones() -> None:
    clock = Clock()
    limiter = RateLimiter(100, 5.0, clock)
    limiter.opened("live", "127.0.0.2")
    limiter.block_address("127.0.0.2", 3.0)  # another gateway's block, learnt at handshake
    limiter.opened("new", "127.0.0.2")
    assert limiter.check("live", "127.0.0.2") is Verdict.ALLOW
    assert limiter.check("new", "127.0.0.2") is Verdict.BLOCK
    assert limiter.check("new", "127.0.0.2") is Verdict.BLOCKED
    clock.now += 3.1
    assert limiter.check("new", "127.0.0.2") is Verdict.ALLOW


async def test_the_in_process_cap_counts_per_address() -> None:
    cap = AddressCap(2)
    assert (await cap.acquire("127.0.0.2")).allowed and (await cap.acquire("127.0.0.2")).allowed
    assert not (await cap.acquire("127.0.0.2")).allowed
    assert (await cap.acquire("127.0.0.3")).allowed
    await cap.release("127.0.0.2")
    assert cap.count("127.0.0.2") == 1
    assert (await cap.acquire("127.0.0.2")).allowed
    for _ in range(3):
        await cap.release("127.0.0.2")
    assert cap.count("127.0.0.2") == 0
