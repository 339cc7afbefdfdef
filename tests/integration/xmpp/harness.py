"""An XmppPlatform outside a runner: in-memory credentials, state store and event sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from platform_runners.persistent_platform import PersistentSettings
from platform_runners.persistent_state import MemoryStateStore
from platform_runners.platform import Context, PlatformError
from platform_runners.settings import RunnerSettings
from platform_runners.xmpp.config import XmppSettings
from platform_runners.xmpp.platform import XmppPlatform
from schemas.envelopes import JSONDict, Request
from schemas.platform_registry import PlatformRegistry, canonical_context
from tests.integration.xmpp.prosody import MUC, Prosody

WAIT = 30.0


@dataclass
class Sink:
    """The runner's Emitter: records (session, activity, error)."""

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
        self.events.append((session_id, activity, error))
        return True

    def of(self, session_id: str) -> list[JSONDict]:
        return [a for s, a, _ in self.events if s == session_id]

    async def wait_for(
        self, session_id: str, predicate: Callable[[JSONDict], bool], *, within: float = WAIT
    ) -> JSONDict:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for activity in self.of(session_id):
                if predicate(activity):
                    return activity
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"no matching event for {session_id} in {within}s: {self.of(session_id)}"
        )


@dataclass
class Credentials:
    stored: dict[tuple[str, str, str], JSONDict] = field(default_factory=dict)

    async def get(self, session_id: str, platform: str, actor_id: str) -> JSONDict | None:
        return self.stored.get((session_id, platform, actor_id))


class Harness:
    def __init__(self, server: Prosody, *, grace: float = 1.0, window: float = 30.0) -> None:
        self.server = server
        self.sink = Sink()
        self.store = MemoryStateStore()
        self.credentials = Credentials()
        settings = RunnerSettings.model_validate({"secret": "s" * 32, "request_partitions": 3})
        descriptor = PlatformRegistry(["xmpp"]).get("xmpp")
        assert descriptor is not None
        self.platform = XmppPlatform(
            settings,
            descriptor,
            self.sink,
            store=self.store,
            credentials=self.credentials,
            options=PersistentSettings.model_validate({"connection_grace": grace}),
            xmpp=XmppSettings.model_validate(
                {"timeout": 20, "reconnect_window": window, "ca_file": str(server.cert)}
            ),
        )

    @staticmethod
    def actor(jid: str) -> JSONDict:
        return {"id": jid, "type": "person", "name": jid.split("@")[0]}

    @staticmethod
    def room(name: str) -> JSONDict:
        return {"id": f"{name}@{MUC}", "type": "room"}

    def credentials_for(self, session: str, jid: str, password: str, **extra: Any) -> None:
        obj: JSONDict = {
            "type": "credentials",
            "userAddress": jid,
            "password": password,
            "resource": "test",
            "server": self.server.server,
            **extra,
        }
        activity = {"type": "credentials", "actor": self.actor(jid), "object": obj}
        self.credentials.stored[(session, "xmpp", jid)] = activity

    async def call(self, session: str, verb: str, jid: str, **fields: Any) -> JSONDict | None:
        activity: JSONDict = {
            "@context": canonical_context("xmpp"),
            "type": verb,
            "actor": self.actor(jid),
            **fields,
        }
        request = Request(
            session_id=session,
            reply_route=f"route-{session}",
            platform="xmpp",
            verb=verb,
            activity=activity,
        )
        ctx = Context(
            request,
            platform="xmpp",
            attempt=1,
            credentials=self.credentials,
            emitter=self.sink,
            partition=0,
        )
        return await self.platform.handlers()[verb](ctx)

    async def error_of(self, session: str, verb: str, jid: str, **fields: Any) -> str:
        """The client-facing error text of a call that must fail."""
        try:
            await self.call(session, verb, jid, **fields)
        except PlatformError as exc:
            return str(exc)
        raise AssertionError(f"{verb} did not fail")

    async def login(self, session: str, jid: str, password: str) -> None:
        self.credentials_for(session, jid, password)
        await self.call(session, "connect", jid)

    async def close(self) -> None:
        await self.platform.stop()
