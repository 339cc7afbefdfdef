"""Each command reports a Kafka or Redis that accepts no connection in one stderr line.

Only loopback ports: a closed one (bound, then released) and, where Redis is the
subject, a listening socket that stands in for Kafka (the check is a connect)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockethub.devstack.processes import free_port

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "hunter2-never-shown"

COMMANDS = {
    "gateway": ["gateway", "--port", "0"],
    "runner": ["runner", "--platform", "dummy"],
    "runners": ["runners", "--platforms", "dummy"],
    "dev": ["dev", "--port", "0"],
    "replay": ["replay"],
}


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKETHUB_")}
    env.update(SOCKETHUB_SECRET="a-test-secret-of-enough-length-0123456789",
               SOCKETHUB_CACHE_DIR=str(tmp_path / "cache"))  # fmt: skip
    if args[0] == "dev":
        args = [*args, "--state-dir", str(tmp_path / "state")]
    return subprocess.run(
        [sys.executable, "-m", "sockethub.cli", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_closed_kafka_port_is_one_line(command: str, tmp_path: Path) -> None:
    port = free_port()
    redis = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    proc = _run(
        [*COMMANDS[command], "--kafka-bootstrap", f"127.0.0.1:{port}", "--redis-url", redis]
        if command != "replay"
        else [*COMMANDS[command], "--kafka-bootstrap", f"127.0.0.1:{port}"],
        tmp_path,
    )
    line = _one_line(proc)
    assert line.startswith(f"sockethub: cannot reach Kafka at 127.0.0.1:{port} ("), line


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"replay"}))
def test_closed_redis_port_is_one_line(command: str, tmp_path: Path, listening_port: int) -> None:
    port = free_port()
    proc = _run(
        [*COMMANDS[command], "--kafka-bootstrap", f"127.0.0.1:{listening_port}",
         "--redis-url", f"redis://:{PASSWORD}@127.0.0.1:{port}/0"],
        tmp_path,
    )  # fmt: skip
    line = _one_line(proc)
    assert line.startswith(f"sockethub: cannot reach Redis at 127.0.0.1:{port} ("), line
    assert PASSWORD not in proc.stderr


REPLAY_WITHOUT_CHECK = """
import gc
import sys

from sockethub.devstack.errors import StackError
from sockethub.replay import Filters, run
from sockethub.runtime.settings import CommonSettings

try:
    run(CommonSettings(kafka_bootstrap=sys.argv[1]), Filters())
except StackError as err:
    print(err)
gc.collect()
"""


def test_replay_closes_its_clients_when_kafka_is_unreachable() -> None:
    """Without the CLI's check: replay's own error, and no client left unclosed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKETHUB_")}
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", REPLAY_WITHOUT_CHECK, f"127.0.0.1:{free_port()}"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("cannot reach Kafka at 127.0.0.1:"), proc.stdout + proc.stderr
    assert "Unclosed" not in proc.stderr, proc.stderr
