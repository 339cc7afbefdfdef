"""The records that cross Kafka, as Python values.

Every record carries its routing and audit fields as typed attributes; the
ActivityStreams payload travels whole in ``activity`` (a JSON-compatible
dict). ``schemas.codec`` turns these into Avro bytes and back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

JSONDict = dict[str, Any]


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Millisecond precision: what Avro's timestamp-millis keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


class RequestKind(StrEnum):
    ACTIVITY = "activity"
    """An activity for the platform to carry out."""
    CREDENTIALS = "credentials"
    """Redacted audit record: who set credentials for which platform, and when."""
    SESSION_CLOSED = "session_closed"
    """The session ended: persistent platforms detach it from connections."""


SESSION_RESUMED = "session_resumed"
"""The verb of a gateway's control request (kind ``credentials``, which no client can
produce on a request topic) telling runners that a recovered session now lives behind the
request's ``reply_route``. The runner answers it there with a ``Result``: every record it
sent the session's old route was committed before that answer."""


@dataclass(frozen=True, slots=True)
class Request:
    """An activity on its way from a gateway to a platform runner."""

    session_id: str
    reply_route: str
    """The reply topic of the gateway instance that holds the session."""
    platform: str
    verb: str
    activity: JSONDict
    """The normalised activity (G3 shape, canonical @context). Never credentials."""
    correlation_id: str | None = None
    """The client's own ``id`` for the activity, echoed back in results."""
    activity_id: str = field(default_factory=new_id)
    kind: RequestKind = RequestKind.ACTIVITY
    created_at: datetime = field(default_factory=utcnow)
    attempt: int = 0
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """A platform's answer to one request: the result activity or an error."""

    activity_id: str
    session_id: str
    reply_route: str
    platform: str
    verb: str
    activity: JSONDict
    """The result payload as the client sees it (the request itself where the
    platform returned nothing; the request plus ``error`` on failure)."""
    error: str | None = None
    correlation_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    """When the request was accepted by the gateway."""
    completed_at: datetime = field(default_factory=utcnow)
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class PlatformEvent:
    """Something a platform produced on its own, for one session.

    A platform that has several sessions attached to one connection emits one
    event per session, each routed to that session's gateway.
    """

    session_id: str
    reply_route: str
    platform: str
    verb: str
    activity: JSONDict
    event_id: str = field(default_factory=new_id)
    error: str | None = None
    """Set for error notices (a runner crash, a lost connection)."""
    created_at: datetime = field(default_factory=utcnow)
    traceparent: str | None = None


Record = Request | Result | PlatformEvent
