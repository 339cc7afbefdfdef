"""``sockethub dlq``: list, show, re-drive and purge the dead letters of one topic prefix.

Dead letters are read from ``<prefix>.deadletter.<platform>`` with the replay tool's reader
(``read_committed``, decrypted with ``SOCKETHUB_LOG_KEYS`` when set). A dead letter's id is
``<platform>:<partition>:<offset>``; ``show`` and ``redrive`` also take an activity id.

- ``redrive`` sends the request back to its platform's request topic (the partition it came
  from) with a ``sockethub-redrive`` header, after clearing its crash counters in Redis. It
  is refused for an activity that already has a result in the reply topics (other than the
  error answer sent when it was dead-lettered) unless ``--force``.
- ``purge --before T`` uses Kafka's DeleteRecords: a partition's log start moves up to its
  first dead letter stamped at or after T, so everything below is gone for every reader.
  Kafka cannot delete single records; dead letters are appended in time order, so this is
  what "older than T" means.

Every action (``list`` and ``show`` too: they read payloads) is written to the audit topic
first, as a record of type ``operation``; an action that cannot be audited is not done.
"""

from __future__ import annotations

import asyncio
import getpass
import io
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import KafkaConnectionError

from platform_runners.answers import HEADER_REASON
from platform_runners.attempts import Attempts
from schemas.envelopes import Request, RequestKind
from schemas.topics import TopicLayout
from sockethub.devstack.errors import StackError
from sockethub.replay import HEADER_OPERATION, Entry, Filters, Replayer
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.kafka_clients import client_kwargs
from sockethub.runtime.redaction import redact, scrub_text
from sockethub.runtime.redis_client import redis_client
from sockethub.runtime.settings import CommonSettings

HEADER_REDRIVE = "sockethub-redrive"
"""On a re-driven request: JSON with the dead letter it came from, when and by whom."""
AUDIT_SESSION = "sockethub-dlq"
Outgoing = tuple[str, Request, int | None, list[tuple[str, bytes]]]
"""(topic, request, partition or None for the key's, extra headers)."""
_ID = re.compile(r"(?P<platform>[a-z0-9][a-z0-9-]*):(?P<partition>\d+):(?P<offset>\d+)")


def dead_letter_topics(
    layout: TopicLayout, existing: Iterable[str], platform: str | None
) -> list[str]:
    """The dead-letter topics of this prefix (one platform's, when filtering by platform)."""
    pattern = re.compile(rf"^{re.escape(layout.prefix)}\.deadletter\.(?P<platform>.+)$")
    chosen = []
    for name in sorted(existing):
        match = pattern.match(name)
        if match is not None and (platform is None or match.group("platform") == platform):
            chosen.append(name)
    return chosen


def reply_topics(layout: TopicLayout, existing: Iterable[str], platform: str | None) -> list[str]:
    return [name for name in sorted(existing) if layout.is_reply_topic(name)]


def infer_reason(error: str) -> str:
    """The reason label of a dead letter written before the ``sockethub-reason`` header."""
    if error.startswith("undecodable request"):
        return "undecodable"
    if error.startswith("not a request"):
        return "not_a_request"
    if error.startswith("reply route"):
        return "foreign_reply_route"
    if "abandoned after" in error:
        return "crash"
    return "unknown"


