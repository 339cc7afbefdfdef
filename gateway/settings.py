"""The gateway's settings (``SOCKETHUB_*`` variables and the same CLI flags)."""

from __future__ import annotations

import os
import socket

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway.client_address import ForwardedHeader, parse_networks
from gateway.validation import MAX_DEPTH
from sockethub.runtime.settings import CommonSettings

DEFAULT_ORIGINS = "http://localhost:10550,http://127.0.0.1:10550"


class GatewaySettings(CommonSettings):
    host: str = Field("127.0.0.1", description="Address the gateway listens on")
    port: int = Field(10550, ge=0, le=65535, description="Port the gateway listens on")
    path: str = Field("/sockethub", description="Socket.IO path")
    internal_host: str = Field(
        "127.0.0.1",
        description="Address of the internal listener (/healthz, /readyz, /metrics); "
        "never expose it to clients",
    )
    internal_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of the internal listener (/healthz, /readyz, /metrics); "
        "default: the public port + 1",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Turns on the admin page at /admin on the internal listener: the bearer "
        "token it requires (or its sign-in form takes). Unset, there is no admin page",
    )
    demo: bool = Field(
        False,
        description="Serve the demo page at / (on for `sockethub dev`); the client bundles "
        "are served either way",
    )
    gateway_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This instance's name; its replies arrive on its own reply topic",
    )
    allowed_origins: str = Field(
        DEFAULT_ORIGINS,
        description="Allowed browser origins, comma-separated, or * (the gateway's own is added)",
    )
    max_payload: int = Field(262144, ge=1024, description="Largest accepted message, in bytes")
    ws_compression: bool = Field(
        False,
        description="Negotiate permessage-deflate on websockets (each connection then "
        "holds zlib state of its own, several times an idle connection's memory)",
    )
    produce_linger_ms: int = Field(
        5,
        ge=0,
        le=1000,
        description="How long the gateway's producer gathers requests into one produce "
        "request: each costs the broker about as much whatever it carries",
    )
    reply_fetch_min_bytes: int = Field(
        1,
        ge=1,
        description="Bytes the reply reader's fetch waits for (up to kafka_fetch_wait_ms). "
        "Replies become readable a runner transaction at a time, so waiting for more "
        "only delays them",
    )
    request_timeout: float = Field(
        30.0, gt=0, description="Seconds before an unanswered request is answered with an error"
    )
    rate_limit: int = Field(100, ge=1, description="Events per second per session before a block")
    rate_block_seconds: float = Field(
        5.0, ge=0, description="How long a rate-limited session waits"
    )
    max_connections_per_ip: int = Field(
        20,
        ge=1,
        description="Concurrent connections per client address (IPv6: per /64), counted "
        "across all gateways in Redis",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated CIDRs of the proxies in front of the gateway (ingress, "
        "load balancer). Only when the TCP peer is one of them is the forwarding header "
        "believed: the client is its rightmost address that is not a trusted proxy. Empty: "
        "the TCP peer is the client",
    )
    forwarded_header: ForwardedHeader = Field(
        "x-forwarded-for",
        description="The header the trusted proxies append the client's address to: "
        "x-forwarded-for, or forwarded (RFC 7239). Only this one is read: the other would "
        "pass through the proxy as the client wrote it",
    )
    max_inflight_per_session: int = Field(
        64, ge=1, description="Requests a session may have unanswered at once"
    )
    max_inflight_bytes_per_session: int = Field(
        1048576,
        ge=1024,
        description="Bytes of message frames a session may have unanswered at once",
    )
    # Above validation's own cap, so that an activity nested a little too deeply still gets
    # Sockethub's exact error text; only pathological depths meet the decoder's refusal.
    max_depth: int = Field(
        2 * MAX_DEPTH,
        ge=MAX_DEPTH,
        le=8 * MAX_DEPTH,
        description="Deepest nesting of objects and arrays in any event, checked as a frame "
        "is decoded, before any other work on it (activities deeper than "
        f"{MAX_DEPTH} are refused by validation, with Sockethub's error text)",
    )
    max_object_bytes: int = Field(
        16384, ge=256, description="Largest activity-object frame, in bytes"
    )
    max_session_object_bytes: int = Field(
        262144,
        ge=256,
        description="Bytes of activity-object frames one session may hold registered",
    )
    max_outbound_bytes: int = Field(
        4 * 1024 * 1024,
        ge=65536,
        description="Bytes of packets one connection may have queued for sending (each "
        "packet counted as its length plus a small overhead); a client that reads slower "
        "than that is disconnected",
    )
    credentials_ttl: int = Field(
        3600, ge=60, description="Seconds credentials live in Redis without use (sliding)"
    )
    session_grace: int = Field(
        20, ge=0, description="Seconds a closed session's persistent state is kept for a reconnect"
    )

    http_actions: bool = Field(
        False,
        description="Serve HTTP actions: POST a batch of activities to "
        "SOCKETHUB_HTTP_ACTIONS_PATH and read the results as NDJSON (docs/platforms.md)",
    )
    http_actions_path: str = Field(
        "/sockethub-http", description="Path of the HTTP actions (apart from the Socket.IO path)"
    )
    http_actions_token: SecretStr | None = Field(
        None,
        description="Bearer token every HTTP actions request must carry "
        "(Authorization: Bearer ...); unset: no token is asked for",
    )
    http_actions_require_request_id: bool = Field(
        True,
        description="Refuse an HTTP actions request without a request id (the id makes a "
        "retry safe)",
    )
    http_actions_max_messages: int = Field(
        20, ge=1, le=1000, description="Activities one HTTP actions request may carry"
    )
    http_actions_idempotency_ttl: int = Field(
        300,
        ge=10,
        description="Seconds a finished HTTP actions request's results are kept for a retry "
        "with the same request id",
    )

    @model_validator(mode="after")
    def _http_path_is_apart(self) -> GatewaySettings:
        http = self.http_actions_path.rstrip("/") + "/"
        sio = self.path.rstrip("/") + "/"
        if not self.http_actions_path.startswith("/") or http.startswith(sio):
            raise ValueError(
                "SOCKETHUB_HTTP_ACTIONS_PATH must start with / and lie outside SOCKETHUB_PATH"
            )
        return self

    @model_validator(mode="after")
    def _internal_listener_is_apart(self) -> GatewaySettings:
        host, port = self.internal_address()
        if port != 0 and port == self.port and host == self.host:
            raise ValueError("SOCKETHUB_INTERNAL_PORT must differ from SOCKETHUB_PORT")
        return self

    def internal_address(self) -> tuple[str, int]:
        """Where /readyz and /metrics are served: never the public listener, so that an
        ingress in front of the gateway cannot expose them."""
        if self.internal_port is not None:
            return self.internal_host, self.internal_port
        if self.port == 0:  # an ephemeral public port: an ephemeral internal one too
            return self.internal_host, 0
        if self.port == 65535:
            raise ValueError("set SOCKETHUB_INTERNAL_PORT: the public port is the last one")
        return self.internal_host, self.port + 1

    @field_validator("http_actions_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        """An empty variable (compose's default) asks for no token, not for an empty one."""
        if isinstance(value, str | SecretStr):
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not text.strip():
                return None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)  # ValueError names the bad entry
        return value

    def origins(self) -> list[str] | str:
        """The configured origins, plus the gateway's own (its demo page must connect)."""
        value = self.allowed_origins.strip()
        if value == "*":
            return "*"
        listed = [o.strip() for o in value.split(",") if o.strip()]
        hosts = [self.host] + (["localhost", "127.0.0.1"] if self.host == "127.0.0.1" else [])
        own = [f"http://{host}:{self.port}" for host in hosts]
        return list(dict.fromkeys(listed + own))
