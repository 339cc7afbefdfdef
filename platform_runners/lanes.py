"""Key-ordered lanes: concurrency across keys, strict order within a key.

Each key (a session) has a FIFO lane. At most ``limit`` items run at once and
at most one per key, so a session's activities never overtake each other while
other sessions proceed. Ready keys are served round-robin.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger("platform_runners.lanes")


class Lanes(Generic[T]):
    def __init__(self, run: Callable[[T], Coroutine[Any, Any, None]], limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._run = run
        self._limit = limit
        self._queues: dict[Hashable, deque[T]] = {}
        self._ready: deque[Hashable] = deque()
        self._running: dict[asyncio.Task[None], tuple[Hashable, T]] = {}
        self._busy_keys: set[Hashable] = set()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._running) + sum(len(q) for q in self._queues.values())

    @property
    def running(self) -> list[T]:
        return [item for _, item in self._running.values()]

    def submit(self, key: Hashable, item: T) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(item)
        if key not in self._busy_keys and len(queue) == 1:
            self._ready.append(key)
        self._pump()

    def _pump(self) -> None:
        while self._ready and len(self._running) < self._limit:
            key = self._ready.popleft()
            queue = self._queues.get(key)
            if not queue or key in self._busy_keys:
                continue
            item = queue.popleft()
            if not queue:
                del self._queues[key]
            self._busy_keys.add(key)
            task = asyncio.create_task(self._run(item))
            self._running[task] = (key, item)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        key, _ = self._running.pop(task)
        self._busy_keys.discard(key)
        if not task.cancelled() and task.exception() is not None:
            log.error("runner.lane.crashed", error=repr(task.exception()))
        if key in self._queues:
            self._ready.append(key)
        self._changed.set()
        self._pump()

    def drop_queued(self, where: Callable[[T], bool]) -> list[T]:
        """Remove queued (not started) items matching ``where``; returns them in order."""
        dropped: list[T] = []
        for key in list(self._queues):
            queue = self._queues[key]
            keep = deque(item for item in queue if not where(item))
            dropped.extend(item for item in queue if where(item))
            if keep:
                self._queues[key] = keep
            else:
                del self._queues[key]
        self._changed.set()
        return dropped

    async def cancel_running(self, where: Callable[[T], bool]) -> list[T]:
        """Cancel running items matching ``where`` and wait until they have unwound."""
        tasks = [task for task, (_, item) in self._running.items() if where(item)]
        items = [self._running[task][1] for task in tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return items

    def _pending(self, where: Callable[[T], bool] | None) -> bool:
        if where is None:
            return len(self) > 0
        if any(where(item) for _, item in self._running.values()):
            return True
        return any(where(item) for q in self._queues.values() for item in q)

    async def wait_idle(
        self, where: Callable[[T], bool] | None = None, *, within: float | None = None
    ) -> bool:
        """Wait until no item matching ``where`` (any item if None) is queued or running."""
        deadline = None if within is None else time.monotonic() + within
        while self._pending(where):
            self._changed.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    async def wait_below(self, size: int) -> None:
        """Backpressure: wait until fewer than ``size`` items are queued or running."""
        while len(self) >= size:
            self._changed.clear()
            await self._changed.wait()


class Gate:
    """Shared/exclusive gate: a suspect request (one that may have crashed the runner)
    runs alone, so a crash it causes again does not count against innocent requests.

    Exclusive entry stops new shared entries, then waits up to ``drain`` seconds for
    the running ones (a hanging handler must not stall the runner for ever).
    """

    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = 0
        self._changed = asyncio.Condition()
        self._solo = asyncio.Lock()
        self._shared_entry = _SharedEntry(self)

    def shared(self) -> _SharedEntry:
        return self._shared_entry

    @contextlib.asynccontextmanager
    async def exclusive(self, drain: float) -> AsyncIterator[bool]:
        """Yields True if every shared holder left within ``drain`` seconds.
        Exclusive holders also exclude each other."""
        async with self._solo, self._exclusive_entry(drain) as alone:
            yield alone

    @contextlib.asynccontextmanager
    async def _exclusive_entry(self, drain: float) -> AsyncIterator[bool]:
        async with self._changed:
            self._exclusive += 1
            try:
                alone = await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._shared == 0), drain
                )
            except TimeoutError:
                alone = False
        try:
            yield bool(alone)
        finally:
            async with self._changed:
                self._exclusive -= 1
                self._changed.notify_all()


class _SharedEntry:
    """``async with gate.shared()``. Every request enters so, and almost always with no
    exclusive holder: then entry and exit touch only a counter, and the condition (a lock
    each way) is used only while an exclusive holder is there or waits."""

    __slots__ = ("_gate",)

    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def __aenter__(self) -> None:
        gate = self._gate
        if gate._exclusive:
            async with gate._changed:
                await gate._changed.wait_for(lambda: gate._exclusive == 0)
                gate._shared += 1
        else:
            gate._shared += 1

    async def __aexit__(self, *exc: object) -> None:
        gate = self._gate
        gate._shared -= 1
        if gate._exclusive:  # it waits for the shared holders to leave
            async with gate._changed:
                gate._changed.notify_all()