@dataclass
class DeadLetter:
    entry: Entry

    @property
    def platform(self) -> str:
        return self.entry.topic.rsplit(".deadletter.", 1)[-1]

    @property
    def id(self) -> str:
        return f"{self.platform}:{self.entry.partition}:{self.entry.offset}"

    @property
    def when(self) -> datetime:
        """When it was dead-lettered (the record's timestamp)."""
        return self.entry.logged_at or self.entry.when

    @property
    def error(self) -> str:
        return self.entry.headers.get("sockethub-error", "")

    @property
    def reason(self) -> str:
        return self.entry.headers.get(HEADER_REASON) or infer_reason(self.error)

    @property
    def request(self) -> Request | None:
        record = self.entry.record
        return record if isinstance(record, Request) else None

    @property
    def activity_id(self) -> str | None:
        return self.request.activity_id if self.request is not None else None

    @property
    def session_id(self) -> str | None:
        return self.entry.session_id or self.entry.key

    def source_partition(self, layout: TopicLayout) -> int | None:
        """The request-topic partition it was read from, per its ``sockethub-source``."""
        topic, _, rest = self.entry.headers.get("sockethub-source", "").partition("/")
        partition = rest.partition("/")[0]
        if topic == layout.requests(self.platform) and partition.isdigit():
            return int(partition)
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dead_lettered_at": self.when.isoformat(),
            "reason": self.reason,
            "platform": self.platform,
            "session_id": self.session_id,
            "verb": self.entry.verb,
            "activity_id": self.activity_id,
            "correlation_id": self.entry.correlation_id,
            "attempts": self.entry.headers.get("sockethub-attempts"),
            "error": scrub_text(self.error),
        }

    def detail(self) -> dict[str, Any]:
        """Everything known, with secret-looking keys and pairs redacted as in logs."""
        request = self.request
        return {
            **self.summary(),
            "created_at": request.created_at.isoformat() if request else None,
            "reply_route": request.reply_route if request else None,
            "exit_code": self.entry.headers.get("sockethub-exit-code"),
            "source": self.entry.headers.get("sockethub-source"),
            "redrive": self.entry.headers.get(HEADER_REDRIVE),
            "activity": redact(self.entry.activity) if self.entry.activity else None,
            "problem": scrub_text(self.entry.problem) if self.entry.problem else None,
            "topic": self.entry.topic,
            "partition": self.entry.partition,
            "offset": self.entry.offset,
        }


@dataclass(frozen=True)
class DlqFilters:
    platform: str | None = None
    reasons: frozenset[str] = frozenset()
    session: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.platform is not None and letter.platform != self.platform:
            return False
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.session is not None and letter.session_id != self.session:
            return False
        if self.since is not None and letter.when < self.since:
            return False
        return self.until is None or letter.when <= self.until


def select(letters: Sequence[DeadLetter], ids: Sequence[str]) -> list[DeadLetter]:
    """The dead letters named by ``ids`` (``platform:partition:offset`` or an activity id;
    for an activity dead-lettered more than once, its latest dead letter). StackError names
    the ids that match none."""
    chosen: dict[str, DeadLetter] = {}
    missing = []
    for wanted in ids:
        hits = [d for d in letters if d.id == wanted or d.activity_id == wanted]
        if not hits:
            missing.append(wanted)
            continue
        latest = max(hits, key=lambda d: (d.when, d.entry.offset))
        chosen[latest.id] = latest
    if missing:
        raise StackError(f"no dead letter with id {', '.join(missing)}")
    return list(chosen.values())


