"""An IrcPlatform outside a runner: in-memory credentials, state store and event sink."""

from __future__ import annotations

import uuid
from typing import Any

from platform_runners.irc.platform import IrcPlatform, IrcSettings
from platform_runners.persistent_platform import PersistentSettings
from platform_runners.persistent_state import MemoryStateStore
from schemas.envelopes import JSONDict
from tests.fixtures.persistent import (
    LOOPBACK_ALLOWLIST,
    MemoryCredentials,
    RecordingEmitter,
    call_handler,
    runner_parts,
)
from tests.integration.irc.ngircd import Ngircd


class Harness:
    def __init__(
        self,
        server: Ngircd,
        *,
        store: MemoryStateStore | None = None,
        credentials: MemoryCredentials | None = None,
        grace: float = 1.0,
        allowlist: str = LOOPBACK_ALLOWLIST,
    ) -> None:
        self.server = server
        self.sink = RecordingEmitter()
        self.store = store or MemoryStateStore()
        self.credentials = credentials or MemoryCredentials()
        settings, descriptor = runner_parts("irc", allowlist)
        self.platform = IrcPlatform(
            settings,
            descriptor,
            self.sink,
            store=self.store,
            credentials=self.credentials,
            options=PersistentSettings.model_validate(
                {"connection_grace": grace, "orphan_check_interval": 0}
            ),
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
        return await call_handler(
            self.platform,
            session,
            verb,
            self.actor(nick),
            credentials=self.credentials,
            emitter=self.sink,
            partition=partition,
            **fields,
        )


def new_nick() -> str:
    return f"p{uuid.uuid4().hex[:7]}"
