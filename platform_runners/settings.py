"""The runners' settings (``SOCKETHUB_*`` variables and the same CLI flags)."""

from __future__ import annotations

from pydantic import Field

from sockethub.runtime.settings import CommonSettings


class RunnerSettings(CommonSettings):
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
    instance: str = Field(
        "0",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description=(
            "This runner's instance name, unique among the runners of one platform and stable "
            "across its restarts (it names the Kafka transactional id)"
        ),
    )
    job_timeout: float = Field(
        300.0, gt=0, description="Seconds a handler may run before the runner gives up on it"
    )
    shutdown_grace: float = Field(
        10.0, ge=0, description="Seconds to finish in-flight requests on SIGTERM or a rebalance"
    )
    transient_retries: int = Field(
        3, ge=0, description="Retries (with backoff) of a handler that raised TransientError"
    )
    max_buffered: int = Field(
        1000, ge=1, description="Requests fetched but not finished before fetching pauses"
    )
    session_timeout_ms: int = Field(
        10000, ge=6000, description="Kafka consumer group session timeout"
    )
    metrics_port: int | None = Field(
        None, description="Serve Prometheus metrics on this port (127.0.0.1) when set"
    )
