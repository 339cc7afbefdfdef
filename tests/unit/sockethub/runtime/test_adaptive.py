"""Batching that follows the load (``sockethub.runtime.adaptive``): idle clients send and
fetch at once, busy ones batch as configured."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from aiokafka import AIOKafkaProducer
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.structs import ConsumerRecord

from sockethub.runtime.adaptive import (
    Batching,
    FetchMinimum,
    ProducerLinger,
    RateMeter,
    proportional,
    record_size,
)
from sockethub.runtime.settings import CommonSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_counts_records_per_second_and_falls_when_they_stop() -> None:
    clock = Clock()
    meter = RateMeter(window_s=0.1, clock=clock)
    assert meter.rate == 0.0
    for _ in range(20):  # 200 records in 0.2 s
        meter.add(10)
        clock.now += 0.01
    assert 900 <= meter.rate <= 1100
    clock.now += 5.0  # silence
    assert meter.rate < 50  # the last window's records over 5 s


def busy_meter(clock: Clock, rate: float) -> RateMeter:
    meter = RateMeter(window_s=0.1, clock=clock)
    for _ in range(30):
        meter.add(int(rate / 100))
        clock.now += 0.01
    return meter


def test_a_fetch_asks_for_one_byte_when_idle_and_the_configured_minimum_when_busy() -> None:
    clock = Clock()
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_min_bytes=8192))
    idle = FetchMinimum(
        consumer, min_bytes=8192, batch_above_rate=500, meter=RateMeter(clock=clock)
    )
    idle.fetched(0)
    assert consumer._fetcher._fetch_min_bytes == 1
    busy = FetchMinimum(
        consumer, min_bytes=8192, batch_above_rate=500, meter=busy_meter(clock, 2000)
    )
    busy.fetched(20)
    assert consumer._fetcher._fetch_min_bytes == 8192


def test_a_threshold_of_zero_always_batches() -> None:
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_min_bytes=8192))
    FetchMinimum(consumer, min_bytes=8192, batch_above_rate=0).fetched(0)
    assert consumer._fetcher._fetch_min_bytes == 8192


def test_a_stand_in_client_without_the_internals_is_left_alone() -> None:
    FetchMinimum(SimpleNamespace(), min_bytes=8192, batch_above_rate=500).fetched(1)
    ProducerLinger(object(), linger_ms=5, batch_above_rate=500).record()


async def test_the_producer_lingers_only_while_busy() -> None:
    clock = Clock()
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", linger_ms=5)
    accumulator = producer._message_accumulator
    assert accumulator._linger_time == 0.005
    linger = ProducerLinger(
        producer, linger_ms=5, batch_above_rate=500, meter=RateMeter(clock=clock)
    )
    linger.record()
    assert accumulator._linger_time == 0.0
    linger.meter = busy_meter(clock, 3000)
    linger.record()
    assert accumulator._linger_time == 0.005
    clock.now += 2.0  # quiet again
    linger.record()
    assert accumulator._linger_time == 0.0


def test_aiokafka_still_reads_the_values_adapted_for_every_batch_and_fetch() -> None:
    """The adapted values live in aiokafka's internals: this fails if an upgrade moves
    them, rather than the adaptation silently doing nothing."""
    assert "self._linger_time" in inspect.getsource(MessageAccumulator._append_batch)
    assert "self._fetch_min_bytes" in inspect.getsource(Fetcher._get_actions_per_node)
    assert "self._fetch_min_bytes = " in inspect.getsource(Fetcher.__init__)
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher._get_actions_per_node)
    assert "self._fetch_max_wait_ms = " in inspect.getsource(Fetcher.__init__)


def test_the_threshold_is_a_setting() -> None:
    assert CommonSettings.model_fields["kafka_batch_above_rate"].default == 500.0


LIMITS = {"fill_s": 0.0025, "max_linger_s": 0.005, "max_min_bytes": 8192, "max_wait_ms": 25}


def test_below_one_record_per_fill_time_nothing_waits_and_idle_fetches_keep_their_wait() -> None:
    for rate in (0.0, 10.0, 200.0, 400.0):
        assert proportional(rate, 600, **LIMITS) == Batching(0.0, 1, 25)


def test_a_batch_fills_in_about_the_fill_time_at_the_observed_rate() -> None:
    batching = proportional(800.0, 600, **LIMITS)  # two records per 2.5 ms
    assert batching.fetch_min_bytes == 1200
    assert batching.fetch_wait_ms == 5  # two fill times, not the configured 25
    assert abs(batching.linger_s - 0.00125) < 1e-9  # the second record's wait


def test_the_settings_grow_smoothly_with_the_rate_within_the_maxima() -> None:
    previous = proportional(0.0, 600, **LIMITS)
    for rate in range(50, 200_001, 50):
        now = proportional(float(rate), 600, **LIMITS)
        assert now.linger_s >= previous.linger_s
        assert now.fetch_min_bytes >= previous.fetch_min_bytes
        # No jump as batching starts: a small step of the rate moves them a little.
        assert now.linger_s - previous.linger_s <= 0.0005
        # A minimum up to one record's bytes returns, as 1 byte does, at the first record.
        grew = max(now.fetch_min_bytes, 600) - max(previous.fetch_min_bytes, 600)
        assert grew <= 600 * 50 * 0.0025 + 1
        assert now.linger_s <= 0.0025 and now.fetch_min_bytes <= 8192
        assert 1 <= now.fetch_wait_ms <= 25
        previous = now
    assert previous.fetch_min_bytes == 8192
    capped = proportional(50_000.0, 600, **{**LIMITS, "max_linger_s": 0.001, "max_wait_ms": 3})
    assert capped == Batching(0.001, 8192, 3)


def test_a_fetch_follows_the_rate_and_the_measured_record_size() -> None:
    clock = Clock()
    fetcher = SimpleNamespace(_fetch_min_bytes=8192, _fetch_max_wait_ms=25)
    consumer = SimpleNamespace(_fetcher=fetcher)
    fetches = FetchMinimum(
        consumer,
        min_bytes=8192,
        batch_above_rate=500,
        meter=RateMeter(clock=clock),
        fill_s=0.0025,
        wait_ms=25,
    )
    fetches.fetched(0)
    assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (1, 25)
    for _ in range(60):  # 2 000 records/s of 1 000 bytes
        fetches.fetched(20, 20_000)
        clock.now += 0.01
    assert 950 <= fetches.record_bytes <= 1000
    assert 4000 <= fetcher._fetch_min_bytes <= 5500  # about five records
    assert fetcher._fetch_max_wait_ms == 5
    clock.now += 2.0  # quiet again
    fetches.fetched(0)
    assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (1, 25)


async def test_the_producer_lingers_in_proportion_to_the_rate() -> None:
    clock = Clock()
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", linger_ms=5)
    accumulator = producer._message_accumulator
    linger = ProducerLinger(
        producer, linger_ms=5, batch_above_rate=500, meter=RateMeter(clock=clock), fill_s=0.0025
    )
    linger.record()
    assert accumulator._linger_time == 0.0
    linger.meter = busy_meter(clock, 800)
    linger.record()
    assert 0.0009 <= accumulator._linger_time <= 0.0016  # about half the fill time
    linger.meter = busy_meter(clock, 20_000)
    linger.record()
    assert 0.002 <= accumulator._linger_time <= 0.0025


def test_a_record_is_measured_by_its_key_value_and_headers() -> None:
    record = ConsumerRecord("t", 0, 5, 0, 0, b"key", b"v" * 100, None, 3, 100, [("h", b"xy")])
    assert record_size(record) == 24 + 3 + 100 + 1 + 2 + 2


def test_the_fill_time_is_a_setting_and_off_by_default() -> None:
    assert CommonSettings.model_fields["kafka_batch_fill_ms"].default == 0.0
