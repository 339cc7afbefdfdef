"""The order of a runner's transaction (``platform_runners.committer``)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import REGISTRY

from platform_runners.attempts import Attempts
from platform_runners.committer import Committer, Completion, Outgoing
from platform_runners.offsets import PartitionTracker

REQUESTS = TopicPartition("requests", 0)


class RecordingProducer:
    """Transactional producer calls, in order; each send is acknowledged a little later,
    as the broker's answer to a produce request would be."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.unacknowledged_at_offsets: int | None = None
        self._sent: list[asyncio.Future[object]] = []

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.02, future.set_result, None)
        self._sent.append(future)
        self.calls.append(f"send {topic}")
        return future

    async def send_offsets_to_transaction(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], group_id: str
    ) -> None:
        self.unacknowledged_at_offsets = sum(not f.done() for f in self._sent)
        self.calls.append(f"offsets {group_id} {offsets[REQUESTS].offset}")

    async def commit_transaction(self) -> None:
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")


def transactional(
    producer: RecordingProducer, tracker: PartitionTracker, *, platform: str
) -> Committer:
    """A transactional committer of one request partition, outside any runner."""
    return Committer(
        platform=platform,
        producer=cast(AIOKafkaProducer, producer),
        consumer=cast(AIOKafkaConsumer, None),
        group_id="runners",
        transactional=True,
        trackers={REQUESTS: tracker},
        attempts=cast(Attempts, None),
    )


async def test_answers_are_acknowledged_before_the_offsets_join_the_transaction() -> None:
    producer = RecordingProducer()
    tracker = PartitionTracker(committed=0)
    committer = transactional(producer, tracker, platform="dummy")
    for offset in (0, 1):
        assert tracker.received(offset)
        committer.add(Completion(REQUESTS, offset, [Outgoing("replies", b"k", b"answer")]))
    await committer.flush()
    assert producer.calls == [
        "begin",
        "send replies",
        "send replies",
        "offsets runners 2",
        "commit",
    ]
    assert producer.unacknowledged_at_offsets == 0
    assert tracker.commit_point() is None  # committed through offset 1


class StuckProducer(RecordingProducer):
    """A transaction whose commit waits until released: a broker that stopped answering."""

    def __init__(self) -> None:
        super().__init__()
        self.committing = asyncio.Event()
        self.release = asyncio.Event()

    async def commit_transaction(self) -> None:
        self.committing.set()
        await self.release.wait()
        await super().commit_transaction()


async def test_an_open_transaction_reports_its_age_until_it_commits() -> None:
    producer = StuckProducer()
    tracker = PartitionTracker(committed=0)
    committer = transactional(producer, tracker, platform="stuck")
    assert gauge("sockethub_runner_transaction_open_seconds") == 0
    assert tracker.received(0)
    committer.add(Completion(REQUESTS, 0, [Outgoing("replies", b"k", b"answer")]))
    flushing = asyncio.create_task(committer.flush())
    await producer.committing.wait()
    first = committer.open_seconds()
    await asyncio.sleep(0.01)
    assert gauge("sockethub_runner_transaction_open_seconds") > first > 0
    producer.release.set()
    await flushing
    assert gauge("sockethub_runner_transaction_open_seconds") == 0
    assert gauge("sockethub_runner_last_commit_timestamp_seconds") > 0


def gauge(name: str) -> float:
    value = REGISTRY.get_sample_value(name, {"platform": "stuck"})
    assert value is not None
    return value


def quiet_committer(producer: RecordingProducer, **kwargs: Any) -> Committer:
    return Committer(
        platform="dummy",
        producer=cast(AIOKafkaProducer, producer),
        consumer=cast(AIOKafkaConsumer, None),
        group_id="runners",
        transactional=True,
        trackers={REQUESTS: PartitionTracker(committed=0)},
        attempts=cast(Attempts, None),
        **kwargs,
    )


async def test_an_answer_after_a_quiet_spell_is_committed_at_once() -> None:
    """The linger only spaces back-to-back transactions: with a linger far longer than the
    wait allowed here, the first answer is committed without it."""
    producer = RecordingProducer()
    committed = asyncio.Event()
    committer = quiet_committer(producer, linger_s=60.0, on_commit=lambda _: committed.set())
    assert committer.gap() == 0.0
    task = asyncio.create_task(committer.run())
    try:
        committer.add(Completion(None, None, [Outgoing("replies", b"k", b"answer")]))
        async with asyncio.timeout(10):
            await committed.wait()
        assert producer.calls[-1] == "commit"
        # Right after a commit, the next one waits out what is left of the linger.
        assert 0.0 < committer.gap() <= 60.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_linger_always_waits_before_every_commit() -> None:
    committer = quiet_committer(RecordingProducer(), linger_s=0.25, linger_always=True)
    assert committer.gap() == 0.25
