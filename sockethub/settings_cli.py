"""Every settings key is also a CLI flag: ``kafka_bootstrap`` is ``--kafka-bootstrap``.

A flag is its environment variable without ``SOCKETHUB_``: the nested per-platform
models keep their prefix (``SOCKETHUB_IRC_TIMEOUT`` is ``--irc-timeout``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from platform_runners.settings import RunnerSettings
from sockethub.devstack.errors import StackError
from sockethub.runtime.settings import (
    ENV_PREFIX,
    FILE_SUFFIX,
    SettingsError,
    env_prefix,
    is_secret,
    nested_models,
    settings_fields,
    unknown_variables,
    variables,
)

S = TypeVar("S", bound=BaseSettings)

TOOLING_VARIABLES: dict[str, str] = {
    "SOCKETHUB_CACHE_DIR": (
        "Where `sockethub dev` and the tests keep downloaded Kafka jars and tools "
        "(default `~/.cache/sockethub`)"
    ),
    "SOCKETHUB_IMAGE": "Image that `compose/compose.yaml` runs (read by Docker Compose)",
}
"""Variables the development and deployment tooling reads, not a settings model."""


def flag_name(variable: str) -> str:
    return "--" + variable.removeprefix(ENV_PREFIX).lower().replace("_", "-")


def _dest(cls: type[BaseSettings], variable: str) -> str | None:
    """``irc.timeout`` for a nested field, the field name for a top-level one."""
    for name, sub in nested_models(cls).items():
        for sub_variable, sub_name, _ in settings_fields(sub):
            if sub_variable == variable:
                return f"{name}.{sub_name}"
    return None


def add_settings_flags(parser: argparse.ArgumentParser, cls: type[BaseSettings]) -> None:
    group = parser.add_argument_group("settings (each also an environment variable)")
    for variable, name, info in settings_fields(cls):
        dest = _dest(cls, variable) or name
        also = f", or {variable}{FILE_SUFFIX}" if is_secret(info) else ""
        help_text = f"{info.description or ''} [{variable}{also}]"
        if info.annotation is bool:
            group.add_argument(
                flag_name(variable), dest=dest, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip
        else:
            group.add_argument(flag_name(variable), dest=dest, default=argparse.SUPPRESS,
                               help=help_text, metavar=name.upper())  # fmt: skip


def _problems(cls: type[BaseSettings], err: ValidationError) -> str:
    prefix = env_prefix(cls)
    return "; ".join(
        f"{prefix}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors()
    )


def _build(cls: type[S], given: Mapping[str, Any]) -> S:
    """``cls`` from flags and the environment; a bad value names its variable, not its text."""
    try:
        return cls(**given)
    except ValidationError as err:
        raise StackError(f"invalid settings: {_problems(cls, err)}") from None
    except SettingsError as err:
        raise StackError(f"invalid settings: {err}") from None


def settings_from_args(cls: type[S], args: argparse.Namespace) -> S:
    """Flags given on the command line win over the environment."""
    values = vars(args)
    given: dict[str, Any] = {k: v for k, v in values.items() if k in cls.model_fields}
    for name, sub in nested_models(cls).items():
        sub_given = {
            key.partition(".")[2]: value
            for key, value in values.items()
            if key.startswith(f"{name}.")
        }
        given[name] = _build(sub, sub_given)
    return _build(cls, given)


SETTINGS_MODELS: tuple[type[BaseSettings], ...] = (GatewaySettings, RunnerSettings)


def known_variables() -> set[str]:
    """Every ``SOCKETHUB_*`` variable some model or the tooling reads."""
    known = set(TOOLING_VARIABLES)
    for cls in SETTINGS_MODELS:
        known |= variables(cls)
    return known


def unknown_variable_report(environ: Mapping[str, str]) -> list[str]:
    return unknown_variables(known_variables(), environ)


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "(per process)"
    default: object = info.default
    if default is None or isinstance(default, BaseModel) or is_secret(info):
        return ""
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def markdown_rows(cls: type[BaseModel], skip: frozenset[str] = frozenset()) -> list[str]:
    """Configuration table rows for ``cls`` (``python -m sockethub.settings_doc``)."""
    assert issubclass(cls, BaseSettings)
    rows = []
    prefix = env_prefix(cls)
    for name, info in cls.model_fields.items():
        if name in skip or name in nested_models(cls):
            continue
        variable = f"{prefix}{name.upper()}"
        described = info.description or ""
        if is_secret(info):
            described += f" (or a file: `{variable}{FILE_SUFFIX}`)"
        rows.append(f"| `{variable}` | `{flag_name(variable)}` | {_default(info)} | {described} |")
    return rows
