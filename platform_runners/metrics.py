"""Prometheus metrics of a runner process (served by :mod:`platform_runners.health` when
``metrics_port`` is set)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from sockethub.runtime.record_age import HOP_BUCKETS

REQUESTS = Counter(
    "sockethub_runner_requests_total",
    "Requests finished by a runner, by outcome",
    ["platform", "outcome"],
)
"""outcome: ok, error, skipped (answered before), dead_letter, abandoned, timeout, control."""
HANDLE_SECONDS = Histogram(
    "sockethub_runner_handle_seconds", "Time in a platform handler", ["platform", "verb"]
)
QUEUE_SECONDS = Histogram(
    "sockethub_runner_queue_seconds",
    "From a gateway producing a request to this runner reading it from Kafka "
    "(the producer's record timestamp)",
    ["platform"],
    buckets=HOP_BUCKETS,
)
COMMITS = Counter(
    "sockethub_runner_commits_total",
    "Offset commits (transactions when transactional)",
    ["platform"],
)
CRASHES_SEEN = Counter(
    "sockethub_runner_redeliveries_total",
    "Requests seen again after an earlier attempt ended the process",
    ["platform"],
)
IN_FLIGHT = Gauge("sockethub_runner_in_flight", "Requests queued or running", ["platform"])
