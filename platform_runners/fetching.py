"""What the fetching platforms (``feeds``, ``metadata``) share: one ``fetch`` verb that
reads the URL in ``actor.id`` through the guarded client (:mod:`platform_runners.http_guard`).

A :class:`FetchError` is answered at once as ``Error: <message>``, never retried.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping

from platform_runners.http_guard import FetchError, GuardedClient, GuardSettings
from platform_runners.platform import Context, Emitter, Handler, Platform, PlatformError
from platform_runners.settings import RunnerSettings
from schemas.envelopes import JSONDict
from schemas.platform_registry import PlatformDescriptor


class FetchPlatform(Platform):
    """A platform whose only verb, ``fetch``, turns one request into one guarded fetch."""

    def __init__(
        self, settings: RunnerSettings, descriptor: PlatformDescriptor, emitter: Emitter
    ) -> None:
        super().__init__(settings, descriptor, emitter)
        self.client = GuardedClient(GuardSettings.from_allowlist(settings.fetch_allowlist))

    def handlers(self) -> Mapping[str, Handler]:
        return {"fetch": self.fetch}

    @abstractmethod
    async def fetch_result(self, request: JSONDict) -> JSONDict:
        """The result activity for a ``fetch`` request; raises :class:`FetchError`."""

    async def fetch(self, ctx: Context) -> JSONDict:
        try:
            return await self.fetch_result(ctx.activity)
        except FetchError as exc:  # answered, not retried: the client sees it at once
            ctx.log.info(f"{self.name}.fetch_failed", error=str(exc))
            raise PlatformError(str(exc)) from None
