"""The runners' settings (``SOCKETHUB_*`` variables and the same CLI flags).

The per-platform settings are models of their own inside :class:`RunnerSettings`, each
with its own variable prefix (``SOCKETHUB_IRC_``, ``SOCKETHUB_XMPP_``); a platform reads
them from the runner settings it is constructed with, never from the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sockethub.runtime.settings import CommonSettings, EnvSettings, from_environment

SHUTDOWN_SLACK = 20.0
"""Seconds beyond ``shutdown_grace`` that a stopping runner may take before it gives up."""


class PersistentSettings(EnvSettings):
    """Connection pooling of the persistent platforms (IRC, XMPP)."""

    model_config = SettingsConfigDict(env_prefix="SOCKETHUB_", extra="ignore")

    connection_grace: float = Field(
        20.0, ge=0, description="Seconds a connection without sessions stays open (15-30 in spec)"
    )
    restore_wait: float = Field(
        60.0, gt=0, description="Seconds a request waits for its connection's restoration"
    )
    orphan_check_interval: float = Field(
        1.0,
        ge=0,
        description="Seconds between checks of the gateways' liveness keys: the sessions of a "
        "gateway that died are detached, and their connections close after the grace "
        "(0 turns the check off)",
    )


class IrcSettings(EnvSettings):
    """The ``irc`` platform."""

    model_config = SettingsConfigDict(env_prefix="SOCKETHUB_IRC_", extra="ignore")

    tls_verify: bool = Field(True, description="Verify IRC servers' TLS certificates")
    ca_file: str | None = Field(None, description="CA bundle for IRC TLS (default: the system's)")
    reconnect_window: float = Field(
        60.0, ge=0, description="Seconds to keep reconnecting after an IRC server went away"
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for an IRC server's answer")


class XmppSettings(EnvSettings):
    """The ``xmpp`` platform."""

    model_config = SettingsConfigDict(env_prefix="SOCKETHUB_XMPP_", extra="ignore")

    tls_verify: bool = Field(True, description="Verify XMPP servers' TLS certificates")
    ca_file: str | None = Field(None, description="CA bundle for XMPP TLS (default: the system's)")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for an XMPP server's answer")
    allow_plaintext: str = Field(
        "",
        description=(
            "XMPP servers (host or host:port, comma-separated) that may receive the password "
            "without TLS; by default none"
        ),
    )
    reconnect_window: float = Field(
        60.0, ge=0, description="Seconds to keep reconnecting after an XMPP server went away"
    )


class DavSettings(EnvSettings):
    """The ``caldav`` and ``carddav`` platforms (Sockethub's per-package settings, shared)."""

    model_config = SettingsConfigDict(env_prefix="SOCKETHUB_DAV_", extra="ignore")

    timeout: float = Field(
        15.0,
        gt=0,
        description=(
            "Seconds one DAV request may take, with its redirects, authentication retries and body"
        ),
    )
    allow_insecure_http: bool = Field(
        False,
        description=(
            "Accept http:// DAV servers (passwords and tokens then travel in the clear); "
            "non-public addresses also need SOCKETHUB_FETCH_ALLOWLIST"
        ),
    )
    discovery_cache: float = Field(
        30.0,
        ge=0,
        description=(
            "Seconds a DAV account's discovered calendars or address books are reused by "
            "query, create, update and delete (0: discover on every request; fetch always does)"
        ),
    )


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
        "",
        description=(
            "CIDRs that runners may connect to although they are not public: feeds and metadata "
            "fetches, IRC, XMPP, CalDAV and CardDAV servers"
        ),
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
    ready_file: Path | None = Field(
        None,
        description=(
            "Created once the runner has its partitions (removed at start): a supervisor "
            "restarts a runner that got this far at once after a crash, and backs off only "
            "for one that cannot start"
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
    commit_gap_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description=(
            "Least time between the end of one transaction (or commit) and the start of the "
            "next: the coordinator is still writing the last one's markers, and answers "
            "that come meanwhile join the next one. A commit after a quiet spell starts at once"
        ),
    )
    session_timeout_ms: int = Field(
        10000, ge=6000, description="Kafka consumer group session timeout"
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address of the runner's /healthz, /readyz and /metrics (with metrics_port)",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve /healthz, /readyz and Prometheus /metrics on this port when set",
    )
    persistent: PersistentSettings = Field(
        default_factory=lambda: from_environment(PersistentSettings),
        description="Persistent connections (IRC and XMPP)",
    )
    irc: IrcSettings = Field(
        default_factory=lambda: from_environment(IrcSettings), description="The irc platform"
    )
    xmpp: XmppSettings = Field(
        default_factory=lambda: from_environment(XmppSettings), description="The xmpp platform"
    )
    dav: DavSettings = Field(
        default_factory=lambda: from_environment(DavSettings),
        description="The caldav and carddav platforms",
    )
