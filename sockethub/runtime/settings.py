"""Settings that the gateway, the runners and the tools share.

Every key is read from an environment variable with the ``SOCKETHUB_`` prefix
(``kafka_bootstrap`` from ``SOCKETHUB_KAFKA_BOOTSTRAP``) and is also a CLI
flag of the same name (``--kafka-bootstrap``), see ``sockethub.cli``. A secret
(a ``SecretStr`` field) may instead be read from a file named by the same variable
with ``_FILE`` appended (``SOCKETHUB_SECRET_FILE=/run/secrets/sockethub``).
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Self, TypeVar

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "SOCKETHUB_"
FILE_SUFFIX = "_FILE"


class SettingsError(ValueError):
    """A setting that cannot be read. The text names variables and paths, never values."""


def is_secret(info: FieldInfo) -> bool:
    annotation = info.annotation
    if annotation is SecretStr:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return SecretStr in typing.get_args(annotation)
    return False


def read_secret_file(variable: str, path: str) -> str:
    """The file's text without its trailing newline; errors say which file, not what it held."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise SettingsError(f"{variable}: cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{variable}: {path} is not UTF-8 text") from None
    return text.rstrip("\r\n")


class SecretFileSource(PydanticBaseSettingsSource):
    """``<VARIABLE>_FILE`` for every secret field: its value comes from that file."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        prefix = env_prefix(self.settings_cls)
        found: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            if not is_secret(info):
                continue
            variable = f"{prefix}{name.upper()}"
            path = self._environ.get(variable + FILE_SUFFIX)
            if path is None:
                continue
            if variable in self._environ:
                raise SettingsError(
                    f"{variable} and {variable}{FILE_SUFFIX} are both set: set only one"
                )
            found[name] = read_secret_file(variable + FILE_SUFFIX, path)
        return found


class EnvSettings(BaseSettings):
    """Base of every settings model: ``SOCKETHUB_*`` variables, secrets also from files."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # A flag (init) wins; a _FILE and its plain variable together are an error.
        return (init_settings, SecretFileSource(settings_cls, os.environ), env_settings)


E = TypeVar("E", bound=EnvSettings)


def from_environment(cls: type[E]) -> E:
    """``cls`` read from the environment alone (a nested model's default)."""
    return cls()


def env_prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix") or "")


def nested_models(cls: type[BaseSettings]) -> dict[str, type[EnvSettings]]:
    """Fields that are settings models of their own, each read with its own prefix."""
    found: dict[str, type[EnvSettings]] = {}
    for name, info in cls.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, EnvSettings):
            found[name] = annotation
    return found


def settings_fields(cls: type[BaseSettings]) -> Iterator[tuple[str, str, FieldInfo]]:
    """(environment variable, field name, field) of ``cls`` and of its nested models."""
    nested = nested_models(cls)
    prefix = env_prefix(cls)
    for name, info in cls.model_fields.items():
        if name not in nested:
            yield f"{prefix}{name.upper()}", name, info
    for sub in nested.values():
        yield from settings_fields(sub)


def variables(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable ``cls`` reads, ``_FILE`` variants included."""
    names: set[str] = set()
    for variable, _, info in settings_fields(cls):
        names.add(variable)
        if is_secret(info):
            names.add(variable + FILE_SUFFIX)
    return names


HINTS = {"SOCKETHUB_CORS_ORIGIN": "SOCKETHUB_ALLOWED_ORIGINS"}
"""Names Sockethub (Node.js) reads whose counterpart here is spelled differently."""


def unknown_variables(known: set[str], environ: Mapping[str, str]) -> list[str]:
    """``SOCKETHUB_*`` variables no model reads, each with a close match when there is one."""
    unknown = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        guess = HINTS.get(name) or next(
            iter(difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)), None
        )
        unknown.append(f"{name} (did you mean {guess}?)" if guess else name)
    return unknown


class CommonSettings(EnvSettings):
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
    kafka_batch_above_rate: float = Field(
        500.0,
        ge=0,
        description=(
            "Records per second a client must see before it batches: below it the "
            "gateway's producer sends at once (no produce_linger_ms) and a runner's fetch "
            "returns at the first record (no kafka_fetch_min_bytes); 0 always batches, and "
            "then a runner also lingers before every transaction, not only between them"
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
        "dummy,feeds,metadata,irc,xmpp,caldav,carddav",
        description="Enabled platforms, comma-separated (gateways accept, `runners` starts them)",
    )
    dummy_faults: bool = Field(
        False,
        description=(
            "Give the dummy platform its fault verbs (hang, exit1, sigkill), which let any "
            "client stall or crash a runner: for tests and `sockethub dev` only"
        ),
    )
    topic_prefix: str = Field("sockethub", description="Prefix of every topic name")
    request_partitions: int = Field(6, ge=1, description="Partitions of each request topic")
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics")
    create_topics: bool = Field(
        True,
        description="Create missing topics at start; off where pods may not create topics "
        "(`sockethub topics` creates them beforehand, as the chart's Job does)",
    )
    audit_retention_ms: int = Field(
        30 * 24 * 3600 * 1000,
        ge=-1,
        description="Retention of request, reply and event topics (-1 keeps forever)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")
    log_format: Literal["json", "console"] = Field("json", description="Log line format")
    heartbeat_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between a gateway's liveness writes to Redis (runners read them "
        "to release the IRC and XMPP connections of a gateway that died)",
    )
    heartbeat_ttl: float = Field(
        5.0,
        gt=0,
        description="Seconds a gateway's liveness key outlives its last write: several "
        "intervals, so a gateway that is merely slow keeps its sessions",
    )
    recovery_window: int = Field(
        120,
        ge=0,
        description="Seconds a Socket.IO session that lost its connection (or its gateway) "
        "can be recovered by a client that reconnects with its pid and offset (0: off)",
    )

    @model_validator(mode="after")
    def _heartbeat_outlives_interval(self) -> Self:
        if self.heartbeat_ttl < 2 * self.heartbeat_interval:
            raise ValueError(
                "SOCKETHUB_HEARTBEAT_TTL must be at least twice SOCKETHUB_HEARTBEAT_INTERVAL"
            )
        return self

    def platform_ids(self) -> list[str]:
        return [p.strip() for p in self.platforms.split(",") if p.strip()]
