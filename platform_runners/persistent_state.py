"""Desired state of persistent connections, kept in the compacted ``connections`` topic.

One record per connection: the key names the connection (actor id and scope),
the value says who is attached and what was joined; a tombstone (no value)
says the connection was closed on purpose. The record goes to the same
partition number as the request that opened the connection, so the runner
that owns request partition ``p`` finds its connections in partition ``p``.

Values are JSON, never credentials: they name the session whose stored
credentials to use, not the secret. They still say who talks where (sessions, servers,
nicks, rooms), so with ``SOCKETHUB_LOG_KEYS`` set they are sealed like request payloads,
bound to their topic and key; a runner with keys then ignores unsealed or moved records.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from schemas.envelopes import JSONDict
from schemas.logcrypt import CodecError, KeyRing, associated_data
from schemas.topics import TopicLayout
from sockethub.runtime.kafka_clients import client_kwargs, log_reader
from sockethub.runtime.settings import CommonSettings

log = structlog.get_logger("platform_runners.persistent_state")

STATE_VERSION = 1
LOAD_TIMEOUT_S = 30.0


class StateStore(Protocol):
    """Where desired connection state lives (Kafka in a runner, memory in unit tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def put(self, partition: int, key: bytes, value: JSONDict | None) -> None:
        """Record ``value`` for ``key`` (None: a tombstone)."""

    async def load(self, partitions: set[int]) -> dict[bytes, JSONDict]:
        """The live (not tombstoned) records of these partitions, latest value per key."""


class StateSealError(ValueError):
    """A state record is sealed without a key ring here, or unsealed where one is required."""


def _state_aad(topic: str, key: bytes) -> bytes:
    return associated_data("connections", topic, key.decode("utf-8", "replace"))


def _json(value: JSONDict) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def encode_state(
    value: JSONDict, *, ring: KeyRing | None = None, topic: str = "", key: bytes = b""
) -> bytes:
    """The record value: plain JSON, or with ``ring`` a JSON envelope of the sealed JSON."""
    plain = _json({**value, "v": STATE_VERSION})
    if ring is None:
        return plain
    key_id, sealed = ring.encrypt(plain, _state_aad(topic, key))
    return _json({"v": STATE_VERSION, "kid": key_id, "sealed": base64.b64encode(sealed).decode()})


def decode_state(
    raw: bytes | None, *, ring: KeyRing | None = None, topic: str = "", key: bytes = b""
) -> JSONDict | None:
    """The state in a record value; None for a tombstone or another version.

    Raises ``ValueError`` (malformed, or sealed state without a ring, or plain state with
    one) or ``CodecError`` (a seal that does not open for this topic and key)."""
    if raw is None:
        return None
    value = json.loads(raw)
    if not isinstance(value, dict) or value.get("v") != STATE_VERSION:
        return None
    sealed = value.get("sealed")
    if sealed is None:
        if ring is not None:
            raise StateSealError("unsealed connection state where payload keys are set")
        return value
    if ring is None:
        raise StateSealError("sealed connection state, and no payload keys to open it")
    key_id = value.get("kid")
    if not isinstance(key_id, str) or not isinstance(sealed, str):
        raise StateSealError("malformed sealed connection state")
    try:
        data = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise StateSealError("malformed sealed connection state") from None
    return decode_state(ring.decrypt(key_id, data, _state_aad(topic, key)))


class MemoryStateStore:
    """An in-process store with the same semantics (per-partition, latest value wins)."""

    def __init__(self) -> None:
        self.records: dict[int, dict[bytes, JSONDict]] = {}
        self.writes = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def put(self, partition: int, key: bytes, value: JSONDict | None) -> None:
        self.writes += 1
        part = self.records.setdefault(partition, {})
        if value is None:
            part.pop(key, None)
        else:
            part[key] = json.loads(encode_state(value))

    async def load(self, partitions: set[int]) -> dict[bytes, JSONDict]:
        found: dict[bytes, JSONDict] = {}
        for partition in partitions:
            found.update(self.records.get(partition, {}))
        return found


class KafkaStateStore:
    """The ``<prefix>.connections.<platform>`` topic: an idempotent producer for writes and a
    short-lived group-less consumer that reads whole partitions on assignment."""

    def __init__(self, settings: CommonSettings, platform: str) -> None:
        self._settings = settings
        self.topic = TopicLayout(settings).connections(platform)
        self._ring = KeyRing.from_secret(settings.log_keys)
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **client_kwargs(self._settings), acks="all", enable_idempotence=True, linger_ms=0
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def put(self, partition: int, key: bytes, value: JSONDict | None) -> None:
        if self._producer is None:
            raise RuntimeError("state store not started")
        data = (
            None
            if value is None
            else encode_state(value, ring=self._ring, topic=self.topic, key=key)
        )
        await self._producer.send_and_wait(self.topic, data, key=key, partition=partition)

    async def load(self, partitions: set[int]) -> dict[bytes, JSONDict]:
        if not partitions:
            return {}
        # The store is written outside transactions: nothing to wait for.
        consumer = log_reader(self._settings, start="earliest", committed_only=False)
        await consumer.start()
        try:
            async with asyncio.timeout(LOAD_TIMEOUT_S):
                return await self._read(consumer, partitions)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def _read(
        self, consumer: AIOKafkaConsumer, partitions: set[int]
    ) -> dict[bytes, JSONDict]:
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        latest: dict[bytes, JSONDict | None] = {}
        started = time.monotonic()
        while not await self._caught_up(consumer, ends):
            batch = await consumer.getmany(*tps, timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    if message.key is None:
                        continue
                    try:
                        latest[message.key] = decode_state(
                            message.value, ring=self._ring, topic=self.topic, key=message.key
                        )
                    except (ValueError, CodecError) as exc:
                        # The key's earlier value stays: a forged record must not erase it.
                        log.warning(
                            "persistent.state.undecodable",
                            offset=message.offset,
                            error=type(exc).__name__,
                        )
        log.info(
            "persistent.state.loaded",
            partitions=sorted(partitions),
            live=sum(v is not None for v in latest.values()),
            seconds=round(time.monotonic() - started, 3),
        )
        return {k: v for k, v in latest.items() if v is not None}
