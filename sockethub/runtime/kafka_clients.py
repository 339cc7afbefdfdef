"""Connection settings shared by every aiokafka client, and topic creation."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from schemas.topics import TopicSpec
from sockethub.runtime.settings import CommonSettings

_TOPIC_ALREADY_EXISTS = 36

PRODUCER_BATCH_BYTES = 256 * 1024
"""``max_batch_size`` of the gateway's and the runners' producers, per partition. At
aiokafka's 16 KiB default a full batch makes every further send wait for it to drain, one
produce request at a time, so a transaction of many answers would need several produce
requests instead of one."""


class TopicSetupError(RuntimeError):
    """Topics could not be created."""


class CachedPartitioner:
    """aiokafka's default partitioner, with each key's murmur2 hash remembered.

    The hash is pure Python, and a session's requests (gateway) and answers (runners)
    share one key, so each key is hashed once per process. Same partitions as
    :class:`DefaultPartitioner`.
    """

    MAX_KEYS = 65536

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.MAX_KEYS:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def client_kwargs(settings: CommonSettings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    servers = [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]
    if not servers:
        raise ValueError("kafka_bootstrap names no servers")
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {
        "bootstrap_servers": servers,
        "security_protocol": protocol,
        "retry_backoff_ms": settings.kafka_retry_backoff_ms,
    }
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        if not (settings.kafka_sasl_mechanism and settings.kafka_sasl_username and password):
            raise ValueError(
                f"security protocol {protocol} needs kafka_sasl_mechanism, "
                "kafka_sasl_username and kafka_sasl_password"
            )
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value(),
        )
    if protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    return kwargs


def fetch_kwargs(settings: CommonSettings, *, min_bytes: int | None = None) -> dict[str, Any]:
    """How long and for how much a consumer's fetch waits at the broker.

    Each fetch costs a Python client about the same CPU whatever it carries; letting
    the broker gather a few records per fetch lowers the CPU per request, for at most
    ``kafka_fetch_wait_ms`` more latency.
    ``min_bytes`` overrides ``kafka_fetch_min_bytes`` for one consumer."""
    return {
        "fetch_max_wait_ms": settings.kafka_fetch_wait_ms,
        "fetch_min_bytes": settings.kafka_fetch_min_bytes if min_bytes is None else min_bytes,
    }


def log_reader(
    settings: CommonSettings, *, start: str, committed_only: bool = True, **extra: Any
) -> AIOKafkaConsumer:
    """A consumer outside any group that reads partitions it assigns itself, from ``start``
    ("earliest" or "latest") unless it seeks: replays, restores and reply readers. It never
    commits; ``committed_only`` keeps aborted and open transactions' records out."""
    return AIOKafkaConsumer(
        **client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        auto_offset_reset=start,
        **extra,
    )


async def committed_offsets(
    admin: AIOKafkaAdminClient,
    group_id: str,
    partitions: Collection[TopicPartition],
    *,
    retry_backoff_s: float,
) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets ``group_id`` committed for ``partitions``, with their metadata; a
    partition without a committed offset is left out.

    The admin client, because the consumer's public ``committed()`` drops the metadata.
    The broker answers every partition asked for (offset -1 when none is committed)
    unless the whole group is in error (its coordinator loading or moved), which the
    admin client does not raise: a reply missing a partition is therefore retried, like
    a retriable error, until the coordinator answers. Other errors are raised.
    """
    wanted = list(dict.fromkeys(partitions))
    while wanted:
        try:
            found = await admin.list_consumer_group_offsets(group_id, partitions=wanted)
        except KafkaError as exc:
            if not exc.retriable:
                raise
        else:
            if all(tp in found for tp in wanted):
                return {tp: found[tp] for tp in wanted if found[tp].offset >= 0}
        await asyncio.sleep(retry_backoff_s)
    return {}


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    errors: list[tuple[str, int, str | None]] = []
    for entry in getattr(response, "topic_errors", ()):
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        errors.append((name, code, message))
    return errors


async def ensure_topics(
    settings: CommonSettings, specs: Sequence[TopicSpec], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; return the names created.

    Idempotent, and safe to run from several processes at once: a topic that
    another process created meanwhile counts as existing. Existing topics are
    left as they are (their partitions and configuration are not changed).
    """
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=int(timeout_s * 1000))
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            existing = set(await admin.list_topics())
            missing = list({s.name: s for s in specs if s.name not in existing}.values())
            if not missing:
                return []
            if not settings.create_topics:
                names = ", ".join(sorted(s.name for s in missing))
                raise TopicSetupError(
                    f"topics missing and SOCKETHUB_CREATE_TOPICS is off: {names} "
                    "(create them with `sockethub topics`)"
                )
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=s.name,
                        num_partitions=s.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=dict(s.config),
                    )
                    for s in missing
                ],
                timeout_ms=int(timeout_s * 1000),
            )
    except (KafkaError, OSError, TimeoutError) as exc:
        raise TopicSetupError(
            f"cannot create topics on {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        await admin.close()
    created = {s.name for s in missing}
    failures = []
    for name, code, message in _topic_errors(response):
        if code == _TOPIC_ALREADY_EXISTS:
            created.discard(name)
        elif code:
            created.discard(name)
            failures.append(f"{name}: error {code} {message or ''}".rstrip())
    if failures:
        raise TopicSetupError("could not create topics: " + "; ".join(failures))
    return [s.name for s in missing if s.name in created]
