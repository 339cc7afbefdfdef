"""Fixtures shared by the runner's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.unit.platform_runners.runner_fakes import Harness


@pytest.fixture
async def harness() -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**overrides: Any) -> Harness:
        made.append(Harness(**overrides))
        return made[-1]

    yield make
    for h in made:
        await h.stop_all()
