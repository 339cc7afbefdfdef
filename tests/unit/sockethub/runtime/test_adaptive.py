"""Batching that follows the load (``sockethub.runtime.adaptive``): idle clients send and
fetch at once, busy ones batch as configured."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from aiokafka import AIOKafkaProducer
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.producer.message_accumulator import MessageAccumulator

from sockethub.runtime.adaptive import FetchMinimum, ProducerLinger, RateMeter
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


def test_the_threshold_is_a_setting() -> None:
    assert CommonSettings.model_fields["kafka_batch_above_rate"].default == 500.0
