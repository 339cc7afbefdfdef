"""The one place that names Kafka topics and says how they are configured.

| Topic | Key | Carries |
|---|---|---|
| ``<prefix>.requests.<platform>`` | session id | ``Request`` records for one platform's runners |
| ``<prefix>.replies.<gateway>`` | session id | ``Result`` and ``PlatformEvent`` for one gateway |
| ``<prefix>.deadletter.<platform>`` | session id | requests a runner gave up on |
| ``<prefix>.connections.<platform>`` | connection key | desired connection state (compacted) |
| ``<prefix>.audit`` | session id | redacted credentials and session-closed records |

Keying by session id keeps one session's records in order on one partition.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

MAX_TOPIC_LENGTH = 249
REPLY_PARTITIONS = 3
AUDIT_PARTITIONS = 3
MAX_RECORD_BYTES = 8 * 1024 * 1024
"""``max.message.bytes`` of topics that carry activities (a feeds result can be large);
producers writing them should raise ``max_request_size`` to match."""

_LEGAL = re.compile(r"[A-Za-z0-9._-]+")
_PLATFORM = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_GATEWAY_SAFE = re.compile(r"[A-Za-z0-9-]{1,64}")
_GATEWAY_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def validate_topic_name(name: str) -> str:
    """Return ``name`` if Kafka accepts it as a topic name, else raise ValueError."""
    if not name or name in (".", ".."):
        raise ValueError(f"invalid topic name {name!r}")
    if len(name) > MAX_TOPIC_LENGTH:
        raise ValueError(f"topic name longer than {MAX_TOPIC_LENGTH} characters: {name[:40]!r}...")
    if not _LEGAL.fullmatch(name):
        raise ValueError(f"topic name {name!r} may only contain A-Z a-z 0-9 . _ -")
    return name


def sanitise_gateway_id(gateway_id: str) -> str:
    """A topic-safe form of a gateway id (a pod or host name, say).

    Ids that are already safe stay as they are. Otherwise illegal characters
    (and ``_``, which Kafka's metric names confuse with ``.``) become ``-`` and a
    short hash of the original is appended, so distinct ids never share a topic.
    """
    if _GATEWAY_SAFE.fullmatch(gateway_id):
        return gateway_id
    if not gateway_id:
        raise ValueError("gateway id is empty")
    digest = hashlib.sha256(gateway_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    stem = _GATEWAY_UNSAFE_CHARS.sub("-", gateway_id).strip("-")[:48]
    return f"{stem}-{digest}" if stem else f"gw-{digest}"


def request_key(session_id: str, activity: dict[str, object], *, persistent: bool) -> str:
    """The partition key of a request.

    Non-persistent platforms: the session id, so a session's activities stay in order in
    one partition. Persistent platforms (IRC, XMPP): the actor id that owns the
    connection, so every session using one identity reaches the one runner that holds
    (and shares) its connection, and each (session, actor) stream stays in order.
    """
    if persistent:
        actor = activity.get("actor")
        if isinstance(actor, dict) and isinstance(actor.get("id"), str) and actor["id"]:
            return str(actor["id"])
    return session_id


def _platform(platform: str) -> str:
    if not _PLATFORM.fullmatch(platform):
        raise ValueError(
            f"platform id {platform!r} must be 1-64 characters of a-z 0-9 - (starting alphanumeric)"
        )
    return platform


class TopicSettings(Protocol):
    """The deployment settings that shape topic names and configurations."""

    topic_prefix: str
    request_partitions: int
    audit_retention_ms: int
    replication_factor: int


class TopicLayout:
    """Topic names and configurations for one deployment (one ``topic_prefix``)."""

    def __init__(self, settings: TopicSettings) -> None:
        prefix = settings.topic_prefix
        validate_topic_name(prefix)
        if prefix.startswith(".") or prefix.endswith("."):
            raise ValueError(f"topic prefix {prefix!r} must not start or end with '.'")
        self.prefix = prefix
        self._request_partitions = settings.request_partitions
        self._retention = str(settings.audit_retention_ms)
        self._durability = {"min.insync.replicas": "2"} if settings.replication_factor >= 3 else {}

    def requests(self, platform: str) -> str:
        return validate_topic_name(f"{self.prefix}.requests.{_platform(platform)}")

    def replies(self, gateway_id: str) -> str:
        return validate_topic_name(f"{self.prefix}.replies.{sanitise_gateway_id(gateway_id)}")

    def reply_pattern(self) -> str:
        """A regex (for ``subscribe(pattern=...)``) that matches every reply topic."""
        return rf"^{re.escape(self.prefix)}\.replies\.[A-Za-z0-9-]+$"

    def is_reply_topic(self, name: str) -> bool:
        """Whether ``name`` is a reply topic of this deployment (any gateway's): the only
        topics a runner may answer to, whatever route a request names."""
        return (
            len(name) <= MAX_TOPIC_LENGTH and re.fullmatch(self.reply_pattern(), name) is not None
        )

    def dead_letters(self, platform: str) -> str:
        return validate_topic_name(f"{self.prefix}.deadletter.{_platform(platform)}")

    def connections(self, platform: str) -> str:
        return validate_topic_name(f"{self.prefix}.connections.{_platform(platform)}")

    def audit(self) -> str:
        return validate_topic_name(f"{self.prefix}.audit")

    def _log(self, name: str, partitions: int) -> TopicSpec:
        return TopicSpec(
            name,
            partitions,
            {
                "cleanup.policy": "delete",
                "retention.ms": self._retention,
                "max.message.bytes": str(MAX_RECORD_BYTES),
                **self._durability,
            },
        )

    def specs(self, platforms: Iterable[str], gateway_ids: Iterable[str] = ()) -> list[TopicSpec]:
        """Every topic that the given platforms and gateway instances use."""
        specs = [self._log(self.audit(), AUDIT_PARTITIONS)]
        for platform in dict.fromkeys(platforms):
            specs.append(self._log(self.requests(platform), self._request_partitions))
            specs.append(self._log(self.dead_letters(platform), self._request_partitions))
            specs.append(
                TopicSpec(
                    self.connections(platform),
                    self._request_partitions,
                    {
                        "cleanup.policy": "compact",
                        "min.cleanable.dirty.ratio": "0.1",
                        "segment.ms": str(3600 * 1000),
                        **self._durability,
                    },
                )
            )
        for gateway_id in dict.fromkeys(gateway_ids):
            specs.append(self._log(self.replies(gateway_id), REPLY_PARTITIONS))
        return specs
