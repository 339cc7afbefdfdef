"""Before a command starts its clients: can it reach Kafka and Redis at all?

The clients' own failures arrive as tracebacks, library log lines and restarts; a
service that does not accept connections is a configuration or deployment problem
the operator should read in one line. Only reachability (a TCP or Unix socket connect)
is checked here: TLS, SASL and Redis logins stay with the clients that use them.
"""

from __future__ import annotations

import socket
from urllib.parse import unquote, urlsplit

from sockethub.devstack.errors import StackError

CONNECT_TIMEOUT_S = 5.0
"""Long enough for a remote broker's accept; a refused loopback port fails at once."""


class Unreachable(StackError):
    """A service did not accept a connection. The text names it and where, never a password."""


def _reason(err: OSError) -> str:
    if isinstance(err, TimeoutError | socket.timeout):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(err, socket.gaierror):
        return f"unknown host: {err.strerror or err}"
    return (err.strerror or str(err)).lower()


def _connect_tcp(host: str, port: int, timeout: float) -> None:
    with socket.create_connection((host, port), timeout=timeout):
        pass


def _split_hostport(server: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(f"//{server}")
    return parts.hostname or "", parts.port or default_port


def check_kafka(bootstrap: str, *, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`Unreachable` unless one of the bootstrap servers accepts a connection."""
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    if not servers:
        raise StackError("SOCKETHUB_KAFKA_BOOTSTRAP names no servers")
    reasons = []
    for server in servers:
        try:
            host, port = _split_hostport(server, 9092)
            _connect_tcp(host, port, timeout)
            return
        except ValueError:
            reasons.append(f"{server}: not host:port")
        except OSError as err:
            reasons.append(f"{server}: {_reason(err)}" if len(servers) > 1 else _reason(err))
    raise Unreachable(f"cannot reach Kafka at {','.join(servers)} ({'; '.join(reasons)})")


def redis_location(url: str) -> str:
    """Where a Redis URL points, without its user name and password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return unquote(parts.path)
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.hostname or '127.0.0.1'}:{port}"


def check_redis(url: str, *, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`Unreachable` unless Redis at ``url`` accepts a connection."""
    parts = urlsplit(url)
    where = redis_location(url)
    try:
        if parts.scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(unquote(parts.path))
        elif parts.scheme in ("redis", "rediss"):
            host, _, port = where.rpartition(":")
            _connect_tcp(host, int(port), timeout)
        else:
            raise StackError(f"SOCKETHUB_REDIS_URL: unsupported scheme {parts.scheme!r}")
    except OSError as err:
        raise Unreachable(f"cannot reach Redis at {where} ({_reason(err)})") from None


def check_services(*, kafka: str | None = None, redis: str | None = None) -> None:
    """Kafka first, then Redis: the first one that cannot be reached is the error."""
    if kafka is not None:
        check_kafka(kafka)
    if redis is not None:
        check_redis(redis)
