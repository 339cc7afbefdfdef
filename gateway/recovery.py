"""Connection state recovery: a session that lost its connection, or its gateway, resumes.

Socket.IO v4's protocol: the CONNECT answer carries a private id (``pid``), each event the
gateway pushes carries its offset as the last argument, and a client that reconnects sends
``pid`` and the last ``offset`` it saw in its auth. Here the offset is the record's position
in the log, ``<reply topic>|<partition>|<offset>``, so any gateway can read what came after.

The only state beside the log is a Redis entry per pid (:class:`RecoveryIndex`): the session
id, the platforms and keys it used, its dialect and its *segments*, one per gateway that held
it (that gateway's reply topic and its reader's positions when the session arrived there).
It lives ``window`` seconds past the last refresh. Acks carry no offset, so each result sent
as an ack is followed by a ``sockethub:offset`` event with the result's position: the
client's offset then covers its acks too, and a result whose ack went out is not delivered
again.

Restoring (:meth:`Recovery.claim`) takes the entry atomically (``GETDEL``: one gateway wins),
tells each platform's runners that the session now lives here (a ``session_resumed`` request
whose answer comes back here after everything they sent the old route), then reads the
segments from the client's offset to their ends. Anything that fails on the way gives the
client a fresh session instead: never a partial recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
import structlog
from aiokafka import TopicPartition
from redis.asyncio import Redis

from gateway.kafka_bridge import DeliveryError, KafkaBridge, parse_position, position
from gateway.settings import GatewaySettings
from schemas.envelopes import SESSION_RESUMED, PlatformEvent, Request, RequestKind, Result
from schemas.platform_registry import canonical_context
from schemas.topics import MAX_RECORD_BYTES
from sockethub.runtime.kafka_clients import log_reader

log = structlog.get_logger("gateway.recovery")

PARKED_MARGIN = 5
"""Seconds a disconnected session's entry outlives its window."""

Segment = tuple[str, dict[int, int]]
"""A reply topic and, per partition, the offset from which the session's records are there."""


@dataclass
class Entry:
    """What the index keeps of a session."""

    sid: str
    segments: list[Segment]
    used: list[tuple[str, str]] = field(default_factory=list)
    dialect: str = "g3"
    epoch: str = field(default_factory=lambda: secrets.token_hex(8))
    """New at each claim: a gateway that lost the session must not end it (:meth:`take`)."""

    def dump(self) -> bytes:
        return orjson.dumps(
            {
                "sid": self.sid,
                "segments": [[t, {str(p): o for p, o in s.items()}] for t, s in self.segments],
                "used": self.used,
                "dialect": self.dialect,
                "epoch": self.epoch,
            }
        )

    @classmethod
    def load(cls, raw: bytes | str) -> Entry:
        data = orjson.loads(raw)
        return cls(
            sid=str(data["sid"]),
            segments=[
                (str(t), {int(p): int(o) for p, o in s.items()}) for t, s in data["segments"]
            ],
            used=[(str(p), str(k)) for p, k in data["used"]],
            dialect=str(data.get("dialect", "g3")),
            epoch=str(data.get("epoch", "")),
        )


@dataclass
class Restored:
    """A claimed session: what the client missed, in order, with each record's position."""

    pid: str
    entry: Entry
    missed: list[tuple[str, PlatformEvent | Result]]


