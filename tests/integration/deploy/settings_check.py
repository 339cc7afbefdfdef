"""What the Compose and Helm tests check of a deployed service's settings."""

from __future__ import annotations

import os
from typing import TypeVar

import pytest
from pydantic_settings import BaseSettings

from sockethub.runtime.settings import variables

S = TypeVar("S", bound=BaseSettings)


def load_deployed_settings(
    model: type[S], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, what: str
) -> S:
    """``model`` read from exactly ``env`` (no other ``SOCKETHUB_*`` variable): every
    variable must be one of its settings, and the values ones the program accepts."""
    known = variables(model)
    assert set(env) - known == set(), f"{what}: unknown settings"
    for name in list(os.environ):
        if name.startswith("SOCKETHUB_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return model()  # raises on a value the program would refuse
