"""Batching that follows the load: an idle system answers at once, a busy one batches.

A producer's linger and a consumer's fetch minimum are fixed waits paid by every record,
whatever the load; they only pay for themselves when several records arrive within one
wait. :class:`RateMeter` measures the rate a client sees, and :class:`ProducerLinger` and
:class:`FetchMinimum` switch the client between "now" and its configured batching as the
rate crosses ``batch_above_rate``, or, given a fill time (``fill_s``), set them in
proportion to the rate (:func:`proportional`) so that a batch fills in about that time.

aiokafka reads both values afresh for every batch it opens (``linger``) and every fetch it
sends (``fetch_min_bytes``), but takes them only as constructor arguments, so they are
set on its internal objects here; ``tests/unit/runtime/test_adaptive.py`` fails if a new
aiokafka moves them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
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


RECORD_BYTES_GUESS = 512.0
"""Bytes per record assumed until a fetch has measured them."""
RECORD_OVERHEAD_BYTES = 24
"""A record's framing in a batch beyond its key, value and headers (varints, deltas)."""


@dataclass(frozen=True, slots=True)
class Batching:
    """One moment's batching: a producer's linger, a fetch's minimum bytes and wait."""

    linger_s: float
    fetch_min_bytes: int
    fetch_wait_ms: int


def proportional(
    rate: float,
    record_bytes: float,
    *,
    fill_s: float,
    max_linger_s: float,
    max_min_bytes: int,
    max_wait_ms: int,
) -> Batching:
    """Batching for ``rate`` records/s of ``record_bytes`` each that fills in about
    ``fill_s``, never above the configured maxima.

    ``expected`` records arrive within one fill time. A fetch waits for their bytes (below
    one record that is 1 byte: it returns at the first record), and for at most two fill
    times, so that a fetch whose rate has just fallen is not held for the configured wait;
    with nothing to gather it keeps the configured wait, so that an idle consumer does not
    poll in a loop. A producer lingers for the part of the fill time that the records after
    a batch's first take to come, ``fill_s * (1 - 1 / expected)``: nothing at one record
    per fill time or fewer, the whole fill time as the rate grows.
    """
    expected = max(rate, 0.0) * fill_s
    min_bytes = max(1, min(max_min_bytes, int(expected * record_bytes)))
    if min_bytes <= 1 or expected <= 1.0:
        return Batching(0.0, 1, max_wait_ms)
    wait_ms = max(1, min(max_wait_ms, math.ceil(2000.0 * fill_s)))
    linger_s = min(max_linger_s, fill_s * (1.0 - 1.0 / expected))
    return Batching(linger_s, min_bytes, wait_ms)


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
    """The producer lingers ``linger_ms`` only while records come faster than the threshold
    (or, with ``fill_s``, in proportion to their rate, at most ``linger_ms``).

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
        fill_s: float = 0.0,
    ) -> None:
        super().__init__(
            idle=0.0, busy=linger_ms / 1000, batch_above_rate=batch_above_rate, meter=meter
        )
        self._producer = producer
        self._fill_s = fill_s

    def value(self) -> float:
        if self._fill_s <= 0:
            return super().value()
        # The linger does not depend on record sizes: any size stands in.
        return proportional(
            self.meter.rate,
            RECORD_BYTES_GUESS,
            fill_s=self._fill_s,
            max_linger_s=self._busy,
            max_min_bytes=1 << 30,
            max_wait_ms=1,
        ).linger_s

    def record(self, count: int = 1) -> None:
        """``count`` records are about to be sent: set the linger of the batches they open."""
        self.meter.add(count)
        accumulator = getattr(self._producer, "_message_accumulator", None)
        self._apply(accumulator, "_linger_time", self.value())


class FetchMinimum(_Switch):
    """A consumer's fetches wait for ``min_bytes`` only while records come faster than the
    threshold; below it the broker answers a fetch as soon as one record is there.

    With ``fill_s``, the minimum and the wait follow the rate instead (:func:`proportional`,
    at most ``min_bytes`` and ``wait_ms``), from the bytes per record the fetches carried.
    """

    def __init__(
        self,
        consumer: Any,
        *,
        min_bytes: int,
        batch_above_rate: float,
        meter: RateMeter | None = None,
        fill_s: float = 0.0,
        wait_ms: int = 0,
    ) -> None:
        super().__init__(idle=1, busy=min_bytes, batch_above_rate=batch_above_rate, meter=meter)
        self._consumer = consumer
        self._fill_s = fill_s
        self._max_wait_ms = wait_ms
        self._wait_ms: int | None = None
        self.record_bytes = RECORD_BYTES_GUESS

    def batching(self) -> Batching:
        """The minimum bytes and wait the next fetch should have."""
        if self._fill_s <= 0:
            return Batching(0.0, int(self.value()), self._max_wait_ms)
        return proportional(
            self.meter.rate,
            self.record_bytes,
            fill_s=self._fill_s,
            max_linger_s=0.0,
            max_min_bytes=int(self._busy),
            max_wait_ms=self._max_wait_ms,
        )

    def fetched(self, count: int, size: int | None = None) -> None:
        """``count`` records (``size`` bytes, when known) came in one fetch: set the
        minimum of the next fetch (call it before awaiting anything, as the consumer builds
        that fetch on its next turn)."""
        self.meter.add(count)
        if count > 0 and size is not None:
            # A slow average: record sizes of one workload change little between fetches.
            self.record_bytes += (size / count - self.record_bytes) * 0.2
        fetcher = getattr(self._consumer, "_fetcher", None)
        batching = self.batching()
        self._apply(fetcher, "_fetch_min_bytes", batching.fetch_min_bytes)
        wait_ms = batching.fetch_wait_ms
        if self._fill_s > 0 and wait_ms != self._wait_ms and fetcher is not None:
            if not hasattr(fetcher, "_fetch_max_wait_ms"):
                return  # a stand-in client
            fetcher._fetch_max_wait_ms = wait_ms
            self._wait_ms = wait_ms


def record_size(message: Any) -> int:
    """A consumed record's bytes in its batch, near enough: key, value, headers, framing."""
    size = RECORD_OVERHEAD_BYTES + max(0, int(getattr(message, "serialized_key_size", 0)))
    size += max(0, int(getattr(message, "serialized_value_size", 0)))
    for name, value in getattr(message, "headers", None) or ():
        size += len(name) + len(value) + 2
    return size
