"""A started gateway and runner have frozen their start-up heaps (``sockethub.runtime.heap``)."""

from __future__ import annotations

import json

from tests.fixtures.gateway import GatewayProcess
from tests.fixtures.runners import RunnerProcess

# A started gateway or runner holds some 70 000-130 000 objects; far fewer would mean
# the freeze ran before start-up had finished.
MIN_FROZEN = 50_000


def frozen_counts(log_text: str) -> list[int]:
    counts = []
    for line in log_text.splitlines():
        if '"startup_heap_frozen"' in line:
            counts.append(json.loads(line)["objects"])
    return counts


def test_gateway_freezes_its_heap_once_started(served_gateway: GatewayProcess) -> None:
    counts = frozen_counts(served_gateway.log_text())
    assert len(counts) == 1
    assert counts[0] >= MIN_FROZEN


def test_runner_freezes_its_heap_once_started(dummy_runner: RunnerProcess) -> None:
    dummy_runner.wait_for_log('"startup_heap_frozen"')
    counts = frozen_counts(dummy_runner.log_text())
    assert len(counts) == 1
    assert counts[0] >= MIN_FROZEN
