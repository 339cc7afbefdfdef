"""An IrcPlatform outside a runner: in-memory credentials, state store and event sink."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from platform_runners.irc.platform import IrcPlatform, IrcSettings
from platform_runners.persistent_platform import PersistentSettings
from platform_runners.persistent_state import MemoryStateStore
from platform_runners.platform import Context
from platform_runners.settings import RunnerSettings
from schemas.envelopes import JSONDict, Request
from schemas.platform_registry import PlatformRegistry, canonical_context
from tests.integration.irc.ngircd import Ngircd


@dataclass
class Sink:
    """The runner's Emitter: records (session, activity, route)."""

    events: list[tuple[str, JSONDict, str | None]] = field(default_factory=list)

    def emit(
        self,
        session_id: str,
        activity: JSONDict,
        *,
        verb: str | None = None,
        error: str | None = None,
        reply_route: str | None = None,
    ) -> bool:
        self.events.append((session_id, activity, reply_route))
        return True

    def of(self, session_id: str) -> list[JSONDict]:
        return [a for s, a, _ in self.events if s == session_id]


@dataclass
class Credentials:
    stored: dict[tuple[str, str, str], JSONDict] = field(default_factory=dict)

    async def get(self, session_id: str, platform: str, actor_id: str) -> JSONDict | None:
        return self.stored.get((session_id, platform, actor_id))


class Harness:
    def __init__(
        self,
        server: Ngircd,
        *,
        store: MemoryStateStore | None = None,
        credentials: Credentials | None = None,
        grace: float = 1.0,
    ) -> None:
        self.server = server
        self.sink = Sink()
        self.store = store or MemoryStateStore()
        self.credentials = credentials or Credentials()
        settings = RunnerSettings.model_validate({"secret": "s" * 32, "request_partitions": 3})
        descriptor = PlatformRegistry(["irc"]).get("irc")
        assert descriptor is not None
        self.platform = IrcPlatform(
            settings,
            descriptor,
            self.sink,
            store=self.store,
            credentials=self.credentials,
            options=PersistentSettings.model_validate({"connection_grace": grace}),
            irc=IrcSettings.model_validate({"reconnect_window": 20, "timeout": 20}),
        )

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def actor(self, nick: str) -> JSONDict:
        return {"id": f"{nick}@{self.host}", "type": "person", "name": nick}

    def room(self, channel: str) -> JSONDict:
        return {"id": f"{channel.lstrip('#')}@{self.host}", "type": "room", "name": channel}

    def credentials_for(self, session: str, nick: str, **extra: Any) -> None:
        obj: JSONDict = {"type": "credentials", "nick": nick, "server": self.host}
        obj.update({"port": self.server.port, "secure": False, **extra})
        activity = {"type": "credentials", "actor": self.actor(nick), "object": obj}
        self.credentials.stored[(session, "irc", f"{nick}@{self.host}")] = activity

    async def call(
        self, session: str, verb: str, nick: str, partition: int = 0, **fields: Any
    ) -> JSONDict | None:
        activity: JSONDict = {
            "@context": canonical_context("irc"),
            "type": verb,
            "actor": self.actor(nick),
            **fields,
        }
        request = Request(
            session_id=session,
            reply_route=f"route-{session}",
            platform="irc",
            verb=verb,
            activity=activity,
        )
        ctx = Context(
            request,
            platform="irc",
            attempt=1,
            credentials=self.credentials,
            emitter=self.sink,
            partition=partition,
        )
        handler = self.platform.handlers()[verb]
        return await handler(ctx)


def new_nick() -> str:
    return f"p{uuid.uuid4().hex[:7]}"