_TAKE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
if ARGV[1] ~= '' and cjson.decode(raw)['epoch'] ~= ARGV[1] then return nil end
redis.call('DEL', KEYS[1])
return raw
"""


class RecoveryIndex:
    """The Redis side: one entry per pid, and its acknowledged result ids."""

    def __init__(self, redis: Redis, prefix: str, window: int, refresh_s: float = 5.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window = window
        self.refresh_s = max(1.0, min(window / 4, refresh_s))
        """How often a holder refreshes its connected sessions' entries."""

    def key(self, pid: str) -> str:
        return f"{self.prefix}:recovery:{pid}"

    @property
    def live_ttl(self) -> int:
        """The expiry while connected, refreshed every ``refresh_s``: an entry outlives a
        killed holder by the window, give or take one refresh, and never outlives the
        connections the runners keep for it. They release those once the holder's liveness
        key has been missing for the window and more, and ``refresh_s`` is at most that
        key's expiry: a recovery is never partial."""
        return self.window + math.ceil(self.refresh_s)

    @property
    def parked_ttl(self) -> int:
        """The expiry once disconnected from a live holder: past the window by a margin, so
        that the holder's window timer, even late on a busy loop, finds the entry it must
        end (the runners keep the connections until that timer's ``session_closed``)."""
        return self.window + max(PARKED_MARGIN, self.window // 4)

    @property
    def stopped_ttl(self) -> int:
        """The expiry of a session parked by a holder that stops: the window. No timer of
        the holder ends it; the runners release its connections no sooner than the window
        after the holder's liveness key is gone, so the entry never outlives them."""
        return self.window

    async def put(self, pid: str, entry: Entry, ttl: int | None = None) -> None:
        await self.redis.set(self.key(pid), entry.dump(), ex=ttl or self.live_ttl)

    async def refresh(self, pids: Sequence[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for pid in pids:
            pipe.expire(self.key(pid), self.live_ttl)
        await pipe.execute()

    async def take(self, pid: str, epoch: str | None = None) -> Entry | None:
        """The entry, removed (only one taker gets it); with ``epoch``, only if it has not
        been claimed since."""
        raw = await self.redis.eval(_TAKE, 1, self.key(pid), epoch or "")
        return None if raw is None else Entry.load(raw)


class _Barrier:
    """A ``session_resumed`` request waiting for its answer on this gateway's reply topic."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def resolve(self, result: Result) -> None:
        if not self.done.done():
            self.done.set_result(True)

    def delivery_done(self, delivery: asyncio.Future[object]) -> None:
        if (delivery.cancelled() or delivery.exception() is not None) and not self.done.done():
            self.done.set_result(False)

    def drop(self) -> None:
        if not self.done.done():
            self.done.set_result(False)


class Recovery:
    """Claims sessions for this gateway: moves their routes here and reads what they missed."""

    def __init__(self, settings: GatewaySettings, bridge: KafkaBridge, index: RecoveryIndex):
        self._settings = settings
        self._bridge = bridge
        self.index = index
        self.window = index.window

    @staticmethod
    def new_pid() -> str:
        return secrets.token_urlsafe(18)

    async def segment(self) -> Segment:
        """Where this gateway's reply topic stands now: the start of a new segment."""
        return self._bridge.reply_topic, await self._bridge.positions()

    async def claim(
        self, pid: str, offset: object, busy: Callable[[str], bool], hold: Callable[[str], None]
    ) -> Restored | None:
        """Take the session of ``pid`` for this gateway; None if it cannot be recovered (past
        the window, unknown, or still open here). ``hold(sid)`` is called before the runners
        are told: from then on the session's live records come here and must wait for the
        replay. Raises :class:`RecoveryFailed` if its runners or records cannot be reached."""
        entry = await self.index.take(pid)
        if entry is None:
            return None
        if busy(entry.sid):
            # Still open here (its old connection not yet noticed gone): one sid, one session.
            await self.index.put(pid, entry)
            return None
        entry.epoch = secrets.token_hex(8)
        hold(entry.sid)
        clock = asyncio.get_running_loop().time
        started = clock()
        try:
            await self._move(entry)
            moved = clock()
            missed = await self._read(entry, parse_position(offset))
        except Exception as exc:
            log.warning("session_recovery_failed", session_id=entry.sid, error=repr(exc))
            raise RecoveryFailed(entry) from exc
        log.info(
            "session_claimed",
            session_id=entry.sid,
            move_ms=round((moved - started) * 1000),
            read_ms=round((clock() - moved) * 1000),
            missed=len(missed),
        )
        entry.segments.append(await self.segment())
        return Restored(pid, entry, missed)

    async def _move(self, entry: Entry) -> None:
        """Route the session's runners here; returns once each has answered here."""
        barriers = []
        for platform, key in entry.used:
            request = Request(
                session_id=entry.sid,
                reply_route=self._bridge.reply_topic,
                platform=platform,
                verb=SESSION_RESUMED,
                activity={
                    "@context": canonical_context(platform),
                    "type": SESSION_RESUMED,
                    "actor": {"id": entry.sid, "type": "service"},
                },
                kind=RequestKind.CREDENTIALS,
            )
            barrier = _Barrier(request)
            await self._bridge.submit(barrier, key)
            barriers.append(barrier)
        try:
            async with asyncio.timeout(self._settings.request_timeout):
                answered = [await b.done for b in barriers]
        finally:
            for barrier in barriers:
                self._bridge.forget(barrier.request.activity_id)
        if not all(answered):
            raise DeliveryError("a runner did not take the session's new route")

    async def _read(
        self, entry: Entry, since: tuple[str, int, int] | None
    ) -> list[tuple[str, PlatformEvent | Result]]:
        """The session's records after ``since`` (the client's offset), segment by segment,
        up to each partition's end (the last committed record)."""
        starts: list[tuple[TopicPartition, int]] = []
        segments = entry.segments
        if since is not None:
            # Only a partition the session's segment has: anything else is not an offset
            # this deployment sent (it would only make the read wait for a missing partition).
            mine = [
                i
                for i, (topic, offsets) in enumerate(segments)
                if topic == since[0] and since[1] in offsets
            ]
            if mine:
                i = mine[-1]
                starts.append((TopicPartition(since[0], since[1]), since[2] + 1))
                segments = segments[i + 1 :]
        for topic, offsets in segments:
            starts.extend((TopicPartition(topic, p), o) for p, o in sorted(offsets.items()))
        if not starts:
            return []
        consumer = log_reader(
            self._settings, start="earliest", max_partition_fetch_bytes=MAX_RECORD_BYTES
        )
        await consumer.start()
        try:
            tps = list(dict.fromkeys(tp for tp, _ in starts))
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            found: dict[TopicPartition, list[tuple[str, PlatformEvent | Result]]] = {}
            for tp, start in starts:
                consumer.seek(tp, start)
            deadline = asyncio.get_running_loop().time() + self._settings.request_timeout
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError("the session's records could not be read in time")
                batches = await consumer.getmany(timeout_ms=500)
                for tp, messages in batches.items():
                    for message in messages:
                        if message.offset >= ends[tp] or message.value is None:
                            continue
                        record = await self._bridge.decode(message.value, message.headers)
                        if record.session_id != entry.sid or not isinstance(
                            record, PlatformEvent | Result
                        ):
                            continue
                        at = position(tp.topic, tp.partition, message.offset)
                        found.setdefault(tp, []).append((at, record))
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        return [item for tp in tps for item in found.get(tp, [])]


class RecoveryFailed(Exception):
    """The session was claimed but could not be restored: the claimer ends it."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(entry.sid)
        self.entry = entry
