"""Per-session and per-address rate limit (spec section 7), and the refusal texts.

The per-address connection cap is :mod:`gateway.address_cap`."""

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
    announced: bool = False
    """The session has been told of its current block."""


ADDRESS_BLOCKS_PRUNED_AT = 1024
"""Expired address blocks are swept when a new block finds this many kept."""


class RateLimiter:
    """At most ``limit`` events per one-second window; the event over it starts a block.

    During the block every event is dropped; the first event after it opens a
    fresh window. State is per session and removed with :meth:`forget`.

    A block also holds for the session's address: a session opened from it during the
    block (a reconnect) starts blocked, and is told so once. Sessions already open from
    the address are not touched: behind a shared address they are other users.
    """

    def __init__(
        self,
        limit: int,
        block_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_block: Callable[[str, float], None] | None = None,
    ) -> None:
        """``on_block(address, seconds)`` is called when a session's own events start a
        block of its address (not when a session inherits one)."""
        self._limit = limit
        self._block = block_seconds
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._address_blocks: dict[str, float] = {}
        self._on_block = on_block

    def check(self, key: str, address: str | None = None) -> Verdict:
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(started=now)
        if window.blocked_until:
            if now < window.blocked_until:
                if window.announced:
                    return Verdict.BLOCKED
                window.announced = True
                return Verdict.BLOCK
            window.blocked_until = 0.0
            window.started, window.count = now, 0
        if now - window.started >= 1.0:
            window.started, window.count = now, 0
        window.count += 1
        if window.count > self._limit:
            window.blocked_until, window.announced = now + self._block, True
            if address is not None:
                self._block_until(address, window.blocked_until, now)
                if self._on_block is not None:
                    self._on_block(address, self._block)
            return Verdict.BLOCK
        return Verdict.ALLOW

    def opened(self, key: str, address: str) -> None:
        """A session ``key`` opened from ``address``: blocked if the address is."""
        now = self._clock()
        until = self._address_blocks.get(address, 0.0)
        if until > now:
            self._windows[key] = _Window(started=now, blocked_until=until)

    def block_address(self, address: str, seconds: float) -> None:
        """Block ``address`` for ``seconds`` from now (or longer if it already is)."""
        now = self._clock()
        self._block_until(address, now + seconds, now)

    def _block_until(self, address: str, until: float, now: float) -> None:
        blocks = self._address_blocks
        if len(blocks) >= ADDRESS_BLOCKS_PRUNED_AT:
            for expired in [a for a, until in blocks.items() if until <= now]:
                del blocks[expired]
        blocks[address] = max(blocks.get(address, 0.0), until)

    def forget(self, key: str) -> None:
        self._windows.pop(key, None)

    def address_blocked_for(self, address: str) -> float:
        """Seconds left of ``address``'s block (0 when none)."""
        return max(self._address_blocks.get(address, 0.0) - self._clock(), 0.0)

    def prune(self, keep: int = ADDRESS_BLOCKS_PRUNED_AT) -> None:
        """Drop the windows that neither count nor block any more, once more than ``keep``
        are held (windows keyed by address have no session end to forget them)."""
        if len(self._windows) <= keep:
            return
        now = self._clock()
        for key in [
            k for k, w in self._windows.items() if w.blocked_until <= now and now - w.started >= 1.0
        ]:
            del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)
