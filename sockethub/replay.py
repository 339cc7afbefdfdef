"""``sockethub replay``: a session's, actor's or platform's history, read from the log.

Requests, results and platform events (and the redacted credentials records)
are read from every request, reply and audit topic of one topic prefix, with
``read_committed`` isolation, filtered, and printed in time order. It never
writes unless ``--to-topic`` is given, and then only re-drives the selected
requests into that topic, for a dry run against a test deployment. A topic that
this deployment's own processes consume (its request, reply and connection
topics) is refused unless ``--force`` is given: re-driven requests there would
be run, or answered, again for real.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from schemas.codec import CodecError, MissingKeyError, UnsealedRecordError
from schemas.envelopes import PlatformEvent, Record, Request, RequestKind, Result
from schemas.topics import TopicLayout
from sockethub.devstack.errors import StackError
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.kafka_clients import client_kwargs, log_reader
from sockethub.runtime.settings import CommonSettings

RecordType = Literal["request", "result", "event", "credentials", "operation"]
RECORD_TYPES: tuple[RecordType, ...] = ("request", "result", "event", "credentials", "operation")
HEADER_OPERATION = "sockethub-operation"
"""Marks an audit record of an operator's action (``sockethub dlq``): shown as type
``operation``, never re-driven."""


@dataclass(frozen=True)
class Filters:
    session: str | None = None
    actor: str | None = None
    platform: str | None = None
    types: frozenset[str] = frozenset(RECORD_TYPES)
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: Entry) -> bool:
        if entry.problem is not None:
            # Unreadable without its key: only the record key (a session id, or the actor
            # id for persistent platforms) and the time are known.
            wanted = {v for v in (self.session, self.actor) if v is not None}
            return (not wanted or entry.key in wanted) and self._fits_time(entry)
        if self.session is not None and entry.session_id != self.session:
            return False
        if self.platform is not None and entry.platform != self.platform:
            return False
        if entry.type not in self.types:
            return False
        if not self._fits_time(entry):
            return False
        return self.actor is None or self.actor in entry.actor_ids()

    def _fits_time(self, entry: Entry) -> bool:
        if self.since is not None and entry.when < self.since:
            return False
        return self.until is None or entry.when <= self.until


@dataclass
class Entry:
    """One log record as the replay tool shows it."""

    topic: str
    partition: int
    offset: int
    when: datetime
    type: str
    session_id: str | None
    platform: str | None
    verb: str | None
    record_id: str | None
    activity: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    correlation_id: str | None = None
    record: Record | None = None
    problem: str | None = None
    """Why the record could not be read (a missing key), instead of its content."""
    key: str | None = None
    """The Kafka record key (shown for records that could not be read)."""
    headers: dict[str, str] = field(default_factory=dict)
    """The Kafka record headers, as text."""
    logged_at: datetime | None = None
    """The Kafka record's timestamp: when it was produced (``when`` is the record's own time)."""

    def actor_ids(self) -> set[str]:
        ids = set()
        for role in ("actor", "target"):
            value = self.activity.get(role)
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                ids.add(value["id"])
        return ids

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.when.isoformat(),
            "type": self.type,
            "session_id": self.session_id,
            "platform": self.platform,
            "verb": self.verb,
            "id": self.record_id,
            "correlation_id": self.correlation_id,
            "activity": self.activity or None,
            "error": self.error,
            "problem": self.problem,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }


def entry_from(record: Record, topic: str, partition: int, offset: int) -> Entry:
    if isinstance(record, Request):
        kind = "credentials" if record.kind is RequestKind.CREDENTIALS else "request"
        if record.kind is RequestKind.SESSION_CLOSED:
            kind = "request"
        return Entry(
            topic,
            partition,
            offset,
            record.created_at,
            kind,
            record.session_id,
            record.platform,
            record.verb,
            record.activity_id,
            record.activity,
            None,
            record.correlation_id,
            record,
        )
    if isinstance(record, Result):
        return Entry(
            topic,
            partition,
            offset,
            record.completed_at,
            "result",
            record.session_id,
            record.platform,
            record.verb,
            record.activity_id,
            record.activity,
            record.error,
            record.correlation_id,
            record,
        )
    assert isinstance(record, PlatformEvent)
    return Entry(
        topic,
        partition,
        offset,
        record.created_at,
        "event",
        record.session_id,
        record.platform,
        record.verb,
        record.event_id,
        record.activity,
        record.error,
        None,
        record,
    )


def log_topics(layout: TopicLayout, existing: Iterable[str], platform: str | None) -> list[str]:
    """The request, reply and audit topics of this prefix (one platform's requests only,
    when filtering by platform)."""
    prefix = re.escape(layout.prefix)
    requests = re.compile(rf"^{prefix}\.requests\.(?P<platform>.+)$")
    replies = re.compile(layout.reply_pattern())
    chosen = []
    for name in sorted(existing):
        match = requests.match(name)
        if match is not None:
            if platform is None or match.group("platform") == platform:
                chosen.append(name)
        elif replies.match(name) or name == layout.audit():
            chosen.append(name)
    return chosen


def live_topic(layout: TopicLayout, topic: str) -> str | None:
    """What ``topic`` is, when this deployment's processes consume it; else None."""
    prefix = re.escape(layout.prefix)
    if re.fullmatch(rf"{prefix}\.requests\..+", topic):
        return "a live request topic of this deployment: its runners would run them"
    if layout.is_reply_topic(topic):
        return "a reply topic of this deployment: a gateway reads it"
    if re.fullmatch(rf"{prefix}\.connections\..+", topic):
        return "a connection-state topic of this deployment: runners restore it"
    return None


