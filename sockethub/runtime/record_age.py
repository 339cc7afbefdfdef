"""How long a Kafka record took from its producer to the reader that now holds it.

Both hops of an activity are measured this way: a request from the gateway's producer
to the runner that reads it, an answer from the runner's producer to the gateway that
reads it. Records carry their producer's clock (``CreateTime``), so across hosts the
figure includes their clock difference; a negative age (a reader's clock behind) counts
as zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

HOP_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
)  # fmt: skip
"""Histogram buckets (seconds): fine below 0.1 s, where a healthy hop is, then up to the
half hour a backlog can reach."""


class Observer(Protocol):
    def observe(self, amount: float) -> None: ...


class Timestamped(Protocol):
    @property
    def timestamp(self) -> int: ...


def observe_ages(histogram: Observer, records: Iterable[Timestamped], now: float) -> None:
    """Record each record's age at ``now`` (Unix seconds); timestamps are in milliseconds."""
    now_ms = now * 1000.0
    for record in records:
        histogram.observe(max(0.0, now_ms - record.timestamp) / 1000.0)
