"""The gateway's settings (``SOCKETHUB_*`` variables and the same CLI flags)."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from gateway.validation import MAX_DEPTH
from sockethub.runtime.settings import CommonSettings

DEFAULT_ORIGINS = "http://localhost:10550,http://127.0.0.1:10550"


class GatewaySettings(CommonSettings):
    host: str = Field("127.0.0.1", description="Address the gateway listens on")
    port: int = Field(10550, ge=0, le=65535, description="Port the gateway listens on")
    path: str = Field("/sockethub", description="Socket.IO path")
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
    max_connections_per_ip: int = Field(20, ge=1, description="Concurrent connections per address")
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

    def origins(self) -> list[str] | str:
        """The configured origins, plus the gateway's own (its demo page must connect)."""
        value = self.allowed_origins.strip()
        if value == "*":
            return "*"
        listed = [o.strip() for o in value.split(",") if o.strip()]
        hosts = [self.host] + (["localhost", "127.0.0.1"] if self.host == "127.0.0.1" else [])
        own = [f"http://{host}:{self.port}" for host in hosts]
        return list(dict.fromkeys(listed + own))
