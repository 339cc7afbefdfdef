"""The platform interface: what a platform implements and what the runner gives it.

A platform is a class with a ``name``, async handlers per verb and optional
``start``/``stop``/``session_closed`` hooks. The runner owns Kafka, ordering,
retries and crash handling; a handler only turns one request into a result:

    class Echo(Platform):
        name = "echo"

        def handlers(self) -> Mapping[str, Handler]:
            return {"echo": self.echo}

        async def echo(self, ctx: Context) -> JSONDict | None:
            return ctx.activity  # None would answer with the request itself

A handler that raises :class:`TransientError` is retried with backoff; any
other exception becomes the error result ``Error: <message>``.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from functools import cached_property
from typing import Any, ClassVar, Protocol

import structlog

from platform_runners.settings import RunnerSettings
from schemas.envelopes import JSONDict, Request
from schemas.platform_registry import PlatformDescriptor


def json_copy(value: Any) -> Any:
    """A deep copy of decoded JSON/Avro data (dicts, lists, scalars), without
    ``copy.deepcopy``'s memo and per-type dispatch, which such data never needs (no
    shared or cyclic references); anything else is handed to ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {k: json_copy(v) for k, v in value.items()}
    if kind is list:
        return [json_copy(v) for v in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


class TransientError(Exception):
    """A failure worth retrying (a timeout, a refused connection): retried with backoff."""


class PlatformError(Exception):
    """A failure to report to the client as it is: ``Error: <message>``."""


class CodeError(PlatformError):
    """A failure reported as a bare code (``caldav:conflict``), without ``Error: `` in front,
    as Sockethub's DAV platforms answer their asynchronous failures."""


class CredentialLookup(Protocol):
    """Reads a session's stored credentials (``sockethub.runtime.credentials`` has one)."""

    async def get(self, session_id: str, platform: str, actor_id: str) -> JSONDict | None: ...


class Emitter(Protocol):
    """Sends an unsolicited activity to one session (the runner implements it)."""

    def emit(
        self,
        session_id: str,
        activity: JSONDict,
        *,
        verb: str | None = None,
        error: str | None = None,
        reply_route: str | None = None,
    ) -> bool: ...


class Context:
    """Everything a handler gets for one request."""

    def __init__(
        self,
        request: Request,
        *,
        platform: str,
        attempt: int,
        credentials: CredentialLookup | None,
        emitter: Emitter,
        partition: int | None = None,
    ) -> None:
        self.request = request
        self.activity: JSONDict = json_copy(request.activity)
        """A private copy of the request's activity: handlers may change and return it."""
        self.platform = platform
        self.attempt = attempt
        """1 on first delivery; higher when an earlier attempt crashed the runner."""
        self.partition = partition
        """The request topic partition the request came from (None outside a runner)."""
        self._credentials = credentials
        self._emitter = emitter

    @cached_property
    def log(self) -> Any:
        """A logger bound to this request (built on first use: most requests log nothing)."""
        return structlog.get_logger("platform").bind(
            platform=self.platform, activity_id=self.request.activity_id, verb=self.request.verb
        )

    @property
    def session_id(self) -> str:
        return self.request.session_id

    @property
    def actor_id(self) -> str:
        actor = self.request.activity.get("actor")
        return str(actor.get("id", "")) if isinstance(actor, dict) else ""

    async def credentials(self) -> JSONDict:
        """The session's credentials activity for this actor; PlatformError if there is none."""
        missing = f"credentials not found for {self.platform}:{self.actor_id}"
        if self._credentials is None:
            raise PlatformError(missing)
        found = await self._credentials.get(self.session_id, self.platform, self.actor_id)
        if found is None:
            raise PlatformError(missing)
        return found

    def emit(
        self,
        session_id: str,
        activity: JSONDict,
        *,
        verb: str | None = None,
        error: str | None = None,
        reply_route: str | None = None,
    ) -> bool:
        """Queue an unsolicited event for a session this runner has seen (or whose
        ``reply_route`` is given); False if the route is unknown."""
        return self._emitter.emit(
            session_id, activity, verb=verb, error=error, reply_route=reply_route
        )


Handler = Callable[[Context], Awaitable[JSONDict | None]]
"""Returns the result activity, or None to answer with the request itself."""


class Platform(ABC):
    """Base class of every platform. Subclasses set ``name`` and implement ``handlers``."""

    name: ClassVar[str]

    def __init__(
        self, settings: RunnerSettings, descriptor: PlatformDescriptor, emitter: Emitter
    ) -> None:
        self.settings = settings
        self.descriptor = descriptor
        self.emitter = emitter

    @property
    def persistent(self) -> bool:
        """Persistent platforms keep connections across requests (IRC, XMPP)."""
        return self.descriptor.persistent

    @abstractmethod
    def handlers(self) -> Mapping[str, Handler]:
        """Verb -> handler. A verb the descriptor lists but this map lacks is an error result."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Called once before the first request."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Called once on shutdown, after the last request."""

    async def session_closed(self, session_id: str) -> None:  # noqa: B027 - optional hook
        """The session ended: persistent platforms detach it from their connections."""

    async def session_resumed(self, session_id: str, reply_route: str) -> None:  # noqa: B027
        """A recovered session moved to the gateway behind ``reply_route``: persistent
        platforms send its connections' events there from now on."""

    async def partitions_assigned(self, partitions: set[int]) -> None:  # noqa: B027
        """This runner now owns these request partitions (persistent platforms restore the
        connections recorded for them). Called from the rebalance callback: keep it short."""

    async def partitions_revoked(self, partitions: set[int]) -> None:  # noqa: B027
        """These request partitions go to another runner, after their in-flight requests
        finished: persistent platforms close (without forgetting) their connections."""


PlatformFactory = Callable[[RunnerSettings, PlatformDescriptor, Emitter], Platform]
"""A Platform subclass is one; so is any callable with this signature."""


def describe(value: Any) -> str:
    """The message of an exception as the client sees it (``Error: <message>``)."""
    text = str(value)
    if isinstance(value, CodeError) and text:
        return text
    return f"Error: {text}" if text else f"Error: {type(value).__name__}"
