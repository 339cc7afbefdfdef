"""A DAV platform called directly, as its runner would call it (no Kafka, no gateway)."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from platform_runners.dav.platform import DavPlatform
from platform_runners.platform import Context, PlatformError, describe
from platform_runners.settings import RunnerSettings
from schemas.envelopes import JSONDict, Request
from schemas.platform_registry import PlatformRegistry, canonical_context
from tests.fixtures.radicale import ALLOWLIST

P = TypeVar("P", bound=DavPlatform)


class NoEmit:
    def emit(self, session_id: str, activity: JSONDict, **kwargs: Any) -> bool:
        return False


class Credentials:
    """The session's stored credentials, keyed like the store: (platform, actor id)."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], JSONDict] = {}

    def put(self, platform: str, actor: str, obj: JSONDict) -> None:
        self.stored[(platform, actor)] = {
            "@context": canonical_context(platform),
            "type": "credentials",
            "actor": {"id": actor, "type": "person"},
            "object": {"type": "credentials", **obj},
        }

    async def get(self, session_id: str, platform: str, actor_id: str) -> JSONDict | None:
        return self.stored.get((platform, actor_id))


def make_platform(cls: type[P], *, allowlist: str = ALLOWLIST, insecure: bool = True,
                  cache: float = 30.0) -> P:  # fmt: skip
    descriptor = PlatformRegistry([cls.name]).get(cls.name)
    assert descriptor is not None
    settings = RunnerSettings.model_validate(
        {
            "fetch_allowlist": allowlist,
            "dav": {"allow_insecure_http": insecure, "timeout": 30.0, "discovery_cache": cache},
        }
    )
    return cls(settings, descriptor, NoEmit())


def activity(platform: str, verb: str, actor: str, **fields: Any) -> JSONDict:
    found: JSONDict = {
        "@context": canonical_context(platform),
        "type": verb,
        "actor": {"id": actor, "type": "person"},
    }
    found.update(fields)
    return found


class Session:
    """One client session of one platform: its credentials, and its requests."""

    def __init__(self, platform: DavPlatform, actor: str) -> None:
        self.platform = platform
        self.actor = actor
        self.credentials = Credentials()
        self.validator = PlatformRegistry([platform.name]).validator(platform.name, "messages")

    def login(self, url: str, **secret: str) -> None:
        self.credentials.put(self.platform.name, self.actor, {"url": url, **secret})

    async def send(self, verb: str, **fields: Any) -> JSONDict:
        message = activity(self.platform.name, verb, self.actor, **fields)
        assert self.validator is not None
        errors = [e.message for e in self.validator.iter_errors(message)]
        assert not errors, errors  # everything the tests send passes the gateway's validation
        ctx = Context(
            Request("s1", "replies", self.platform.name, verb, message),
            platform=self.platform.name,
            attempt=1,
            credentials=self.credentials,
            emitter=NoEmit(),
        )
        result = await self.platform.handlers()[verb](ctx)
        assert result is not None
        return result

    async def error(self, verb: str, **fields: Any) -> str:
        """The ``error`` the client would see."""
        with pytest.raises(PlatformError) as caught:
            await self.send(verb, **fields)
        return describe(caught.value)
