"""Per-partition offset tracking for out-of-order completion.

Requests of different sessions finish out of order, so a partition's commit
point is its lowest unfinished offset. Offsets finished *above* that point are
written into the commit's metadata (inside the same transaction as their
results), so a runner that takes the partition over skips them instead of
answering them twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

METADATA_PREFIX = "sh1:"
PAUSE_METADATA_CHARS = 2000
"""Above this, the runner stops fetching the partition until the commit point moves
(Kafka's default ``offset.metadata.max.bytes`` is 4096)."""


def encode_done(base: int, done: Iterable[int]) -> str:
    """``done`` (offsets > base) as ranges relative to ``base``: ``sh1:1-4,7``."""
    parts: list[str] = []
    start = prev = None
    for offset in sorted(set(done)):
        rel = offset - base
        if start is None or prev is None:
            start = prev = rel
        elif rel == prev + 1:
            prev = rel
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = rel
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return METADATA_PREFIX + ",".join(parts) if parts else ""


def decode_done(base: int, metadata: str | None) -> set[int]:
    """The inverse of :func:`encode_done`; anything unrecognised means nothing done."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return set()
    done: set[int] = set()
    try:
        for part in metadata[len(METADATA_PREFIX) :].split(","):
            if not part:
                continue
            first, _, last = part.partition("-")
            low, high = int(first), int(last or first)
            if low < 1 or high < low:
                return set()
            done.update(range(base + low, base + high + 1))
    except ValueError:
        return set()
    return done


class PartitionTracker:
    """Offsets received from one partition, and which of them are finished."""

    def __init__(self, committed: int | None = None, metadata: str | None = None) -> None:
        self._open: deque[int] = deque()
        """Received offsets at or above the commit point, in order."""
        self._done: set[int] = set()
        self._skip: set[int] = decode_done(committed, metadata) if committed is not None else set()
        """Finished by an earlier owner (from the committed metadata)."""
        self._next: int | None = committed
        """The commit point when nothing is open: one past the last offset received."""
        self.metadata_chars = 0
        """Length of the latest commit metadata: how wide the done-ahead set has grown."""
        self._committed: tuple[int, str] | None = (
            (committed, metadata or "") if committed is not None else None
        )

    def received(self, offset: int) -> bool:
        """Record a fetched offset; False if an earlier owner already finished it."""
        last = (
            self._open[-1] if self._open else (self._next - 1 if self._next is not None else None)
        )
        if last is not None and offset <= last:
            return False  # a refetch: already tracked or already committed
        self._open.append(offset)
        if offset in self._skip:
            self._skip.discard(offset)
            self._done.add(offset)
            return False
        return True

    def finished(self, offset: int) -> None:
        if self._open and offset >= self._open[0]:
            self._done.add(offset)

    @property
    def open_count(self) -> int:
        return len(self._open) - len(self._done)

    def _advance(self) -> int | None:
        while self._open and self._open[0] in self._done:
            self._done.discard(self._open[0])
            self._next = self._open.popleft() + 1
        if self._open:
            return self._open[0]
        return self._next

    def finished_through(self) -> int | None:
        """The first offset not yet finished (every offset below it is), or None before
        anything was received or committed."""
        return self._advance()

    def commit_point(self) -> tuple[int, str] | None:
        """(offset, metadata) to commit now, or None if nothing changed since the last commit."""
        base = self._advance()
        if base is None:
            return None
        self._skip = {o for o in self._skip if o > base}
        point = (base, encode_done(base, self._done | self._skip))
        self.metadata_chars = len(point[1])
        return None if point == self._committed else point

    def committed(self, point: tuple[int, str]) -> None:
        """The point returned by :meth:`commit_point` is now durable."""
        self._committed = point
