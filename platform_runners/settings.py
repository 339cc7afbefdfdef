"""The runners' settings (``SOCKETHUB_*`` variables and the same CLI flags)."""

from __future__ import annotations

from pydantic import Field

from schemas.settings import CommonSettings


class RunnerSettings(CommonSettings):
    platforms: str = Field(
        "dummy,feeds,metadata,irc,xmpp", description="Platforms that `runners` starts"
    )
    concurrency: int = Field(
        32, ge=1, description="Sessions a runner works on at once (order kept within a session)"
    )
    transactions: bool = Field(
        True, description="Answer and commit in one Kafka transaction (exactly-once answers)"
    )
    max_attempts: int = Field(
        3, ge=1, description="Crashes a request may cause before it goes to the dead-letter topic"
    )
    fetch_allowlist: str = Field(
        "", description="CIDRs that feeds/metadata may fetch from although they are not public"
    )
    greeting: str = Field("Hello", description="The dummy platform's greeting")

    def platform_ids(self) -> list[str]:
        return [p.strip() for p in self.platforms.split(",") if p.strip()]
