"""The per-session rate limiter and the per-address connection cap."""

from __future__ import annotations

from gateway.limits import ConnectionCap, RateLimiter, Verdict


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


def test_connection_cap_counts_per_address() -> None:
    cap = ConnectionCap(2)
    assert cap.acquire("1.2.3.4") and cap.acquire("1.2.3.4")
    assert not cap.acquire("1.2.3.4")
    assert cap.acquire("5.6.7.8")
    cap.release("1.2.3.4")
    assert cap.count("1.2.3.4") == 1
    assert cap.acquire("1.2.3.4")
    cap.release("1.2.3.4")
    cap.release("1.2.3.4")
    cap.release("1.2.3.4")
    assert cap.count("1.2.3.4") == 0
