"""Per-session rate limit and per-address connection cap (spec sections 1 and 7)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

RATE_LIMITED = "rate limit exceeded, temporarily blocked"
TOO_MANY_CONNECTIONS = "too many concurrent connections from this address"


class Verdict(Enum):
    ALLOW = "allow"
    BLOCK = "block"
    """This event crossed the limit: the block starts now (announce it once)."""
    BLOCKED = "blocked"
    """Still blocked: drop the event silently."""


@dataclass
class _Window:
    started: float
    count: int = 0
    blocked_until: float = 0.0


class RateLimiter:
    """At most ``limit`` events per one-second window; the event over it starts a block.

    During the block every event is dropped; the first event after it opens a
    fresh window. State is per session and removed with :meth:`forget`.
    """

    def __init__(
        self,
        limit: int,
        block_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._block = block_seconds
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def check(self, key: str) -> Verdict:
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(started=now)
        if window.blocked_until:
            if now < window.blocked_until:
                return Verdict.BLOCKED
            window.blocked_until = 0.0
            window.started, window.count = now, 0
        if now - window.started >= 1.0:
            window.started, window.count = now, 0
        window.count += 1
        if window.count > self._limit:
            window.blocked_until = now + self._block
            return Verdict.BLOCK
        return Verdict.ALLOW

    def forget(self, key: str) -> None:
        self._windows.pop(key, None)

    def __len__(self) -> int:
        return len(self._windows)


class ConnectionCap:
    """Counts live connections per remote address."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._counts: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Count one more connection from ``address``; False (uncounted) when at the cap."""
        current = self._counts.get(address, 0)
        if current >= self._limit:
            return False
        self._counts[address] = current + 1
        return True

    def release(self, address: str) -> None:
        current = self._counts.get(address, 0)
        if current <= 1:
            self._counts.pop(address, None)
        else:
            self._counts[address] = current - 1

    def count(self, address: str) -> int:
        return self._counts.get(address, 0)
