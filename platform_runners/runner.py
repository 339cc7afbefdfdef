"""One platform's runner: consume requests, run handlers in key-ordered lanes, answer.

Flow: the consumer (group ``<prefix>.runners.<platform>``, ``read_committed``, no
auto commit) fetches requests; each goes to its session's lane; a lane runs the
platform handler and hands the answer to the :class:`Committer`, which writes
answers and offsets together; :mod:`answers` builds those records. Crash
accounting lives in :mod:`attempts`: a request seen again after it (or its
neighbours) ended the process is announced to its session, retried alone, and
dead-lettered after ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from platform_runners import metrics
from platform_runners.answers import Answers
from platform_runners.answers import crash_text as crash_text
from platform_runners.attempts import Attempts
from platform_runners.committer import Committer, Completion, Outgoing
from platform_runners.lanes import Gate, Lanes
from platform_runners.offsets import PAUSE_METADATA_CHARS, PartitionTracker
from platform_runners.platform import (
    Context,
    CredentialLookup,
    PlatformFactory,
    TransientError,
    describe,
)
from platform_runners.settings import RunnerSettings
from schemas.codec import CodecError
from schemas.envelopes import SESSION_RESUMED, JSONDict, Request, RequestKind
from schemas.platform_registry import PlatformDescriptor
from schemas.topics import MAX_RECORD_BYTES, TopicLayout
from sockethub.runtime.adaptive import FetchMinimum
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.credentials import CredentialStore
from sockethub.runtime.kafka_clients import (
    PRODUCER_BATCH_BYTES,
    CachedPartitioner,
    client_kwargs,
    committed_offsets,
    fetch_kwargs,
)
from sockethub.runtime.record_age import observe_ages
from sockethub.runtime.redis_client import redis_client
from sockethub.runtime.runner_status import RunnerStatus, runner_group, write_status
from sockethub.runtime.tracing import tracing_from_env

if TYPE_CHECKING:
    from sockethub.runtime.otel import Tracing

log = structlog.get_logger("platform_runners.runner")

ISOLATION_S = 3.0
"""How long a suspect request runs alone before others may run beside it again."""
TRANSACTION_TIMEOUT_MS = 30000
LAG_INTERVAL_S = 10.0
STATUS_TTL_S = 3 * LAG_INTERVAL_S
"""A status key outlives a few missed writes, then expires with its runner."""
STATUS_WRITE_TIMEOUT_S = 2.0
"""How often the consumer-lag gauges are refreshed (one ListOffsets request each time)."""
RETRY_BASE_S = 0.2


@dataclass(frozen=True, slots=True)
class KafkaFactories:
    """How the runner builds its Kafka clients (called with aiokafka's keyword arguments);
    the unit tests pass in-process fakes."""

    producer: Callable[..., AIOKafkaProducer] = AIOKafkaProducer
    consumer: Callable[..., AIOKafkaConsumer] = AIOKafkaConsumer
    admin: Callable[..., AIOKafkaAdminClient] = AIOKafkaAdminClient


@dataclass(eq=False, slots=True)
class Work:
    tp: TopicPartition
    offset: int
    request: Request
    started: float = field(default_factory=time.monotonic)
    traceparent: str | None = None
    """The handle span's context, when tracing: the reply span's parent."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._runner.partitions_assigned(set(assigned))


class Runner:
    """Owns the Kafka clients, the lanes and the platform of one runner process."""

    def __init__(
        self,
        settings: RunnerSettings,
        factory: PlatformFactory,
        descriptor: PlatformDescriptor,
        *,
        credentials: CredentialLookup | None = None,
        attempts: Attempts | None = None,
        kafka: KafkaFactories | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """``credentials``, ``attempts`` and ``kafka`` replace the Redis- and Kafka-backed
        defaults (the unit tests run the runner on fakes); ``tracing`` replaces the one
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` turns on."""
        self.settings = settings
        self.platform_id = descriptor.id
        self.layout = TopicLayout(settings)
        self.topic = self.layout.requests(self.platform_id)
        self.group_id = runner_group(settings.topic_prefix, self.platform_id)
        self.transactional_id = (
            f"{settings.topic_prefix}.runner.{self.platform_id}.{settings.instance}"
        )
        self.codec = codec_from_settings(settings)
        self.answers = Answers(self.codec, self.layout, self.platform_id)
        self.redis = redis_client(settings.redis_url)
        self.attempts = (
            attempts
            if attempts is not None
            else Attempts(self.redis, settings.topic_prefix, self.platform_id)
        )
        self._kafka = kafka if kafka is not None else KafkaFactories()
        self.tracing = tracing if tracing is not None else tracing_from_env("sockethub-runner")
        self.credentials = credentials if credentials is not None else self._store(settings)
        self.platform = factory(settings, descriptor, self)
        self.handlers = dict(self.platform.handlers())
        self.context = self.answers.context
        self.trackers: dict[TopicPartition, PartitionTracker] = {}
        self._closing: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._routes: dict[str, str] = {}
        self._metric_children: dict[tuple[str, str], Any] = {}
        self._queue_seconds = metrics.QUEUE_SECONDS.labels(self.platform_id)
        self._told_of_crash: set[str] = set()
        """Sessions already sent the crash notice (once per session and process life)."""
        self.lanes: Lanes[Work] = Lanes(self._process, settings.concurrency)
        self.gate = Gate()
        self.answered = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._committer: Committer | None = None
        self._fetch_minimum: FetchMinimum | None = None
        self._track_lock = asyncio.Lock()
        self._last_lag: dict[str, int] = {}
        self._status_tasks: set[asyncio.Task[None]] = set()
        self.started = False
        self.joined = False
        """The group's assignment reached us at least once (possibly empty: an idle standby
        runner is ready too, or a rollout of more runners than partitions would stall)."""
        self.log = log.bind(platform=self.platform_id, instance=settings.instance)

    def _store(self, settings: RunnerSettings) -> CredentialLookup | None:
        """The gateway's encrypted credential store, when a server secret is configured."""
        if settings.secret is None:
            return None
        return CredentialStore(self.redis, settings.secret, prefix=settings.topic_prefix)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        kwargs = client_kwargs(self.settings)
        producer_kwargs: dict[str, object] = {
            "acks": "all",
            "enable_idempotence": True,
            "max_request_size": MAX_RECORD_BYTES,
            "max_batch_size": PRODUCER_BATCH_BYTES,
            "partitioner": CachedPartitioner(),
            "linger_ms": 0 if self.settings.transactions else 5,
        }
        if self.settings.transactions:
            producer_kwargs["transactional_id"] = self.transactional_id
            producer_kwargs["transaction_timeout_ms"] = TRANSACTION_TIMEOUT_MS
        self._producer = self._kafka.producer(**kwargs, **producer_kwargs)
        self._admin = self._kafka.admin(**kwargs)
        self._consumer = self._kafka.consumer(
            **kwargs,
            group_id=self.group_id,
            # Static membership: a restarted runner (same instance name) takes its place
            # in the group at once instead of waiting out the dead member's session.
            group_instance_id=self.transactional_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.settings.session_timeout_ms // 5),
            max_poll_interval_ms=max(300000, int(self.settings.job_timeout * 1000) + 60000),
            fetch_max_bytes=MAX_RECORD_BYTES * 2,
            **fetch_kwargs(self.settings),
            max_partition_fetch_bytes=MAX_RECORD_BYTES,
        )
        self._committer = Committer(
            platform=self.platform_id,
            producer=self._producer,
            consumer=self._consumer,
            group_id=self.group_id,
            transactional=self.settings.transactions,
            trackers=self.trackers,
            attempts=self.attempts,
            linger_s=self.settings.commit_gap_ms / 1000,
            # kafka_batch_above_rate 0: every fixed wait as before, at every load.
            linger_always=self.settings.kafka_batch_above_rate == 0,
            on_commit=self._counted,
        )
        await self.codec.start()
        await self.platform.start()
        await self._producer.start()  # with a transactional id: fences our previous life
        await self._admin.start()  # the assignment callback reads committed offsets with it
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()
        self._fetch_minimum = FetchMinimum(
            self._consumer,
            min_bytes=self.settings.kafka_fetch_min_bytes,
            batch_above_rate=self.settings.kafka_batch_above_rate,
        )
        self._fetch_minimum.fetched(0)  # idle until records come
        self.started = True
        self.log.info(
            "runner.started",
            topic=self.topic,
            group=self.group_id,
            transactional=self.settings.transactions,
        )

    def status(self) -> dict[str, Any]:
        """Readiness for ``/readyz``: the consumer runs and has joined its group."""
        return {
            "ready": self.started and self.joined,
            "consumer": self.started,
            "joined": self.joined,
            "partitions": sorted(tp.partition for tp in self.trackers),
        }

    def _counted(self, records: int) -> None:
        self.answered += records

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then shut down gracefully. Raises on a fatal error."""
        assert self._consumer is not None and self._committer is not None
        committer = asyncio.create_task(self._committer.run(), name="committer")
        lag = asyncio.create_task(self._lag_loop(stop), name="lag")
        try:
            while not stop.is_set():
                if committer.done():
                    committer.result()  # re-raises the CommitError
                    raise RuntimeError("committer stopped")
                if len(self.lanes) >= self.settings.max_buffered:
                    await self._wait_any(self.lanes.wait_below(self.settings.max_buffered), stop)
                    continue
                batch = await self._consumer.getmany(timeout_ms=200, max_records=500)
                if self._fetch_minimum is not None:  # before the next fetch is built
                    self._fetch_minimum.fetched(sum(len(m) for m in batch.values()))
                now = time.time()
                for tp, messages in batch.items():
                    observe_ages(self._queue_seconds, messages, now)
                    await self._dispatch(tp, messages)
                self._pause_wide_partitions()
                metrics.IN_FLIGHT.labels(self.platform_id).set(len(self.lanes))
            await self._drain(self.settings.shutdown_grace)
        finally:
            committer.cancel()
            lag.cancel()
            for task in (committer, lag):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def close(self) -> None:
        """Release everything; after :meth:`run` the offsets are already committed."""
        if self.started:
            await self.publish_status(state="stopped")
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
        with contextlib.suppress(Exception):
            await self.platform.stop()
        with contextlib.suppress(Exception):
            await self.codec.close()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        if self.tracing is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.tracing.shutdown)  # flushes the queued spans
        self.log.info("runner.stopped", answered=self.answered)

    @staticmethod
    async def _wait_any(awaitable: Awaitable[None], stop: asyncio.Event) -> None:
        waiting = asyncio.ensure_future(awaitable)
        stopping = asyncio.ensure_future(stop.wait())
        _, pending = await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _drain(self, grace: float) -> None:
        """Finish what can finish within ``grace``, give the rest back, commit."""
        assert self._committer is not None
        if not await self.lanes.wait_idle(within=grace):
            self.lanes.drop_queued(lambda work: True)
            abandoned = await self.lanes.cancel_running(lambda work: True)
            self.log.warning("runner.drain.abandoned", count=len(abandoned))
        await self._committer.flush()

    async def _lag_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            lags: dict[int, int] | None = None
            try:
                lags = await self.measure_lag()
            except Exception as exc:  # a metric must never stop the runner
                self.log.debug("runner.lag.unavailable", error=repr(exc))
            await self.publish_status(lags=lags)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LAG_INTERVAL_S)

    def runner_status(self, state: str | None = None) -> RunnerStatus:
        """What the admin page shows of this instance (:mod:`sockethub.runtime.runner_status`)."""
        committer = self._committer
        return RunnerStatus(
            platform=self.platform_id,
            instance=self.settings.instance,
            state=state or ("running" if self.joined else "starting"),
            partitions=sorted(tp.partition for tp in self.trackers),
            last_commit=committer.last_commit if committer is not None else None,
            transaction_open_seconds=committer.open_seconds() if committer is not None else 0.0,
            lag=dict(self._last_lag),
        )

    async def publish_status(
        self, *, lags: dict[int, int] | None = None, state: str | None = None
    ) -> None:
        """Write this instance's status key; a failure is only logged (the page shows the key
        expire, which is what an unreachable runner looks like anyway)."""
        if lags is not None:
            self._last_lag = {str(p): n for p, n in sorted(lags.items())}
        try:
            async with asyncio.timeout(STATUS_WRITE_TIMEOUT_S):
                await write_status(
                    self.redis, self.settings.topic_prefix, self.runner_status(state),
                    ttl=STATUS_TTL_S,
                )  # fmt: skip
        except Exception as exc:
            self.log.debug("runner.status.unwritten", error=repr(exc))

    def _status_soon(self) -> None:
        """Report a changed assignment without holding up the rebalance callback."""
        task = asyncio.create_task(self.publish_status(), name="runner-status")
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)

    async def measure_lag(self) -> dict[int, int]:
        """Set ``sockethub_runner_consumer_lag`` for the owned partitions; returns it by
        partition. The runner's own finished-through offset, not the fetch position (which
        runs ahead by the buffered requests), is what it is behind by."""
        assert self._consumer is not None
        tps = [tp for tp in self.trackers if tp not in self._closing]
        if not tps:
            return {}
        ends = await self._consumer.end_offsets(tps)
        lags: dict[int, int] = {}
        for tp in tps:
            tracker = self.trackers.get(tp)
            if tracker is None or tp not in ends:
                continue
            through = tracker.finished_through()
            if through is None:
                through = await self._consumer.position(tp)
            lags[tp.partition] = max(0, ends[tp] - through)
            metrics.CONSUMER_LAG.labels(self.platform_id, str(tp.partition)).set(lags[tp.partition])
        return lags

    # -- partitions ---------------------------------------------------------------------------

    async def _track(self, tps: set[TopicPartition]) -> None:
        """Start tracking ``tps`` from their committed offsets and the offsets finished above
        them (the commit metadata): those are skipped, not answered again."""
        assert self._admin is not None
        async with self._track_lock:
            wanted = [tp for tp in tps if tp not in self.trackers]
            if not wanted:
                return
            committed = await committed_offsets(
                self._admin,
                self.group_id,
                wanted,
                retry_backoff_s=self.settings.kafka_retry_backoff_ms / 1000,
            )
            for tp in wanted:
                om = committed.get(tp)
                self.trackers[tp] = (
                    PartitionTracker(om.offset, om.metadata) if om else PartitionTracker()
                )

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.joined = True
        self._closing -= assigned
        self._paused -= assigned
        await self._track(assigned)
        self.log.info(
            "runner.partitions.assigned", partitions=sorted(tp.partition for tp in assigned)
        )
        if self.settings.ready_file is not None:
            with contextlib.suppress(OSError):
                self.settings.ready_file.touch()
        self._status_soon()
        try:
            await self.platform.partitions_assigned({tp.partition for tp in assigned})
        except Exception as exc:
            self.log.error("runner.platform.assign_failed", error=repr(exc))

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Finish (within the grace period) or give back in-flight work, then commit, before
        another runner may own these partitions."""
        assert self._committer is not None
        if not revoked:
            return
        self._closing |= revoked

        def lost(work: Work) -> bool:
            return work.tp in revoked

        self.lanes.drop_queued(lost)
        if not await self.lanes.wait_idle(lost, within=min(self.settings.shutdown_grace, 5.0)):
            abandoned = await self.lanes.cancel_running(lost)
            self.log.warning("runner.revoke.abandoned", count=len(abandoned))
        await self._committer.flush()
        for tp in revoked:
            self.trackers.pop(tp, None)
            self._paused.discard(tp)
            with contextlib.suppress(KeyError):  # another instance reports it now
                metrics.CONSUMER_LAG.remove(self.platform_id, str(tp.partition))
        self.log.info(
            "runner.partitions.revoked", partitions=sorted(tp.partition for tp in revoked)
        )
        self._status_soon()
        try:
            await self.platform.partitions_revoked({tp.partition for tp in revoked})
        except Exception as exc:
            self.log.error("runner.platform.revoke_failed", error=repr(exc))

    def _pause_wide_partitions(self) -> None:
        """A partition whose done-ahead set no longer fits in commit metadata stops fetching."""
        assert self._consumer is not None
        for tp, tracker in self.trackers.items():
            wide = tracker.metadata_chars > PAUSE_METADATA_CHARS
            if wide and tp not in self._paused:
                self._consumer.pause(tp)
                self._paused.add(tp)
            elif (
                not wide
                and tp in self._paused
                and tracker.metadata_chars < PAUSE_METADATA_CHARS // 2
            ):
                self._consumer.resume(tp)
                self._paused.discard(tp)

    # -- dispatch -----------------------------------------------------------------------------

    async def _dispatch(self, tp: TopicPartition, messages: list[ConsumerRecord]) -> None:
        assert self._consumer is not None and self._committer is not None
        if tp in self._closing:
            return
        if tp not in self.trackers:
            if tp not in self._consumer.assignment():
                return
            await self._track({tp})
        tracker = self.trackers.get(tp)
        if tracker is None or tp in self._closing:
            return
        for message in messages:
            if not tracker.received(message.offset):
                metrics.REQUESTS.labels(self.platform_id, "skipped").inc()
                self._committer.touch()
                continue
            try:
                record = self.codec.decode(message.value or b"", message.headers)
            except CodecError as exc:
                self._dead_letter_raw(tp, message, f"undecodable request: {exc}", "undecodable")
                continue
            if not isinstance(record, Request):
                self._dead_letter_raw(
                    tp, message, f"not a request: {type(record).__name__}", "not_a_request"
                )
                continue
            if not self.layout.is_reply_topic(record.reply_route):
                # Answering would write to whatever topic the record names (another
                # platform's requests, say); nobody can be answered safely.
                route = record.reply_route[:120]
                self._dead_letter_raw(
                    tp,
                    message,
                    f"reply route {route!r} is not a reply topic of this deployment",
                    "foreign_reply_route",
                    event="runner.request.foreign_reply_route",
                )
                continue
            self.lanes.submit((tp.partition, record.session_id), Work(tp, message.offset, record))

    def _dead_letter_raw(
        self,
        tp: TopicPartition,
        message: ConsumerRecord,
        error: str,
        reason: str,
        *,
        event: str = "runner.request.undecodable",
    ) -> None:
        """Dead-letter ``message`` as it was read, unanswered."""
        assert self._committer is not None
        self.log.error(event, partition=tp.partition, offset=message.offset)
        out = self.answers.dead_letter_raw(tp, message, error, reason)
        metrics.REQUESTS.labels(self.platform_id, "dead_letter").inc()
        metrics.DEAD_LETTERS.labels(self.platform_id, reason).inc()
        self._committer.add(Completion(tp, message.offset, [out]))

    # -- one request ----------------------------------------------------------------------------

    async def _process(self, work: Work) -> None:
        request = work.request
        if request.kind is not RequestKind.ACTIVITY:
            await self._control(work)
            return
        self._routes[request.session_id] = request.reply_route
        try:
            # The attempt is counted inside the gate: a request still waiting behind a
            # suspect has not run, so a crash then must not make it a suspect too.
            async with self.gate.shared():
                attempt = await self._begin(request)
                if attempt < 0:
                    self._complete(work, [], "skipped")
                    return
                if attempt == 1:
                    records, outcome = await self._invoke(work, attempt)
                    self._complete(work, records, outcome)
                    return
            await self._redelivered(work, attempt)
        except asyncio.CancelledError:
            # Given back (shutdown, rebalance): not a crash, so the attempt does not count.
            await asyncio.shield(self._abandon(request.activity_id))
            raise

    async def _abandon(self, activity_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.attempts.abandon([activity_id])
        metrics.REQUESTS.labels(self.platform_id, "abandoned").inc()

    async def _begin(self, request: Request) -> int:
        return await self._retrying(lambda: self.attempts.begin(request.activity_id))

    async def _control(self, work: Work) -> None:
        request = work.request
        if request.kind is RequestKind.SESSION_CLOSED:
            self._routes.pop(request.session_id, None)
            try:
                await self.platform.session_closed(request.session_id)
            except Exception as exc:
                self.log.error("runner.session_closed.failed", error=repr(exc))
        elif request.kind is RequestKind.CREDENTIALS and request.verb == SESSION_RESUMED:
            # Routed first: anything the platform emits from now on goes to the new holder,
            # and the answer (after everything sent to the old route) tells it so.
            self._routes[request.session_id] = request.reply_route
            try:
                await self.platform.session_resumed(request.session_id, request.reply_route)
            except Exception as exc:
                self.log.error("runner.session_resumed.failed", error=repr(exc))
            self._complete(work, [self.answers.result(request, None)], "control")
            return
        self._complete(work, [], "control")

    async def _redelivered(self, work: Work, attempt: int) -> None:
        """The request was running when the process died: a suspect, re-run alone.

        Only crashes while it ran alone are charged to it (``Attempts.charge``): those
        tell its session, and ``max_attempts`` of them dead-letter it. A suspect that
        turns out innocent is answered as if nothing happened.
        """
        assert self._committer is not None
        request = work.request
        metrics.CRASHES_SEEN.labels(self.platform_id).inc()
        charged = await self._retrying(lambda: self.attempts.charged(request.activity_id))
        exit_code = await self._last_exit_code() if charged else "unknown"
        self.log.warning(
            "runner.request.redelivered",
            activity_id=request.activity_id,
            attempt=attempt,
            charged=charged,
        )
        notices = []
        if charged and request.session_id not in self._told_of_crash:
            notices.append(self.answers.crash_notice(request, exit_code))
            self._told_of_crash.add(request.session_id)
        if charged >= self.settings.max_attempts:
            error = (
                f"Error: request abandoned after {charged} attempts: "
                f"session thread closed unexpectedly: {exit_code}"
            )
            dead = self.answers.dead_letter(
                request, work.tp, work.offset, error, charged, exit_code
            )
            self.log.error("runner.request.dead_lettered", activity_id=request.activity_id)
            metrics.DEAD_LETTERS.labels(self.platform_id, "crash").inc()
            self._complete(
                work, [*notices, dead, self.answers.error(request, error)], "dead_letter"
            )
            return
        if notices:
            self._committer.add(Completion(None, None, notices))
        async with self.gate.exclusive(ISOLATION_S) as alone:
            # Make the neighbours' answers and the notice durable before the suspect runs.
            await self._committer.flush()
            if alone:
                await self._retrying(lambda: self.attempts.charge(request.activity_id))
            task = asyncio.create_task(self._invoke(work, attempt))
            try:
                await asyncio.wait({task}, timeout=ISOLATION_S)
            except asyncio.CancelledError:
                task.cancel()
                raise
            if alone and not task.done():
                # Others may run beside it from now on: a crash would name no culprit.
                await self._retrying(lambda: self.attempts.charge(request.activity_id, -1))
            self.log.info("runner.request.isolated", alone=alone, finished=task.done())
        try:
            records, outcome = await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        self._complete(work, records, outcome)
        await self._committer.flush()

    async def _retrying(self, call: Callable[[], Awaitable[int]]) -> int:
        """A Redis call of the crash accounting; waits out an outage rather than guessing."""
        delay = RETRY_BASE_S
        while True:
            try:
                return await call()
            except Exception as exc:
                self.log.warning("runner.attempts.unavailable", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _last_exit_code(self) -> str:
        try:
            return await self.attempts.last_exit_code()
        except Exception:
            return "unknown"

    async def _invoke(self, work: Work, attempt: int) -> tuple[list[Outgoing], str]:
        """Run the handler: (records to send, outcome label)."""
        tracing = self.tracing
        if tracing is None:
            return await self._run_handler(work, work.request, attempt)
        request = work.request
        span = tracing.start("sockethub.runner.handle", request.traceparent, {
            "sockethub.platform": self.platform_id, "sockethub.verb": request.verb,
            "sockethub.activity_id": request.activity_id, "sockethub.attempt": attempt,
        })  # fmt: skip
        # The answers carry the handle span's context: the gateway's ack is its child.
        work.traceparent = tracing.traceparent(span)
        try:
            records, outcome = await self._run_handler(
                work, dataclasses.replace(request, traceparent=work.traceparent), attempt
            )
        except BaseException as exc:
            tracing.end(span, exc)
            raise
        tracing.end(span, outcome if outcome in ("error", "timeout") else None, outcome=outcome)
        return records, outcome

    async def _run_handler(
        self, work: Work, request: Request, attempt: int
    ) -> tuple[list[Outgoing], str]:
        handler = self.handlers.get(request.verb)
        if handler is None:
            error = f"Error: {request.verb} is not supported by the {self.platform_id} platform"
            return [self.answers.error(request, error)], "error"
        delay = RETRY_BASE_S
        retries = self.settings.transient_retries
        for tried in range(retries + 1):
            ctx = Context(request, platform=self.platform_id, attempt=attempt,
                          credentials=self.credentials, emitter=self,
                          partition=work.tp.partition)  # fmt: skip
            deadline = asyncio.timeout(self.settings.job_timeout)
            started = time.perf_counter()
            try:
                async with deadline:
                    value = await handler(ctx)
            except TransientError as exc:
                if tried == retries:
                    return [self.answers.error(request, describe(exc))], "error"
                self.log.info("runner.request.transient", activity_id=request.activity_id,
                              error=str(exc), retry_in=delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay *= 2
                continue
            except TimeoutError as exc:
                if deadline.expired():
                    self.log.warning("runner.request.timeout", activity_id=request.activity_id)
                    return [], "timeout"
                return [self.answers.error(request, describe(exc))], "error"
            except Exception as exc:
                return [self.answers.error(request, describe(exc))], "error"
            finally:
                self._handle_seconds(request.verb).observe(time.perf_counter() - started)
            return [self.answers.result(request, value)], "ok"
        raise AssertionError("unreachable")

    def _complete(self, work: Work, records: list[Outgoing], outcome: str) -> None:
        assert self._committer is not None
        self._requests(outcome).inc()
        counted = work.request.kind is RequestKind.ACTIVITY and outcome != "skipped"
        activity_id = work.request.activity_id if counted else None
        completion = Completion(work.tp, work.offset, records, activity_id)
        if self.tracing is not None and work.traceparent is not None:
            completion.committed = self._reply_span(self.tracing, work, len(records))
        self._committer.add(completion)

    def _reply_span(
        self, tracing: Tracing, work: Work, records: int
    ) -> Callable[[BaseException | None], None]:
        """The reply span: from the answer's completion to its commit (the transaction
        that makes it readable to the gateway)."""
        span = tracing.start("sockethub.runner.reply", work.traceparent, {
            "sockethub.platform": self.platform_id,
            "sockethub.activity_id": work.request.activity_id, "sockethub.records": records,
        })  # fmt: skip

        def committed(error: BaseException | None) -> None:
            tracing.end(span, error)

        return committed

    def _requests(self, outcome: str) -> Any:
        """The REQUESTS counter child for an outcome (``labels()`` is not free per request)."""
        child = self._metric_children.get(("requests", outcome))
        if child is None:
            child = self._metric_children[("requests", outcome)] = metrics.REQUESTS.labels(
                self.platform_id, outcome
            )
        return child

    def _handle_seconds(self, verb: str) -> Any:
        child = self._metric_children.get(("seconds", verb))
        if child is None:
            child = self._metric_children[("seconds", verb)] = metrics.HANDLE_SECONDS.labels(
                self.platform_id, verb
            )
        return child

    # -- Emitter ------------------------------------------------------------------------------

    def emit(
        self,
        session_id: str,
        activity: JSONDict,
        *,
        verb: str | None = None,
        error: str | None = None,
        reply_route: str | None = None,
    ) -> bool:
        """An unsolicited event for a session seen by this runner (or whose ``reply_route``
        the platform recorded); sent with the next commit."""
        route = reply_route or self._routes.get(session_id)
        if route is None or self._committer is None:
            return False
        event = self.answers.event(session_id, route, activity, verb=verb, error=error)
        self._committer.add(Completion(None, None, [event]))
        return True
