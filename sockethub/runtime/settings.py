"""Settings that the gateway, the runners and the tools share.

Every key is read from an environment variable with the ``SOCKETHUB_`` prefix
(``kafka_bootstrap`` from ``SOCKETHUB_KAFKA_BOOTSTRAP``) and is also a CLI
flag of the same name (``--kafka-bootstrap``), see ``sockethub.cli``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SOCKETHUB_"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to Kafka"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle for Kafka TLS")
    kafka_retry_backoff_ms: int = Field(
        20,
        ge=1,
        le=60000,
        description=(
            "Pause before a Kafka client retries a failed request. A runner's next "
            "transaction often reaches a partition before the broker has written the "
            "previous one's commit markers; the broker refuses it as retriable, and every "
            "answer in it waits this long"
        ),
    )
    kafka_fetch_wait_ms: int = Field(
        25,
        ge=0,
        le=60000,
        description=(
            "Longest the broker holds a consumer's fetch while less than "
            "the fetch's minimum bytes are ready (runners, and the gateway's reply reader)"
        ),
    )
    kafka_fetch_min_bytes: int = Field(
        8192,
        ge=1,
        description=(
            "Bytes a runner's fetch waits for (up to kafka_fetch_wait_ms): fewer, fuller "
            "fetches under load; 1 answers every record at once at more CPU per record"
        ),
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL (session state only)")
    schema_registry_url: str | None = Field(
        None,
        description="Confluent-compatible schema registry; when set, records use its wire format",
    )
    log_keys: SecretStr | None = Field(
        None,
        description=(
            "Key ring for payload encryption in Kafka: comma-separated id:base64key pairs "
            "(16, 24 or 32 byte keys); the last one encrypts, all of them decrypt"
        ),
    )
    secret: SecretStr | None = Field(
        None,
        description=(
            "Server secret shared by gateways and runners; with each session's own secret it "
            "derives the key that encrypts the session's credentials in Redis"
        ),
    )
    platforms: str = Field(
        "dummy,feeds,metadata,irc,xmpp",
        description="Enabled platforms, comma-separated (gateways accept, `runners` starts them)",
    )
    topic_prefix: str = Field("sockethub", description="Prefix of every topic name")
    request_partitions: int = Field(6, ge=1, description="Partitions of each request topic")
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics")
    audit_retention_ms: int = Field(
        30 * 24 * 3600 * 1000,
        ge=-1,
        description="Retention of request, reply and event topics (-1 keeps forever)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")
    log_format: Literal["json", "console"] = Field("json", description="Log line format")

    def platform_ids(self) -> list[str]:
        return [p.strip() for p in self.platforms.split(",") if p.strip()]
