"""A fetching platform (feeds, metadata) called directly, as its runner would (no Kafka)."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from platform_runners.fetching import FetchPlatform
from platform_runners.platform import Context, PlatformError, describe
from platform_runners.settings import RunnerSettings
from schemas.envelopes import JSONDict, Request
from schemas.platform_registry import PlatformRegistry
from tests.integration.fetch.loopback import ALLOWLIST

P = TypeVar("P", bound=FetchPlatform)


class NoEmit:
    def emit(self, session_id: str, activity: JSONDict, **kwargs: Any) -> bool:
        return False


def loopback_platform(cls: type[P]) -> P:
    """The platform as its runner would build it, allowed to fetch from the ``origin``."""
    descriptor = PlatformRegistry([cls.name]).get(cls.name)
    assert descriptor is not None
    return cls(RunnerSettings.model_validate({"fetch_allowlist": ALLOWLIST}), descriptor, NoEmit())


async def fetch(platform: FetchPlatform, activity: JSONDict) -> JSONDict:
    ctx = Context(
        Request("s1", "replies", platform.name, "fetch", activity),
        platform=platform.name,
        attempt=1,
        credentials=None,
        emitter=NoEmit(),
    )
    return await platform.handlers()["fetch"](ctx) or {}


async def error_of(platform: FetchPlatform, activity: JSONDict) -> str:
    """The error text the client would see (the runner prefixes ``Error: ``)."""
    with pytest.raises(PlatformError) as caught:
        await fetch(platform, activity)
    return describe(caught.value)