def check_target(settings: CommonSettings, to_topic: str | None, *, force: bool) -> None:
    """Refuse a live ``--to-topic`` (StackError) unless ``force``; before any connection."""
    if to_topic is None or force:
        return
    reason = live_topic(TopicLayout(settings), to_topic)
    if reason is not None:
        raise StackError(
            f"refusing to re-drive requests into {to_topic}, {reason}; "
            "pass --force to write there anyway"
        )


TopicChooser = Callable[[TopicLayout, Iterable[str], str | None], list[str]]
"""Which of the existing topics to read (the layout, the topic names, a platform filter)."""


class Replayer:
    """Reads and decodes (with the payload keys, when set) the records of chosen topics.

    ``topics`` picks them (the log topics by default; ``sockethub dlq`` reads the dead-letter
    topics). ``keep_undecodable`` yields records that are not Sockethub records as entries of
    type ``undecodable`` instead of counting and dropping them.
    """

    def __init__(
        self,
        settings: CommonSettings,
        filters: Filters,
        *,
        topics: TopicChooser | None = None,
        keep_undecodable: bool = False,
    ) -> None:
        self.settings = settings
        self.filters = filters
        self.choose_topics: TopicChooser = topics or log_topics
        self.keep_undecodable = keep_undecodable
        self.layout = TopicLayout(settings)
        self.codec = codec_from_settings(settings)
        self.missing_keys: set[str] = set()
        self.unsealed = 0
        self.undecodable = 0

    def _decode(self, msg: Any) -> Entry | None:
        when = datetime.fromtimestamp(msg.timestamp / 1000, UTC)
        headers = {k: v.decode(errors="replace") for k, v in msg.headers or ()}
        key = msg.key.decode(errors="replace") if msg.key else None
        try:
            record = self.codec.decode(msg.value, msg.headers)
        except (MissingKeyError, UnsealedRecordError) as err:
            if isinstance(err, MissingKeyError):
                self.missing_keys.add(err.key_id)
                problem = f"payload sealed with key {err.key_id!r}, not in the key ring"
            else:
                self.unsealed += 1
                problem = "payload not sealed: refused while SOCKETHUB_LOG_KEYS is set"
            return Entry(
                msg.topic,
                msg.partition,
                msg.offset,
                when,
                "sealed" if isinstance(err, MissingKeyError) else "unsealed",
                None,
                None,
                None,
                None,
                correlation_id=headers.get("sockethub-correlation-id"),
                problem=problem,
                key=key,
                headers=headers,
                logged_at=when,
            )
        except CodecError as err:
            if not self.keep_undecodable:
                self.undecodable += 1
                return None
            return Entry(
                msg.topic, msg.partition, msg.offset, when, "undecodable", None, None, None,
                None, problem=f"not a readable Sockethub record: {err}", key=key, headers=headers,
                logged_at=when,
            )  # fmt: skip
        entry = entry_from(record, msg.topic, msg.partition, msg.offset)
        entry.key, entry.headers, entry.logged_at = key, headers, when
        if HEADER_OPERATION in headers and msg.topic == self.layout.audit():
            entry.type = "operation"
        return entry

    async def entries(self, *, follow: bool = False) -> AsyncIterator[Entry]:
        """Matching entries: everything present now in time order, then (``follow``) new ones
        as they arrive."""
        await self.codec.start()
        consumer = log_reader(self.settings, start="earliest")
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()  # a consumer that failed to start still holds its client
            raise
        try:
            parts = await self._partitions()
            if not parts:
                return
            consumer.assign(parts)
            await self._seek_to_since(consumer, parts)
            ends = await consumer.end_offsets(parts)
            backlog: list[Entry] = []
            remaining = {tp for tp in parts if ends[tp] > await consumer.position(tp)}
            while remaining:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for messages in batch.values():
                    for msg in messages:
                        entry = self._decode(msg)
                        if entry is not None and self.filters.matches(entry):
                            backlog.append(entry)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            backlog.sort(key=lambda e: (e.when, e.topic, e.partition, e.offset))
            for entry in backlog:
                yield entry
            while follow:
                batch = await consumer.getmany(timeout_ms=1000)
                fresh = [
                    e
                    for messages in batch.values()
                    for e in map(self._decode, messages)
                    if e is not None and self.filters.matches(e)
                ]
                for entry in sorted(fresh, key=lambda e: e.when):
                    yield entry
        finally:
            await consumer.stop()
            await self.codec.close()

    async def _partitions(self) -> list[TopicPartition]:
        admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
        try:
            await admin.start()
            existing = await admin.list_topics()
            topics = self.choose_topics(self.layout, existing, self.filters.platform)
            described = await admin.describe_topics(topics) if topics else []
        finally:
            await admin.close()
        return [
            TopicPartition(topic["topic"], part["partition"])
            for topic in described
            for part in sorted(topic["partitions"], key=lambda p: int(p["partition"]))
        ]

    async def _seek_to_since(self, consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> None:
        if self.filters.since is None:
            await consumer.seek_to_beginning(*parts)
            return
        # Records are stamped when produced, which is no earlier than their created_at:
        # starting at the first record stamped at or after `since` skips nothing wanted.
        stamp = int(self.filters.since.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(parts, stamp))
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            hit = found.get(tp)
            consumer.seek(tp, hit.offset if hit is not None else ends[tp])


COLUMNS = (
    ("time", 23),
    ("type", 11),
    ("session", 20),
    ("platform", 9),
    ("verb", 10),
    ("actor", 24),
    ("target", 24),
    ("content/error", 0),
)


def _field(activity: dict[str, Any], role: str) -> dict[str, Any]:
    value = activity.get(role)
    return value if isinstance(value, dict) else {}


def _row(cells: list[str]) -> str:
    return "  ".join(
        cell[:width].ljust(width) if width else cell
        for cell, (_, width) in zip(cells, COLUMNS, strict=True)
    )


TABLE_HEADER = _row([name for name, _ in COLUMNS])


def format_row(entry: Entry) -> str:
    obj = _field(entry.activity, "object")
    summary = entry.problem or entry.error or obj.get("content") or obj.get("type") or ""
    if not isinstance(summary, str):
        summary = orjson.dumps(summary).decode()
    return _row(
        [
            entry.when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            entry.type,
            entry.session_id or (f"key {entry.key}" if entry.key else "-"),
            entry.platform or "-",
            entry.verb or "-",
            str(_field(entry.activity, "actor").get("id", "-")),
            str(_field(entry.activity, "target").get("id", "-")),
            summary.replace("\n", " ")[:80],
        ]
    )


async def replay(
    settings: CommonSettings,
    filters: Filters,
    *,
    fmt: Literal["table", "json"] = "table",
    follow: bool = False,
    to_topic: str | None = None,
    force: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    check_target(settings, to_topic, force=force)
    replayer = Replayer(settings, filters)
    producer: AIOKafkaProducer | None = None
    if to_topic is not None:
        producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
    shown = redriven = 0
    try:
        if fmt == "table":
            print(TABLE_HEADER, file=out)
        async for entry in replayer.entries(follow=follow):
            shown += 1
            if fmt == "json":
                out.write(orjson.dumps(entry.as_json()).decode() + "\n")
            else:
                print(format_row(entry), file=out)
            out.flush()
            if (
                producer is not None
                and isinstance(entry.record, Request)
                and entry.type == "request"
            ):
                value, headers = replayer.codec.encode(entry.record)
                key = entry.record.session_id.encode()
                await producer.send_and_wait(to_topic or "", value, key=key, headers=headers)
                redriven += 1
    finally:
        if producer is not None:
            await producer.stop()
    if replayer.missing_keys:
        ids = ", ".join(sorted(replayer.missing_keys))
        print(
            f"sockethub replay: some payloads are sealed with keys not in SOCKETHUB_LOG_KEYS: "
            f"{ids}",
            file=err,
        )
    if replayer.unsealed:
        print(
            f"sockethub replay: {replayer.unsealed} records were not sealed although "
            "SOCKETHUB_LOG_KEYS is set; they were not decoded",
            file=err,
        )
    if replayer.undecodable:
        print(
            f"sockethub replay: {replayer.undecodable} records were not sockethub records", file=err
        )
    tail = f", {redriven} requests re-driven into {to_topic}" if producer else ""
    print(f"sockethub replay: {shown} records{tail}", file=err)
    return 0


def run(settings: CommonSettings, filters: Filters, **kwargs: Any) -> int:
    try:
        return asyncio.run(replay(settings, filters, **kwargs))
    except KeyboardInterrupt:
        return 0
    except KafkaConnectionError:
        raise StackError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} (bootstrap failed)"
        ) from None
