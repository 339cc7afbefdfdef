"""Figures the benchmarks share: latency percentiles, a process's CPU time, the machine's,
and the mean time of each hop from the processes' Prometheus histograms."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


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


HOPS = {
    "gateway": "sockethub_gateway_request_seconds",
    "to_runner": "sockethub_runner_queue_seconds",
    "to_gateway": "sockethub_gateway_reply_seconds",
}
"""Each hop's histogram: the gateway's accept to ack, a request's way from the gateway's
producer to a runner's fetch, an answer's way from the runner's producer to the gateway."""


def histogram_totals(metrics_text: str) -> dict[str, tuple[float, float]]:
    """(count, sum) of every histogram in a Prometheus exposition, over all its labels."""
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.type != "histogram":
            continue
        entry = totals.setdefault(family.name, [0.0, 0.0])
        for sample in family.samples:
            if sample.name == f"{family.name}_count":
                entry[0] += sample.value
            elif sample.name == f"{family.name}_sum":
                entry[1] += sample.value
    return {name: (count, total) for name, (count, total) in totals.items()}


def hop_means_ms(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float | None]:
    """Mean milliseconds of each hop between two scrapes (None: nothing passed that hop),
    and ``rest``: the gateway's accept-to-ack time the two Kafka hops leave (the runner's
    work and its wait for a transaction, the gateway's own work)."""
    means: dict[str, float | None] = {}
    for hop, name in HOPS.items():
        count0, sum0 = before.get(name, (0.0, 0.0))
        count1, sum1 = after.get(name, (0.0, 0.0))
        count = count1 - count0
        means[hop] = round((sum1 - sum0) / count * 1000.0, 2) if count > 0 else None
    to_runner, to_gateway, gateway = means["to_runner"], means["to_gateway"], means["gateway"]
    means["rest"] = (
        round(gateway - to_runner - to_gateway, 2)
        if gateway is not None and to_runner is not None and to_gateway is not None
        else None
    )
    return means
