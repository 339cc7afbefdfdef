"""A third-party platform for the tests, installed through entry points (see ``install``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from platform_runners.platform import Context, Handler, Platform, TransientError
from schemas.envelopes import JSONDict

DESCRIPTOR: JSONDict = {
    "id": "probe",
    "version": "0.0.1",
    "persistent": False,
    "verbs": ["ping", "flaky"],
    "schemas": {"messages": {}},
}


def descriptor() -> JSONDict:
    return DESCRIPTOR


class ProbePlatform(Platform):
    """``ping`` emits a ``pong`` event to the session, then answers with the request itself;
    ``flaky`` fails transiently on its first try."""

    name = "probe"

    def handlers(self) -> Mapping[str, Handler]:
        return {"ping": self.ping, "flaky": self.flaky}

    async def ping(self, ctx: Context) -> JSONDict | None:
        ctx.emit(ctx.session_id, {"type": "pong", "actor": {"id": "probe", "type": "platform"}})
        return None

    async def flaky(self, ctx: Context) -> JSONDict | None:
        self.tries = getattr(self, "tries", 0) + 1
        if self.tries == 1:
            raise TransientError("try again")
        return {**ctx.activity, "object": {"type": "message", "content": f"tries={self.tries}"}}


def install(site: Path) -> Path:
    """A dist-info directory that declares the probe's entry points; put ``site`` on PYTHONPATH."""
    dist = site / "sockethub_probe-0.0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sockethub-probe\nVersion: 0.0.1\n")
    module = __name__
    (dist / "entry_points.txt").write_text(
        f"[sockethub.platforms]\nprobe = {module}:ProbePlatform\n\n"
        f"[sockethub.platform_schemas]\nprobe = {module}:descriptor\n"
    )
    return site
