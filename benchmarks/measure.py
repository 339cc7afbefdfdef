"""Figures the benchmarks share: latency percentiles, a process's CPU time, the machine's."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile, rounded to 0.01; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))
    return round(ordered[index], 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class MachineTimes:
    """CPU seconds of the whole machine since boot, from the first line of /proc/stat."""

    busy: float
    """Time this machine's own processes and kernel ran (not idle, not stolen)."""
    stolen: float
    """Time the hypervisor ran other guests while this one had work (``steal``): on a
    shared host it slows every process here, and no process's own CPU time shows it."""
    total: float


def machine_times(stat_text: str | None = None) -> MachineTimes:
    """Parse the ``cpu`` line of /proc/stat (read now unless ``stat_text`` is given)."""
    if stat_text is None:
        stat_text = Path("/proc/stat").read_text()
    fields = stat_text.split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu":
        raise ValueError("not a /proc/stat text: its first line is not the cpu total")
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    # already counted in user and nice, so only the first eight add up to the total.
    values = [int(v) for v in fields[1:9]] + [0] * max(0, 9 - len(fields))
    ticks = os.sysconf("SC_CLK_TCK")
    idle, stolen, total = values[3] + values[4], values[7], sum(values)
    return MachineTimes(
        busy=(total - idle - stolen) / ticks, stolen=stolen / ticks, total=total / ticks
    )