def latest_per_activity(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """One dead letter per activity (its latest), for ``redrive --all``; unreadable ones
    are kept, to be reported as refused."""
    latest: dict[str, DeadLetter] = {}
    for letter in letters:
        key = letter.activity_id or letter.id
        held = latest.get(key)
        if held is None or (letter.when, letter.entry.offset) > (held.when, held.entry.offset):
            latest[key] = letter
    return sorted(latest.values(), key=lambda d: (d.when, d.id))


class Dlq:
    """One ``sockethub dlq`` invocation's clients and its audit trail."""

    def __init__(self, settings: CommonSettings, *, err: TextIO = sys.stderr) -> None:
        self.settings = settings
        self.layout = TopicLayout(settings)
        self.err = err
        self.operator = _operator()

    async def read(self, platform: str | None = None) -> list[DeadLetter]:
        replayer = Replayer(
            self.settings, Filters(platform=platform), topics=dead_letter_topics,
            keep_undecodable=True,
        )  # fmt: skip
        letters = [DeadLetter(e) async for e in replayer.entries()]
        if replayer.missing_keys:
            ids = ", ".join(sorted(replayer.missing_keys))
            print(f"sockethub dlq: some dead letters are sealed with keys not in "
                  f"SOCKETHUB_LOG_KEYS: {ids}", file=self.err)  # fmt: skip
        return sorted(letters, key=lambda d: (d.when, d.id))

    async def answered(self, letters: Sequence[DeadLetter]) -> set[str]:
        """Activity ids among ``letters`` with a result in the reply topics, other than the
        error answer that the runner sent when it dead-lettered them."""
        requests = [d for d in letters if d.request is not None]
        if not requests:
            return set()
        own_errors = {d.activity_id: d.error for d in requests}
        since = min(r.created_at for d in requests if (r := d.request) is not None)
        replayer = Replayer(
            self.settings, Filters(types=frozenset({"result"}), since=since), topics=reply_topics
        )
        found: set[str] = set()
        async for entry in replayer.entries():
            done = entry.record_id
            if done is not None and done in own_errors and entry.error != own_errors[done]:
                found.add(done)
        return found

    async def audit(self, action: str, platform: str | None, details: dict[str, Any]) -> None:
        """Write the action to the audit topic; raises (and the action is not done) when
        it cannot be written."""
        request = Request(
            session_id=AUDIT_SESSION,
            reply_route=self.layout.audit(),
            platform=platform or "*",
            verb=f"dlq-{action}",
            activity={
                "type": f"dlq-{action}",
                "actor": {"id": self.operator, "type": "person"},
                "object": {"type": "dead-letters", **details},
            },
            kind=RequestKind.ACTIVITY,
        )
        await self._produce([(self.layout.audit(), request, None, [(HEADER_OPERATION, b"dlq")])])

    async def _produce(self, records: list[Outgoing]) -> None:
        codec = codec_from_settings(self.settings)
        await codec.start()
        producer = AIOKafkaProducer(
            **client_kwargs(self.settings), acks="all", enable_idempotence=True
        )
        try:
            await producer.start()
            for topic, request, partition, extra in records:
                value, headers = codec.encode(request)
                await producer.send_and_wait(
                    topic, value, key=request.session_id.encode(), partition=partition,
                    headers=[*headers, *extra],
                )  # fmt: skip
        finally:
            await producer.stop()
            await codec.close()

    async def list(self, filters: DlqFilters, fmt: Literal["table", "json"], out: TextIO) -> int:
        await self.audit("list", filters.platform, {"filters": _filters_json(filters)})
        letters = [d for d in await self.read(filters.platform) if filters.matches(d)]
        if fmt == "table":
            print(TABLE_HEADER, file=out)
        for letter in letters:
            if fmt == "json":
                out.write(orjson.dumps(letter.summary()).decode() + "\n")
            else:
                print(format_row(letter), file=out)
        print(f"sockethub dlq: {len(letters)} dead letters", file=self.err)
        return 0

    async def show(self, ids: Sequence[str], out: TextIO) -> int:
        await self.audit("show", None, {"ids": list(ids)})
        for letter in select(await self.read(), ids):
            out.write(orjson.dumps(letter.detail(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0

    async def redrive(
        self,
        ids: Sequence[str],
        *,
        platform: str | None,
        since: datetime | None,
        force: bool,
        out: TextIO,
    ) -> int:
        letters = await self.read(platform)
        if ids:
            chosen = select(letters, ids)
        else:
            chosen = latest_per_activity(d for d in letters if DlqFilters(since=since).matches(d))
        refused: dict[str, str] = {}
        for letter in chosen:
            if letter.request is None:
                refused[letter.id] = f"not a readable request ({letter.entry.problem})"
        answered = await self.answered([d for d in chosen if d.id not in refused])
        for letter in chosen:
            if letter.activity_id in answered and not force:
                refused[letter.id] = "its activity already has a result; --force to re-drive"
        todo = [d for d in chosen if d.id not in refused]
        await self.audit("redrive", platform, {
            "ids": [d.id for d in todo], "activities": [d.activity_id for d in todo],
            "refused": refused, "force": force, "since": since.isoformat() if since else None,
        })  # fmt: skip
        if todo:
            await self._forget_attempts(todo)
            at = datetime.now(UTC).isoformat()
            records: list[Outgoing] = []
            for letter in todo:
                assert letter.request is not None
                stamp = {"from": letter.id, "at": at, "by": self.operator, "forced": force}
                records.append((
                    self.layout.requests(letter.platform), letter.request,
                    letter.source_partition(self.layout), [(HEADER_REDRIVE, orjson.dumps(stamp))],
                ))  # fmt: skip
            await self._produce(records)
            for letter, (topic, request, _, _) in zip(todo, records, strict=True):
                print(f"re-driven {letter.id} (activity {request.activity_id}) to {topic}",
                      file=out)  # fmt: skip
        for letter_id, why in refused.items():
            print(f"sockethub dlq: refused {letter_id}: {why}", file=self.err)
        print(f"sockethub dlq: {len(todo)} re-driven, {len(refused)} refused", file=self.err)
        return 1 if refused else 0

    async def _forget_attempts(self, letters: Sequence[DeadLetter]) -> None:
        client = redis_client(self.settings.redis_url)
        try:
            by_platform: dict[str, list[str]] = {}
            for letter in letters:
                if letter.activity_id is not None:
                    by_platform.setdefault(letter.platform, []).append(letter.activity_id)
            for platform, activity_ids in by_platform.items():
                await Attempts(client, self.settings.topic_prefix, platform).forget(activity_ids)
        finally:
            await client.aclose()

    async def purge(self, before: datetime, platform: str | None, out: TextIO) -> int:
        await self.audit("purge", platform, {"before": before.isoformat()})
        admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
        consumer = AIOKafkaConsumer(**client_kwargs(self.settings), enable_auto_commit=False)
        try:
            await admin.start()
            await consumer.start()
            topics = dead_letter_topics(self.layout, await admin.list_topics(), platform)
            parts = [
                TopicPartition(t["topic"], p["partition"])
                for t in (await admin.describe_topics(topics) if topics else [])
                for p in t["partitions"]
            ]
            if not parts:
                print("sockethub dlq: no dead-letter topics", file=self.err)
                return 0
            starts = await consumer.beginning_offsets(parts)
            ends = await consumer.end_offsets(parts)
            stamp = int(before.timestamp() * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(parts, stamp))
            cut = {}
            for tp in parts:
                hit = found.get(tp)
                upto = hit.offset if hit is not None else ends[tp]
                if upto > starts[tp]:
                    cut[tp] = upto
            if cut:
                await admin.delete_records({tp: RecordsToDelete(o) for tp, o in cut.items()})
            for tp, upto in sorted(cut.items()):
                print(f"{tp.topic}/{tp.partition}: offsets {starts[tp]}..{upto - 1} removed",
                      file=out)  # fmt: skip
            removed = sum(o - starts[tp] for tp, o in cut.items())
            print(f"sockethub dlq: {removed} offsets removed (before {before.isoformat()})",
                  file=self.err)  # fmt: skip
            return 0
        finally:
            await consumer.stop()
            await admin.close()


class AdminDeadLetters:
    """The gateway admin page's dead-letter section (its ``DeadLetterSource``): summaries
    only, no payloads, so reading needs no audit record; a re-drive is audited as from the
    command line, under the page's operator name."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings

    async def recent(self) -> list[dict[str, Any]]:
        return [letter.summary() for letter in await Dlq(self.settings, err=io.StringIO()).read()]

    async def redrive(self, ids: Sequence[str], *, force: bool, operator: str) -> tuple[int, str]:
        out = io.StringIO()
        dlq = Dlq(self.settings, err=out)
        dlq.operator = operator
        status = await dlq.redrive(ids, platform=None, since=None, force=force, out=out)
        return status, out.getvalue()


COLUMNS = (
    ("id", 22), ("dead-lettered", 23), ("reason", 19), ("session", 20), ("verb", 10),
    ("tries", 5), ("error", 0),
)  # fmt: skip


def _row(cells: list[str]) -> str:
    return "  ".join(
        cell[:width].ljust(width) if width else cell
        for cell, (_, width) in zip(cells, COLUMNS, strict=True)
    )


TABLE_HEADER = _row([name for name, _ in COLUMNS])


def format_row(letter: DeadLetter) -> str:
    return _row([
        letter.id,
        letter.when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        letter.reason,
        letter.session_id or "-",
        letter.entry.verb or "-",
        letter.entry.headers.get("sockethub-attempts", "-"),
        scrub_text(letter.error).replace("\n", " ")[:100],
    ])  # fmt: skip


def _filters_json(filters: DlqFilters) -> dict[str, Any]:
    return {
        "platform": filters.platform,
        "reasons": sorted(filters.reasons),
        "session": filters.session,
        "since": filters.since.isoformat() if filters.since else None,
        "until": filters.until.isoformat() if filters.until else None,
    }


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "unknown"


def run(settings: CommonSettings, action: str, **kwargs: Any) -> int:
    out: TextIO = kwargs.pop("out", sys.stdout)
    dlq = Dlq(settings, err=kwargs.pop("err", sys.stderr))
    calls = {
        "list": lambda: dlq.list(kwargs["filters"], kwargs["fmt"], out),
        "show": lambda: dlq.show(kwargs["ids"], out),
        "redrive": lambda: dlq.redrive(kwargs["ids"], platform=kwargs["platform"],
                                       since=kwargs["since"], force=kwargs["force"], out=out),
        "purge": lambda: dlq.purge(kwargs["before"], kwargs["platform"], out),
    }  # fmt: skip
    try:
        return asyncio.run(calls[action]())
    except KafkaConnectionError:
        raise StackError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} (bootstrap failed)"
        ) from None
