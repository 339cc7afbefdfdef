"""The gateway's Kafka side: produce requests, and read this gateway's own reply topic.

Every gateway instance reads only ``layout.replies(gateway_id)``, so it gets
the results and platform events of its own sessions and nothing else; the
runners route each answer with the request's ``reply_route``. The reply
consumer has no consumer group: it is assigned every partition of its topic
and starts at the end (a fresh process holds no sessions that could be waiting
for older records), reading committed records only, because runners answer in
Kafka transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from schemas.codec import CodecError
from schemas.envelopes import PlatformEvent, Record, Request, Result
from schemas.topics import MAX_RECORD_BYTES, TopicLayout
from sockethub.runtime.adaptive import ProducerLinger
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.kafka_clients import (
    PRODUCER_BATCH_BYTES,
    CachedPartitioner,
    client_kwargs,
    ensure_topics,
    fetch_kwargs,
)
from sockethub.runtime.record_age import observe_ages

STOP_TIMEOUT = 10.0
"""Seconds each Kafka client gets to close on shutdown."""

log = structlog.get_logger("gateway.kafka")

EventHandler = Callable[[PlatformEvent], Awaitable[None]]

REPLY_POSITION: ContextVar[str | None] = ContextVar("reply_position", default=None)
"""While a reply record is dispatched: its position in the log, ``topic|partition|offset``
(the offset a recovering client names, :mod:`gateway.recovery`)."""


def position(topic: str, partition: int, offset: int) -> str:
    return f"{topic}|{partition}|{offset}"


def parse_position(text: object) -> tuple[str, int, int] | None:
    """``(topic, partition, offset)`` of a position a client sent back; None if malformed."""
    if not isinstance(text, str) or len(text) > 400:
        return None
    parts = text.rsplit("|", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


class Awaiting(Protocol):
    """A produced request waiting for its result (:class:`gateway.requests.PendingRequest`).

    The reply reader awaits :meth:`resolve` itself, so answering a client needs no task
    of its own.
    """

    @property
    def request(self) -> Request: ...

    async def resolve(self, result: Result) -> None:
        """The result has come; the bridge has already let the request go."""

    def delivery_done(self, delivery: asyncio.Future[object]) -> None:
        """The record's delivery has settled (successfully or not)."""

    def drop(self) -> None:
        """No result will come: the bridge stops."""


class DeliveryError(Exception):
    """A request could not be written to Kafka."""


