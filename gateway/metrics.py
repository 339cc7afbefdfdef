"""Prometheus metrics of one gateway process, served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from sockethub.runtime.record_age import HOP_BUCKETS

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class GatewayMetrics:
    """Each instance has its own registry, so several apps can live in one process (tests)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, gateway_id: str = "gateway") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.connections = Gauge(
            "sockethub_gateway_connections",
            "Socket.IO sessions currently connected",
            registry=self.registry,
        )
        self.sessions = Gauge(
            "sockethub_gateway_sessions",
            "Socket.IO sessions currently connected, labelled with this gateway's id so a sum "
            "over gateways and a per-gateway view come from one series",
            ["gateway"],
            registry=self.registry,
        )
        self._sessions = self.sessions.labels(gateway=gateway_id)
        self._sessions.set(0)
        self.ready = Gauge(
            "sockethub_gateway_ready",
            "1 when this gateway's last readiness check (/readyz) passed, else 0; a not-ready "
            "gateway is still scraped through the internal Service (publishNotReadyAddresses)",
            registry=self.registry,
        )
        self.sessions_recovered = Counter(
            "sockethub_sessions_recovered_total",
            "Reconnects that named a session to recover, by outcome (recovered; expired: past "
            "the window or unknown; failed: its records or runners could not be reached)",
            ["outcome"],
            registry=self.registry,
        )
        self.activities = Counter(
            "sockethub_gateway_activities",
            "Activities through the gateway; direction in (from clients) or out (to clients)",
            ["platform", "direction", "outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "sockethub_gateway_request_seconds",
            "From accepting a client's activity to answering its acknowledgement",
            ["platform"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.reply_seconds = Histogram(
            "sockethub_gateway_reply_seconds",
            "From a runner producing an answer or event to this gateway reading it from "
            "Kafka (the producer's record timestamp; includes the runner's transaction)",
            buckets=HOP_BUCKETS,
            registry=self.registry,
        )
        self.kafka_errors = Counter(
            "sockethub_gateway_kafka_errors",
            "Kafka produce, consume and decode failures",
            registry=self.registry,
        )
        self.rejected = Counter(
            "sockethub_gateway_rejected",
            "Events refused by a limit (rate, in-flight bound, connection cap)",
            ["reason"],
            registry=self.registry,
        )
        self.slow_readers = Counter(
            "sockethub_gateway_slow_readers",
            "Connections closed because their outgoing queue exceeded "
            "SOCKETHUB_MAX_OUTBOUND_BYTES (a client not reading what it is sent)",
            registry=self.registry,
        )

        self._activity_children: dict[tuple[str, str, str], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def session_opened(self) -> None:
        self.connections.inc()
        self._sessions.inc()

    def session_closed(self) -> None:
        self.connections.dec()
        self._sessions.dec()

    def activity(self, platform: str, direction: str, outcome: str) -> None:
        # ``labels()`` costs a lock and a tuple build per call: keep the children.
        key = (platform, direction, outcome)
        child = self._activity_children.get(key)
        if child is None:
            child = self.activities.labels(platform=platform, direction=direction, outcome=outcome)
            self._activity_children[key] = child
        child.inc()

    def observe_request(self, platform: str, seconds: float) -> None:
        child = self._latency_children.get(platform)
        if child is None:
            child = self._latency_children[platform] = self.request_seconds.labels(
                platform=platform
            )
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
