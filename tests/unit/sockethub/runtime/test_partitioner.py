"""The gateway's cached partitioner picks the partitions aiokafka's default one would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from sockethub.runtime.kafka_clients import CachedPartitioner

CACHED = CachedPartitioner()


@given(st.binary(max_size=64), st.integers(1, 48))
def test_same_partition_as_the_default(key: bytes, count: int) -> None:
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert CACHED(key, partitions, partitions) == expected
    assert CACHED(key, partitions, partitions) == expected  # from the cache


def test_the_cache_is_bounded() -> None:
    partitioner = CachedPartitioner()
    for n in range(CachedPartitioner.MAX_KEYS + 10):
        partitioner(n.to_bytes(4, "big"), [0, 1, 2], [0, 1, 2])
    assert len(partitioner._hashes) <= CachedPartitioner.MAX_KEYS


def test_no_key_picks_an_available_partition() -> None:
    assert CachedPartitioner()(None, [0, 1, 2], [1]) == 1
