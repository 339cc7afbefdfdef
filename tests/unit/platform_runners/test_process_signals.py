"""The runner's stop signals: a deadline after the first, an immediate exit on the second."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from platform_runners import process
from platform_runners.settings import RunnerSettings


class _Timer:
    started: list[_Timer] = []

    def __init__(self, interval: float, function: Any, args: tuple[Any, ...] = ()) -> None:
        self.interval, self.function, self.args = interval, function, args
        self.daemon = False

    def start(self) -> None:
        _Timer.started.append(self)


def test_first_signal_stops_with_a_deadline_second_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(process.os, "_exit", exits.append)
    monkeypatch.setattr(process.threading, "Timer", _Timer)
    _Timer.started.clear()
    stop = asyncio.Event()
    settings = RunnerSettings(shutdown_grace=4)

    process._on_stop_signal(stop, settings)
    assert stop.is_set() and exits == []
    (timer,) = _Timer.started
    assert timer.daemon and timer.interval == 4 + process.SHUTDOWN_SLACK

    timer.function(*timer.args)
    assert exits == [process.EXIT_FATAL]

    process._on_stop_signal(stop, settings)
    assert exits == [process.EXIT_FATAL, process.EXIT_FATAL]
    assert len(_Timer.started) == 1
