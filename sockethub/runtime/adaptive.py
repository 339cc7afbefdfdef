"""Batching that follows the load: an idle system answers at once, a busy one batches.

A producer's linger and a consumer's fetch minimum are fixed waits paid by every record,
whatever the load; they only pay for themselves when several records arrive within one
wait. :class:`RateMeter` measures the rate a client sees, and :class:`ProducerLinger` and
:class:`FetchMinimum` switch the client between "now" and its configured batching as the
rate crosses ``batch_above_rate``.

aiokafka reads both values afresh for every batch it opens (``linger``) and every fetch it
sends (``fetch_min_bytes``), but takes them only as constructor arguments, so they are
set on its internal objects here; ``tests/unit/runtime/test_adaptive.py`` fails if a new
aiokafka moves them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("sockethub.adaptive")

RATE_WINDOW_S = 0.1
"""The rate is counted over windows this long: short enough that a burst starts batching
within a window, long enough to hold many records at the rates where batching pays."""


class RateMeter:
    """Records per second over the last full window (or the current one, once it is
    longer than a window, so that the rate falls at once when records stop)."""

    __slots__ = ("_clock", "_count", "_rate", "_start", "_window")

    def __init__(
        self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window_s
        self._clock = clock
        self._start = clock()
        self._count = 0
        self._rate = 0.0

    def add(self, count: int = 1) -> None:
        now = self._clock()
        elapsed = now - self._start
        if elapsed >= self._window:
            self._rate = self._count / elapsed
            self._start, self._count = now, 0
        self._count += count

    @property
    def rate(self) -> float:
        elapsed = self._clock() - self._start
        if elapsed >= self._window:
            return self._count / elapsed
        return self._rate


class _Switch:
    """Sets one numeric attribute of a client's internals to ``busy`` while the metered
    rate is at least ``batch_above_rate``, else to ``idle``."""

    def __init__(
        self, *, idle: float, busy: float, batch_above_rate: float, meter: RateMeter | None
    ) -> None:
        self._idle, self._busy = idle, busy
        self._threshold = batch_above_rate
        self.meter = meter or RateMeter()
        self._current: float | None = None

    def value(self) -> float:
        """What the attribute should be now: always ``busy`` when the threshold is 0."""
        if self._threshold <= 0 or self.meter.rate >= self._threshold:
            return self._busy
        return self._idle

    def _apply(self, target: Any, attribute: str, value: float) -> None:
        if value == self._current:
            return
        if target is None or not hasattr(target, attribute):
            return  # not started yet, or a stand-in client: nothing to adapt
        setattr(target, attribute, value)
        self._current = value


class ProducerLinger(_Switch):
    """The producer lingers ``linger_ms`` only while records come faster than the threshold.

    aiokafka keeps one produce request in flight per broker, so records that come while one
    is on its way wait for it and go out together: lingering adds little to that when few
    records arrive within a linger.
    """

    def __init__(
        self,
        producer: Any,
        *,
        linger_ms: int,
        batch_above_rate: float,
        meter: RateMeter | None = None,
    ) -> None:
        super().__init__(
            idle=0.0, busy=linger_ms / 1000, batch_above_rate=batch_above_rate, meter=meter
        )
        self._producer = producer

    def record(self, count: int = 1) -> None:
        """``count`` records are about to be sent: set the linger of the batches they open."""
        self.meter.add(count)
        accumulator = getattr(self._producer, "_message_accumulator", None)
        self._apply(accumulator, "_linger_time", self.value())


class FetchMinimum(_Switch):
    """A consumer's fetches wait for ``min_bytes`` only while records come faster than the
    threshold; below it the broker answers a fetch as soon as one record is there."""

    def __init__(
        self,
        consumer: Any,
        *,
        min_bytes: int,
        batch_above_rate: float,
        meter: RateMeter | None = None,
    ) -> None:
        super().__init__(idle=1, busy=min_bytes, batch_above_rate=batch_above_rate, meter=meter)
        self._consumer = consumer

    def fetched(self, count: int) -> None:
        """``count`` records came in one fetch: set the minimum of the next fetch (call it
        before awaiting anything, as the consumer builds that fetch on its next turn)."""
        self.meter.add(count)
        fetcher = getattr(self._consumer, "_fetcher", None)
        self._apply(fetcher, "_fetch_min_bytes", int(self.value()))
