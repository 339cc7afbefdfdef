"""An XmppPlatform outside a runner: in-memory credentials, state store and event sink."""

from __future__ import annotations

from typing import Any

from platform_runners.persistent_platform import PersistentSettings
from platform_runners.persistent_state import MemoryStateStore
from platform_runners.platform import PlatformError
from platform_runners.xmpp.config import XmppSettings
from platform_runners.xmpp.platform import XmppPlatform
from schemas.envelopes import JSONDict
from tests.fixtures.persistent import (
    LOOPBACK_ALLOWLIST,
    MemoryCredentials,
    RecordingEmitter,
    call_handler,
    runner_parts,
)
from tests.integration.xmpp.prosody import MUC, Prosody


class Harness:
    def __init__(
        self,
        server: Prosody,
        *,
        grace: float = 1.0,
        window: float = 30.0,
        allowlist: str = LOOPBACK_ALLOWLIST,
        **xmpp: Any,
    ) -> None:
        self.server = server
        self.sink = RecordingEmitter()
        self.store = MemoryStateStore()
        self.credentials = MemoryCredentials()
        settings, descriptor = runner_parts("xmpp", allowlist)
        self.platform = XmppPlatform(
            settings,
            descriptor,
            self.sink,
            store=self.store,
            credentials=self.credentials,
            options=PersistentSettings.model_validate(
                {"connection_grace": grace, "orphan_check_interval": 0}
            ),
            xmpp=XmppSettings.model_validate(
                {
                    "timeout": 20,
                    "reconnect_window": window,
                    "ca_file": str(server.cert),
                    **xmpp,
                }
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
        return await call_handler(
            self.platform,
            session,
            verb,
            self.actor(jid),
            credentials=self.credentials,
            emitter=self.sink,
            **fields,
        )

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
