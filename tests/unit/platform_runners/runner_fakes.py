"""In-process fakes for the Runner: Kafka (a consumer, a transactional producer and an admin
client over one shared broker state), the attempt counters, the credential store and a
scripted platform, with a Harness that wires them to a Runner. No broker, no Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka import ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import REGISTRY

from platform_runners.attempts import DONE, Attempts
from platform_runners.platform import (
    Context,
    Emitter,
    Handler,
    Platform,
    PlatformError,
    TransientError,
)
from platform_runners.runner import KafkaFactories, Runner
from platform_runners.settings import RunnerSettings
from schemas.codec import Codec
from schemas.envelopes import (
    JSONDict,
    Record,
    Request,
    RequestKind,
    Result,
)
from schemas.platform_registry import PlatformDescriptor, PlatformRegistry, canonical_context
from schemas.topics import TopicLayout
from sockethub.runtime.codecs import codec_from_settings


def dead_letters_total(reason: str) -> float:
    """``sockethub_runner_dead_letters_total`` for the dummy platform (process-wide)."""
    value = REGISTRY.get_sample_value(
        "sockethub_runner_dead_letters_total", {"platform": "dummy", "reason": reason}
    )
    return value or 0.0


REPLIES = "t.replies.gw"
EXIT_CODE = "137"

# -- Kafka ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class FakeKafka:
    """The broker as a runner sees it: the request partitions, the group's committed offsets
    (with metadata) and the records of committed transactions, shared by every runner."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic = topic
        self.logs: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {
            TopicPartition(topic, p): [] for p in range(partitions)
        }
        self.committed: dict[TopicPartition, OffsetAndMetadata] = {}
        self.produced: list[Sent] = []
        self.consumers: list[FakeConsumer] = []
        self.offset_fetches = 0
        self.unavailable = 0
        """Offset fetches still to answer without partitions, as a broker does while the
        group's coordinator is loading or has moved."""

    def append(
        self, partition: int, value: bytes, headers: list[tuple[str, bytes]], key: bytes | None
    ) -> int:
        tp = TopicPartition(self.topic, partition)
        offset = len(self.logs[tp])
        self.logs[tp].append(
            ConsumerRecord(
                topic=self.topic,
                partition=partition,
                offset=offset,
                timestamp=int(time.time() * 1000),
                timestamp_type=0,
                key=key,
                value=value,
                checksum=None,
                serialized_key_size=len(key or b""),
                serialized_value_size=len(value),
                headers=headers,
            )
        )
        return offset

    def factories(self, owns: set[int] | None = None, batch: int = 500) -> KafkaFactories:
        def consumer(**_: Any) -> Any:
            fake = FakeConsumer(self, owns, batch)
            self.consumers.append(fake)
            return fake

        return KafkaFactories(
            producer=lambda **_: cast(Any, FakeProducer(self)),
            consumer=consumer,
            admin=lambda **_: cast(Any, FakeAdmin(self)),
        )


class FakeConsumer:
    """Eager rebalances like aiokafka's: everything is revoked, then the new set assigned."""

    def __init__(self, kafka: FakeKafka, owns: set[int] | None, batch: int) -> None:
        self.kafka = kafka
        self.owns = owns
        self.batch = batch
        self.listener: ConsumerRebalanceListener | None = None
        self.assigned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.resumed: list[TopicPartition] = []

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        assert topics == [self.kafka.topic]
        self.listener = listener

    async def start(self) -> None:
        owned = self.owns if self.owns is not None else {tp.partition for tp in self.kafka.logs}
        await self._assign({TopicPartition(self.kafka.topic, p) for p in owned})

    async def stop(self) -> None:
        pass

    async def _assign(self, tps: set[TopicPartition]) -> None:
        assert self.listener is not None
        self.assigned = set(tps)
        for tp in tps:
            committed = self.kafka.committed.get(tp)
            self.positions[tp] = committed.offset if committed else 0
        await self.listener.on_partitions_assigned(set(tps))

    async def rebalance(self, keep: set[int]) -> None:
        assert self.listener is not None
        await self.listener.on_partitions_revoked(set(self.assigned))
        self.assigned, self.positions, self.paused = set(), {}, set()
        await self._assign({TopicPartition(self.kafka.topic, p) for p in keep})

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)
        self.resumed.extend(tps)

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        self.kafka.committed.update(offsets)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.kafka.logs[tp]) for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        budget = min(max_records or self.batch, self.batch)
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for tp in sorted(self.assigned, key=lambda tp: tp.partition):
            if tp in self.paused or budget <= 0:
                continue
            position = self.positions[tp]
            records = self.kafka.logs[tp][position : position + budget]
            if records:
                batch[tp] = records
                self.positions[tp] = position + len(records)
                budget -= len(records)
        await asyncio.sleep(0 if batch else 0.005)  # an empty fetch waits at the broker
        return batch