class KafkaBridge:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        gateway_id: str,
        platforms: list[str],
        metrics: GatewayMetrics,
    ) -> None:
        self._settings = settings
        self.layout = TopicLayout(settings)
        self.reply_topic = self.layout.replies(gateway_id)
        self._platforms = platforms
        # Request topic names are built and checked once per platform, not per request.
        self._request_topics = {p: self.layout.requests(p) for p in platforms}
        self._gateway_id = gateway_id
        self._metrics = metrics
        self._codec = codec_from_settings(settings)
        self._producer: AIOKafkaProducer | None = None
        self._linger: ProducerLinger | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, Awaiting] = {}
        self._on_event: EventHandler | None = None
        self.ready = False

    def on_event(self, handler: EventHandler) -> None:
        self._on_event = handler

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        await ensure_topics(self._settings, self.layout.specs(self._platforms, [self._gateway_id]))
        await self._codec.start()
        kwargs = client_kwargs(self._settings)
        self._producer = AIOKafkaProducer(
            **kwargs,
            acks="all",
            enable_idempotence=True,
            max_request_size=MAX_RECORD_BYTES,
            linger_ms=self._settings.produce_linger_ms,
            max_batch_size=PRODUCER_BATCH_BYTES,
            partitioner=CachedPartitioner(),
        )
        await self._producer.start()
        self._linger = ProducerLinger(
            self._producer,
            linger_ms=self._settings.produce_linger_ms,
            batch_above_rate=self._settings.kafka_batch_above_rate,
        )
        consumer = AIOKafkaConsumer(
            **kwargs,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="latest",
            # Runners commit their answers a transaction at a time, and a read_committed
            # fetch sees none of them before the commit: a small minimum returns at the
            # commit, not up to kafka_fetch_wait_ms later.
            **fetch_kwargs(self._settings, min_bytes=self._settings.reply_fetch_min_bytes),
            max_partition_fetch_bytes=MAX_RECORD_BYTES,
        )
        await consumer.start()
        self._consumer = consumer
        # The producer's metadata call waits for the (possibly just created) topic.
        partitions = await self._producer.partitions_for(self.reply_topic)
        if not partitions:
            raise RuntimeError(f"reply topic {self.reply_topic} has no partitions")
        assigned = [TopicPartition(self.reply_topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve the end offsets now, before any request goes out
            await consumer.position(tp)
        self._task = asyncio.create_task(self._consume(), name="gateway-replies")
        self.ready = True
        log.info("kafka_bridge_started", reply_topic=self.reply_topic, partitions=len(assigned))

    async def stop(self) -> None:
        self.ready = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pending in list(self._pending.values()):
            pending.drop()
        self._pending.clear()
        # Bounded: with the broker gone, a producer's final flush would retry forever.
        for client in (self._producer, self._consumer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), STOP_TIMEOUT)
        await self._codec.close()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def decode(self, value: bytes, headers: Sequence[tuple[str, bytes]]) -> Record:
        return await self._codec.decode_async(value, headers)

    async def positions(self) -> dict[int, int]:
        """The reply reader's next offset per partition: records of a session that starts
        (or resumes) here now can only come at or after these."""
        if self._consumer is None:
            raise DeliveryError("the gateway is not connected to Kafka")
        return {
            tp.partition: await self._consumer.position(tp) for tp in self._consumer.assignment()
        }

    # -- producing ---------------------------------------------------------

    async def produce(self, topic: str, record: Record, key: str) -> asyncio.Future[object]:
        """Queue ``record`` in the producer; the returned future resolves on delivery.

        Awaiting this call keeps records of one caller in order (the producer's
        accumulator is FIFO per partition and idempotence keeps retries in order).
        """
        if self._producer is None:
            raise DeliveryError("the gateway is not connected to Kafka")
        if self._linger is not None:
            self._linger.record()
        try:
            value, headers = self._codec.encode(record)
            future: asyncio.Future[object] = await self._producer.send(
                topic, value, key=key.encode(), headers=headers
            )
        except (KafkaError, CodecError) as exc:
            self._metrics.kafka_errors.inc()
            log.warning("kafka_produce_failed", topic=topic, error=type(exc).__name__)
            raise DeliveryError(str(exc)) from exc
        return future

    async def submit(self, pending: Awaiting, key: str) -> None:
        """Produce ``pending``'s request under ``key``.

        It is registered before producing, so a fast reply never finds nobody waiting,
        and stays registered until its result comes or it is :meth:`forget`-ten. A
        delivery that fails later reaches it through ``delivery_done``.
        """
        request = pending.request
        activity_id = request.activity_id
        self._pending[activity_id] = pending
        try:
            topic = self._request_topics.get(request.platform) or self.layout.requests(
                request.platform
            )
            delivery = await self.produce(topic, request, key)
        except BaseException:
            if self._pending.get(activity_id) is pending:
                del self._pending[activity_id]
            raise
        delivery.add_done_callback(pending.delivery_done)

    def forget(self, activity_id: str) -> bool:
        """Stop waiting for a result; True if it had not come."""
        return self._pending.pop(activity_id, None) is not None

    # -- consuming ---------------------------------------------------------

    async def _consume(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.kafka_errors.inc()
                log.warning("kafka_consume_failed", error=type(exc).__name__, detail=str(exc))
                await asyncio.sleep(1)
                continue
            now = time.time()
            for records in batches.values():
                observe_ages(self._metrics.reply_seconds, records, now)
                for message in records:
                    if message.value is None:
                        continue
                    REPLY_POSITION.set(position(message.topic, message.partition, message.offset))
                    try:
                        await self._dispatch(message.value, message.headers)
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # one bad record must not stop the reply consumer
                        self._metrics.kafka_errors.inc()
                        log.exception("reply_dispatch_failed", topic=self.reply_topic)

    async def _dispatch(self, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        try:
            record = await self._codec.decode_async(value, headers)
        except CodecError as exc:
            self._metrics.kafka_errors.inc()
            log.warning("reply_decode_failed", topic=self.reply_topic, error=str(exc))
            return
        if isinstance(record, Result):
            pending = self._pending.pop(record.activity_id, None)
            if pending is None:
                log.info("reply_unclaimed", activity_id=record.activity_id)
                return
            try:
                await pending.resolve(record)
            except Exception:
                log.exception("result_dispatch_failed", platform=record.platform)
        elif isinstance(record, PlatformEvent):
            if self._on_event is not None:
                try:
                    await self._on_event(record)
                except Exception:
                    log.exception("platform_event_dispatch_failed", platform=record.platform)
        else:
            log.warning("reply_topic_unexpected_record", kind=type(record).__name__)
