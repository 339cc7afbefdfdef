"""The dummy platform: echo, greet, fail, throw, hang, and two crash probes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping

from platform_runners.platform import Context, Handler, Platform, PlatformError
from schemas.envelopes import JSONDict
from schemas.platform_registry import DUMMY_FAULT_VERBS

PLATFORM_ACTOR: JSONDict = {"id": "dummy", "type": "platform"}


def _content(ctx: Context) -> str:
    obj = ctx.activity.get("object")
    return str(obj.get("content", "")) if isinstance(obj, dict) else ""


class DummyPlatform(Platform):
    name = "dummy"

    def handlers(self) -> Mapping[str, Handler]:
        """The fault verbs only with ``SOCKETHUB_DUMMY_FAULTS``: any client could use them."""
        handlers: dict[str, Handler] = {
            "echo": self.echo,
            "greet": self.greet,
            "fail": self.fail,
            "throw": self.fail,
        }
        if self.settings.dummy_faults:
            # Each fault verb's handler is the method of the same name, as the schema lists it.
            handlers.update({verb: getattr(self, verb) for verb in DUMMY_FAULT_VERBS})
        return handlers

    async def echo(self, ctx: Context) -> JSONDict:
        """The request, answered by the platform and addressed back to its actor."""
        result = ctx.activity
        result["target"] = result.get("actor")
        result["actor"] = dict(PLATFORM_ACTOR)
        return result

    async def greet(self, ctx: Context) -> JSONDict:
        result = await self.echo(ctx)
        obj = result.get("object")
        obj = dict(obj) if isinstance(obj, dict) else {}
        obj["content"] = f"{self.settings.greeting} {_content(ctx)}"
        result["object"] = obj
        return result

    async def fail(self, ctx: Context) -> JSONDict:
        raise PlatformError(_content(ctx))

    async def hang(self, ctx: Context) -> JSONDict:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def exit1(self, ctx: Context) -> JSONDict:
        """A crash probe: the process ends at once, as a crashing platform library would."""
        ctx.log.warning("dummy.exit1")
        sys.stderr.flush()
        os._exit(1)

    async def sigkill(self, ctx: Context) -> JSONDict:
        ctx.log.warning("dummy.sigkill")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")