class FakeProducer:
    """Transactional: a transaction's records and offsets reach the broker state together on
    commit, and never on abort. Without a transaction, a send is at once acknowledged."""

    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.open = False
        self._records: list[Sent] = []
        self._offsets: dict[TopicPartition, OffsetAndMetadata] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def begin_transaction(self) -> None:
        assert not self.open
        self.open = True

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[None]:
        sent = Sent(topic, key, value, list(headers or []))
        (self._records if self.open else self.kafka.produced).append(sent)
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata], group_id: str
    ) -> None:
        assert self.open and group_id.endswith(".runners.dummy")
        self._offsets.update(offsets)

    async def commit_transaction(self) -> None:
        assert self.open
        self.kafka.produced.extend(self._records)
        self.kafka.committed.update(self._offsets)
        await self.abort_transaction()

    async def abort_transaction(self) -> None:
        self.open = False
        self._records, self._offsets = [], {}


class FakeAdmin:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_consumer_group_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        assert group_id.endswith(".runners.dummy") and partitions
        self.kafka.offset_fetches += 1
        if self.kafka.unavailable:
            self.kafka.unavailable -= 1
            return {}
        none = OffsetAndMetadata(-1, "")
        return {tp: self.kafka.committed.get(tp, none) for tp in partitions}


# -- Redis-backed collaborators -------------------------------------------------------------


