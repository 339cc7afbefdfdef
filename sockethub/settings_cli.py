"""Every settings key is also a CLI flag: ``kafka_bootstrap`` is ``--kafka-bootstrap``."""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sockethub.devstack.errors import StackError
from sockethub.runtime.settings import ENV_PREFIX

S = TypeVar("S", bound=BaseModel)


def add_settings_flags(parser: argparse.ArgumentParser, cls: type[BaseModel]) -> None:
    group = parser.add_argument_group("settings (each also an environment variable)")
    for name, info in cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = f"{info.description or ''} [{ENV_PREFIX}{name.upper()}]"
        if info.annotation is bool:
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip
        else:
            group.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=help_text,
                               metavar=name.upper())  # fmt: skip


def settings_from_args(cls: type[S], args: argparse.Namespace) -> S:
    """Flags given on the command line win over the environment."""
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k in cls.model_fields}
    try:
        return cls(**given)
    except ValidationError as err:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors()
        )
        raise StackError(f"invalid settings: {problems}") from None


def markdown_rows(cls: type[BaseModel], skip: frozenset[str] = frozenset()) -> list[str]:
    """The README's configuration table rows for ``cls`` (``python -m sockethub.settings_doc``)."""
    rows = []
    for name, info in cls.model_fields.items():
        if name in skip:
            continue
        default: object = info.default
        if info.default_factory is not None:
            default = "(per process)"
        shown = "" if default is None or hasattr(default, "get_secret_value") else f"`{default}`"
        rows.append(
            f"| `{ENV_PREFIX}{name.upper()}` | `--{name.replace('_', '-')}` | {shown} "
            f"| {info.description or ''} |"
        )
    return rows
