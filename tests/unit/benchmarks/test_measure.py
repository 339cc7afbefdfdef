"""The machine's CPU accounting the benchmarks report (``benchmarks.measure``)."""

from __future__ import annotations

import os

import pytest

from benchmarks.measure import histogram_totals, hop_means_ms, machine_times

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


EXPOSITION = """\
# HELP sockethub_gateway_request_seconds From accepting a client's activity to its ack
# TYPE sockethub_gateway_request_seconds histogram
sockethub_gateway_request_seconds_bucket{le="0.05",platform="dummy"} 3.0
sockethub_gateway_request_seconds_bucket{le="+Inf",platform="dummy"} 4.0
sockethub_gateway_request_seconds_count{platform="dummy"} 4.0
sockethub_gateway_request_seconds_sum{platform="dummy"} 0.2
sockethub_gateway_request_seconds_bucket{le="+Inf",platform="irc"} 1.0
sockethub_gateway_request_seconds_count{platform="irc"} 1.0
sockethub_gateway_request_seconds_sum{platform="irc"} 0.05
# HELP sockethub_gateway_reply_seconds runner's producer to this gateway
# TYPE sockethub_gateway_reply_seconds histogram
sockethub_gateway_reply_seconds_bucket{le="+Inf"} 5.0
sockethub_gateway_reply_seconds_count 5.0
sockethub_gateway_reply_seconds_sum 0.075
# HELP sockethub_gateway_connections Socket.IO sessions currently connected
# TYPE sockethub_gateway_connections gauge
sockethub_gateway_connections 7.0
"""


def test_histogram_totals_add_up_every_label_set_and_skip_other_types() -> None:
    totals = histogram_totals(EXPOSITION)
    assert totals["sockethub_gateway_request_seconds"] == (5.0, pytest.approx(0.25))
    assert totals["sockethub_gateway_reply_seconds"] == (5.0, 0.075)
    assert "sockethub_gateway_connections" not in totals


def test_hop_means_are_the_difference_between_two_scrapes() -> None:
    before = {
        "sockethub_gateway_request_seconds": (10.0, 0.3),
        "sockethub_runner_queue_seconds": (10.0, 0.1),
        "sockethub_gateway_reply_seconds": (10.0, 0.1),
    }
    after = {
        "sockethub_gateway_request_seconds": (110.0, 4.3),
        "sockethub_runner_queue_seconds": (110.0, 1.3),
        "sockethub_gateway_reply_seconds": (110.0, 1.6),
    }
    assert hop_means_ms(before, after) == {
        "gateway": 40.0,
        "to_runner": 12.0,
        "to_gateway": 15.0,
        "rest": 13.0,
    }


def test_a_hop_nothing_passed_has_no_mean_and_no_rest() -> None:
    means = hop_means_ms({}, {"sockethub_gateway_request_seconds": (2.0, 0.02)})
    assert means == {"gateway": 10.0, "to_runner": None, "to_gateway": None, "rest": None}