class FakeAttempts:
    """The attempt counters; they outlive a runner, as Redis does."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.charges: Counter[str] = Counter()
        self.abandoned: list[str] = []
        self.done_ids: list[str] = []

    async def begin(self, activity_id: str) -> int:
        self.counts[activity_id] += 1
        return self.counts[activity_id]

    async def abandon(self, activity_ids: Iterable[str]) -> None:
        for activity_id in activity_ids:
            self.counts[activity_id] -= 1
            self.abandoned.append(activity_id)

    async def done(self, activity_ids: Iterable[str]) -> None:
        for activity_id in activity_ids:
            self.counts[activity_id] = DONE
            self.done_ids.append(activity_id)

    async def charged(self, activity_id: str) -> int:
        return self.charges[activity_id]

    async def charge(self, activity_id: str, delta: int = 1) -> int:
        self.charges[activity_id] += delta
        return self.charges[activity_id]

    async def last_exit_code(self) -> str:
        return EXIT_CODE


class FakeCredentials:
    def __init__(self, stored: dict[tuple[str, str, str], JSONDict]) -> None:
        self.stored = stored

    async def get(self, session_id: str, platform: str, actor_id: str) -> JSONDict | None:
        return self.stored.get((session_id, platform, actor_id))


# -- the platform ---------------------------------------------------------------------------


@dataclass
class Script:
    """What the probe platform's handlers do and what they saw, shared across runners."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    running: Counter[str] = field(default_factory=Counter)
    most_at_once: int = 0
    most_per_session: int = 0
    flaky_failures: int = 0
    flaky_calls: int = 0
    assigned: list[set[int]] = field(default_factory=list)
    revoked: list[set[int]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


class Probe(Platform):
    name = "dummy"

    def __init__(
        self,
        settings: RunnerSettings,
        descriptor: PlatformDescriptor,
        emitter: Emitter,
        script: Script,
    ) -> None:
        super().__init__(settings, descriptor, emitter)
        self.script = script

    def handlers(self) -> Mapping[str, Handler]:
        verbs: dict[str, Callable[[Context], Any]] = {
            "echo": self.echo,
            "hold": self.hold,
            "fail": self.fail,
            "flaky": self.flaky,
            "stall": self.stall,
            "whoami": self.whoami,
            "announce": self.announce,
        }
        return {verb: self._watched(handler) for verb, handler in verbs.items()}

    def _watched(self, handler: Callable[[Context], Any]) -> Handler:
        async def watched(ctx: Context) -> JSONDict | None:
            script = self.script
            script.started.append(str(ctx.request.correlation_id))
            script.attempts[str(ctx.request.correlation_id)] = ctx.attempt
            script.running[ctx.session_id] += 1
            script.most_at_once = max(script.most_at_once, sum(script.running.values()))
            script.most_per_session = max(script.most_per_session, script.running[ctx.session_id])
            try:
                result: JSONDict | None = await handler(ctx)
                return result
            finally:
                script.running[ctx.session_id] -= 1

        return watched

    async def echo(self, ctx: Context) -> JSONDict | None:
        for _ in range(int(ctx.activity["object"]["content"]) % 4):
            await asyncio.sleep(0.001)  # unequal work, so that sessions overtake each other
        return ctx.activity

    async def hold(self, ctx: Context) -> JSONDict | None:
        await self.script.release.wait()
        return None

    async def fail(self, ctx: Context) -> JSONDict | None:
        raise PlatformError("the platform refused")

    async def flaky(self, ctx: Context) -> JSONDict | None:
        self.script.flaky_calls += 1
        if self.script.flaky_calls <= self.script.flaky_failures:
            raise TransientError("try again")
        return ctx.activity

    async def stall(self, ctx: Context) -> JSONDict | None:
        await asyncio.sleep(3600)
        return None

    async def whoami(self, ctx: Context) -> JSONDict | None:
        credentials = await ctx.credentials()
        return {"type": "whoami", "object": credentials["object"]}

    async def announce(self, ctx: Context) -> JSONDict | None:
        assert ctx.emit(ctx.session_id, {"type": "announce", "object": {"content": "hear ye"}})
        return ctx.activity

    async def session_closed(self, session_id: str) -> None:
        self.script.closed.append(session_id)

    async def partitions_assigned(self, partitions: set[int]) -> None:
        self.script.assigned.append(partitions)

    async def partitions_revoked(self, partitions: set[int]) -> None:
        self.script.revoked.append(partitions)


# -- the harness ----------------------------------------------------------------------------


@dataclass
class Running:
    runner: Runner
    consumer: FakeConsumer
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.stop_event.set()
        try:
            await asyncio.wait_for(self.task, 30)
        finally:
            await self.runner.close()


class Harness:
    def __init__(self, **overrides: Any) -> None:
        values: dict[str, Any] = {
            "kafka_bootstrap": "127.0.0.1:9",
            "redis_url": "redis://127.0.0.1:9/0",
            "schema_registry_url": None,
            "log_keys": None,
            "secret": None,
            "topic_prefix": "t",
            "request_partitions": 2,
            "concurrency": 8,
            "shutdown_grace": 0.2,
            "kafka_retry_backoff_ms": 1,
        }
        values.update(overrides)
        self.settings = RunnerSettings(**values)
        layout = TopicLayout(self.settings)
        self.dead_letters = layout.dead_letters("dummy")
        self.kafka = FakeKafka(layout.requests("dummy"), self.settings.request_partitions)
        self.attempts = FakeAttempts()
        self.credentials = FakeCredentials({})
        self.script = Script()
        self.codec: Codec = codec_from_settings(self.settings)
        descriptor = PlatformRegistry(["dummy"]).get("dummy")
        assert descriptor is not None
        self.descriptor = descriptor
        self.running: list[Running] = []
        self.tracing: Any = None
        """A :class:`sockethub.runtime.otel.Tracing` for the runners started next."""

    def tp(self, partition: int = 0) -> TopicPartition:
        return TopicPartition(self.kafka.topic, partition)

    def request(
        self,
        session: str,
        n: int,
        verb: str = "echo",
        *,
        partition: int = 0,
        kind: RequestKind = RequestKind.ACTIVITY,
        reply_route: str = REPLIES,
        codec: Codec | None = None,
    ) -> Request:
        activity: JSONDict = {
            "@context": canonical_context("dummy"),
            "type": verb,
            "actor": {"id": f"{session}@example", "type": "person"},
            "object": {"type": "message", "content": str(n)},
        }
        request = Request(
            session_id=session,
            reply_route=reply_route,
            platform="dummy",
            verb=verb,
            activity=activity,
            correlation_id=f"{session}-{n}",
            kind=kind,
        )
        value, headers = (codec or self.codec).encode(request)
        self.kafka.append(partition, value, headers, session.encode())
        return request

    async def start(self, *, owns: set[int] | None = None, batch: int = 500) -> Running:
        def factory(
            settings: RunnerSettings, descriptor: PlatformDescriptor, emitter: Emitter
        ) -> Platform:
            return Probe(settings, descriptor, emitter, self.script)

        runner = Runner(
            self.settings,
            factory,
            self.descriptor,
            credentials=self.credentials,
            attempts=cast(Attempts, self.attempts),
            kafka=self.kafka.factories(owns, batch),
            tracing=self.tracing,
        )
        await runner.start()
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        running = Running(runner, self.kafka.consumers[-1], stop, task)
        self.running.append(running)
        return running

    async def stop_all(self) -> None:
        for running in self.running:
            if not running.task.done():
                await running.stop()

    def replies(self) -> list[Record]:
        return [
            self.codec.decode(s.value, s.headers) for s in self.kafka.produced if s.topic == REPLIES
        ]

    def results(self) -> list[Result]:
        return [r for r in self.replies() if isinstance(r, Result)]

    def answered(self) -> list[str]:
        return [str(r.correlation_id) for r in self.results()]

    def result(self, correlation_id: str) -> Result:
        (found,) = [r for r in self.results() if r.correlation_id == correlation_id]
        return found

    def committed(self, partition: int = 0) -> OffsetAndMetadata | None:
        return self.kafka.committed.get(self.tp(partition))


async def eventually(check: Callable[[], bool], within: float = 20.0) -> None:
    """Wait until ``check()`` holds; generous, for a loaded machine."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polling the fakes' plain state
            await asyncio.sleep(0.005)
