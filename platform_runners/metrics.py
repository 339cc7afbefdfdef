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
DEAD_LETTERS = Counter(
    "sockethub_runner_dead_letters_total",
    "Records sent to the dead-letter topic, by reason",
    ["platform", "reason"],
)
"""reason: crash (max_attempts crashes), undecodable, not_a_request, foreign_reply_route; the
same label as the dead letter's ``sockethub-reason`` header."""
CONSUMER_LAG = Gauge(
    "sockethub_runner_consumer_lag",
    "Requests in a partition not yet finished by this runner: the partition's end offset "
    "minus the runner's own finished-through position",
    ["platform", "partition"],
)
TRANSACTION_OPEN_SECONDS = Gauge(
    "sockethub_runner_transaction_open_seconds",
    "Age of the transaction (or, without transactions, the send-and-commit) in progress; "
    "0 when none is open",
    ["platform"],
)
LAST_COMMIT = Gauge(
    "sockethub_runner_last_commit_timestamp_seconds",
    "Unix time of this runner's last successful commit",
    ["platform"],
)
IN_FLIGHT = Gauge("sockethub_runner_in_flight", "Requests queued or running", ["platform"])
