"""The machine's CPU accounting the benchmarks report (``benchmarks.measure``)."""

from __future__ import annotations

import os

import pytest

from benchmarks.measure import machine_times

TICKS = os.sysconf("SC_CLK_TCK")


def stat_text(user: int, nice: int, system: int, idle: int, iowait: int, irq: int,
              softirq: int, steal: int, guest: int = 0, guest_nice: int = 0) -> str:  # fmt: skip
    fields = (user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice)
    return "cpu  " + " ".join(map(str, fields)) + "\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 12345\n"


def test_steal_is_neither_busy_nor_idle() -> None:
    times = machine_times(stat_text(100, 10, 50, 700, 20, 5, 15, 100))

    assert times.busy == pytest.approx((100 + 10 + 50 + 5 + 15) / TICKS)
    assert times.stolen == pytest.approx(100 / TICKS)
    assert times.total == pytest.approx(1000 / TICKS)


def test_guest_time_is_not_counted_twice() -> None:
    # The kernel counts a guest's time in user (and nice) as well as in guest.
    with_guests = machine_times(stat_text(100, 10, 50, 700, 20, 5, 15, 100, 40, 4))
    without = machine_times(stat_text(100, 10, 50, 700, 20, 5, 15, 100))

    assert with_guests == without


def test_this_machines_stat_adds_up() -> None:
    times = machine_times()

    assert times.total > 0
    assert 0 <= times.busy <= times.total
    assert 0 <= times.stolen <= times.total - times.busy


def test_refuses_text_that_is_not_proc_stat() -> None:
    with pytest.raises(ValueError, match="cpu total"):
        machine_times("intr 1 2 3\n")
