"""Record ages: producer timestamp (ms) to a reader's clock (s), never negative."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, Histogram

from sockethub.runtime.record_age import HOP_BUCKETS, observe_ages


@dataclass
class _Record:
    timestamp: int


def _histogram() -> tuple[Histogram, CollectorRegistry]:
    registry = CollectorRegistry()
    return Histogram("hop_seconds", "test", buckets=HOP_BUCKETS, registry=registry), registry


def test_ages_are_seconds_from_the_record_timestamp_to_now() -> None:
    histogram, registry = _histogram()
    now = 1_800_000_000.0
    records = [_Record(int(now * 1000) - 12), _Record(int(now * 1000) - 2500)]
    observe_ages(histogram, records, now)
    assert registry.get_sample_value("hop_seconds_count") == 2
    assert registry.get_sample_value("hop_seconds_sum") == pytest.approx(2.512)
    assert registry.get_sample_value("hop_seconds_bucket", {"le": "0.015"}) == 1
    assert registry.get_sample_value("hop_seconds_bucket", {"le": "2.5"}) == 2


def test_a_reader_clock_behind_the_producer_counts_as_zero() -> None:
    histogram, registry = _histogram()
    now = 1_800_000_000.0
    observe_ages(histogram, [_Record(int(now * 1000) + 40)], now)
    assert registry.get_sample_value("hop_seconds_sum") == 0.0
    assert registry.get_sample_value("hop_seconds_bucket", {"le": "0.001"}) == 1


def test_buckets_rise_and_reach_a_backlog_of_half_an_hour() -> None:
    assert list(HOP_BUCKETS) == sorted(set(HOP_BUCKETS))
    assert HOP_BUCKETS[0] <= 0.001 and HOP_BUCKETS[-1] >= 1800
