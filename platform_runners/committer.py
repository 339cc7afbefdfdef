"""Writes answers and commits offsets: in one Kafka transaction, or ack-then-commit.

Finished requests accumulate here; a flush sends their records and the
partitions' commit points together. Transactional mode (the default) makes
answers exactly-once: records and offsets become visible atomically to
``read_committed`` readers. Without transactions the producer is idempotent
and offsets are committed after the records are acknowledged (at least once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from platform_runners import metrics
from platform_runners.attempts import Attempts
from platform_runners.offsets import PartitionTracker

log = structlog.get_logger("platform_runners.committer")


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Completion:
    """One consumed record's outcome: what to send, which offset it frees."""

    tp: TopicPartition | None
    offset: int | None
    records: list[Outgoing]
    activity_id: str | None = None
    """Set when the request was counted in Redis: marked done once committed."""
    committed: Callable[[BaseException | None], None] | None = None
    """Told how its commit ended (None: committed), when tracing."""


class RevokedError(RuntimeError):
    """A completion's partition was revoked before its commit (its reply is not sent)."""


def _tell(
    callbacks: list[Callable[[BaseException | None], None]], error: BaseException | None
) -> None:
    for callback in callbacks:
        try:
            callback(error)
        except Exception as exc:  # tracing must never break a commit
            log.debug("runner.commit.callback_failed", error=repr(exc))


class CommitError(RuntimeError):
    """A transaction or commit failed: the runner must restart (its state is unknown)."""


class Committer:
    def __init__(
        self,
        *,
        platform: str,
        producer: AIOKafkaProducer,
        consumer: AIOKafkaConsumer,
        group_id: str,
        transactional: bool,
        trackers: dict[TopicPartition, PartitionTracker],
        attempts: Attempts,
        linger_s: float = 0.005,
        linger_always: bool = False,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._platform = platform
        self._producer = producer
        self._consumer = consumer
        self._group_id = group_id
        self._transactional = transactional
        self._trackers = trackers
        self._attempts = attempts
        self._linger_s = linger_s
        self._linger_always = linger_always
        self._pending: list[Completion] = []
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._on_commit = on_commit
        self._open_since: float | None = None
        self._ended: float | None = None
        """monotonic() when the last commit ended (successfully or not)."""
        """monotonic() when the transaction (or send-and-commit) in progress began."""
        self.last_commit: float | None = None
        """Unix time of the last successful commit (the runner's status key shows it)."""
        metrics.TRANSACTION_OPEN_SECONDS.labels(platform).set_function(self.open_seconds)

    def open_seconds(self) -> float:
        """How long the transaction in progress has been open; 0 when none is."""
        since = self._open_since
        return 0.0 if since is None else time.monotonic() - since

    def add(self, completion: Completion) -> None:
        self._pending.append(completion)
        self._dirty.set()

    def touch(self) -> None:
        """Offsets moved without a completion (skipped records): commit them soon."""
        self._dirty.set()

    def gap(self) -> float:
        """Seconds to wait before the next commit: what is left of ``linger_s`` since
        the last one ended.

        Only back-to-back transactions wait: the coordinator is still writing the previous
        one's markers, and a transaction begun meanwhile is refused and retried after the
        client's retry backoff; the gap also gathers what arrives into one transaction. A
        completion after a quiet spell is committed at once (unless ``linger_always``).
        """
        if self._linger_always:
            return self._linger_s
        if self._ended is None:
            return 0.0
        return max(0.0, self._linger_s - (time.monotonic() - self._ended))

    async def run(self) -> None:
        """Flush whenever something is pending, batching what arrives meanwhile."""
        while True:
            await self._dirty.wait()
            gap = self.gap()
            if gap > 0:
                await asyncio.sleep(gap)
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            self._dirty.clear()
            batch, self._pending = self._pending, []
            records: list[Outgoing] = []
            done_ids: list[str] = []
            told = [item.committed for item in batch if item.committed is not None]
            for item in batch:
                if item.tp is not None:
                    tracker = self._trackers.get(item.tp)
                    if tracker is None:
                        if item.committed is not None:
                            told.remove(item.committed)
                            item.committed(RevokedError("partition revoked before the commit"))
                        continue  # partition revoked meanwhile: the new owner answers it
                    if item.offset is not None:
                        tracker.finished(item.offset)
                records.extend(item.records)
                if item.activity_id is not None:
                    done_ids.append(item.activity_id)
            points: dict[TopicPartition, tuple[int, str]] = {}
            for tp, tracker in self._trackers.items():
                point = tracker.commit_point()
                if point is not None:
                    points[tp] = point
            if not records and not points:
                _tell(told, None)
                return
            offsets = {tp: OffsetAndMetadata(o, m) for tp, (o, m) in points.items()}
            self._open_since = time.monotonic()
            try:
                if self._transactional:
                    await self._commit_transaction(records, offsets)
                else:
                    await self._commit_after_acks(records, offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                _tell(told, exc)
                if self._transactional:
                    raise CommitError(f"transaction failed: {exc!r}") from exc
                log.warning("runner.commit.failed", error=repr(exc))
                return
            except Exception as exc:
                _tell(told, exc)
                raise CommitError(f"commit failed: {exc!r}") from exc
            finally:
                self._open_since = None
                self._ended = time.monotonic()
            for tp, point in points.items():
                tracker = self._trackers.get(tp)
                if tracker is not None:
                    tracker.committed(point)
            _tell(told, None)
            metrics.COMMITS.labels(self._platform).inc()
            self.last_commit = time.time()
            metrics.LAST_COMMIT.labels(self._platform).set(self.last_commit)
            if self._on_commit is not None:
                self._on_commit(len(records))
        if done_ids and not self._transactional:
            # In a transaction the offsets (and the finished offsets in their metadata)
            # commit with the answers, so a committed request is never handed out again.
            try:
                await self._attempts.done(done_ids)
            except Exception as exc:  # the Kafka commit is what counts; this is a second line
                log.warning("runner.attempts.mark_done_failed", error=repr(exc))

    async def _send_all(self, records: list[Outgoing]) -> list[asyncio.Future[object]]:
        return [
            await self._producer.send(r.topic, r.value, key=r.key, headers=r.headers)
            for r in records
        ]

    async def _commit_transaction(
        self, records: list[Outgoing], offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        await self._producer.begin_transaction()
        try:
            delivered = await self._send_all(records)
            if offsets:
                # Answers acknowledged first, then the offsets: while AddOffsetsToTxn
                # changes the transaction's state, the broker's check (KIP-890) of a
                # produce still in flight fails, and the broker refuses it as
                # NOT_ENOUGH_REPLICAS, which costs a retry backoff.
                await asyncio.gather(*delivered)
                await self._producer.send_offsets_to_transaction(offsets, self._group_id)
        except BaseException:
            await asyncio.shield(self._producer.abort_transaction())
            raise
        await self._producer.commit_transaction()

    async def _commit_after_acks(
        self, records: list[Outgoing], offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        futures = await self._send_all(records)
        if futures:
            await asyncio.gather(*futures)
        owned = self._consumer.assignment()
        mine = {tp: om for tp, om in offsets.items() if tp in owned}
        if mine:
            await self._consumer.commit(mine)
