"""``sockethub dev`` as a user runs it: embedded Kafka and Redis, gateway, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockethub.devstack.processes import free_port
from tests.fixtures.gateway import Client, dummy

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

READY_DEADLINE = 150.0


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + READY_DEADLINE
    last: object = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sockethub dev exited early with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                body: dict[str, object] = json.loads(resp.read())
                if resp.status == 200:
                    return body
        except OSError as err:
            last = err
        time.sleep(0.5)
    raise AssertionError(f"/readyz never answered 200: {last}")


async def _echo_and_crash(port: int) -> None:
    """The dev stack's runner answers, and a crash reaches the session with its exit code."""
    client = Client(f"http://127.0.0.1:{port}")
    await client.connect(headers={"Origin": f"http://127.0.0.1:{port}"})
    try:
        answer = await client.call("message", dummy("echo", "through dev"))
        assert answer["actor"] == {"id": "dummy", "type": "platform"}
        assert answer["object"]["content"] == "through dev"
        await client.emit("message", dummy("exit1", "crash probe"))
        event = await client.next_event("message", wait=120)
        assert event["error"] == "Error: session thread closed unexpectedly: 1"
    finally:
        await client.close()


class DevStack:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = free_port()
        self.internal_port = free_port()
        self.args = [
            sys.executable, "-m", "sockethub.cli", "dev", "--state-dir", str(state),
            "--port", str(self.port), "--internal-port", str(self.internal_port),
            "--kafka-port", str(free_port()),
            "--kafka-controller-port", str(free_port()), "--redis-port", str(free_port()),
            "--gateway-id", "devtest", "--platforms", "dummy",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state.parent / f"{state.name}.log"

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKETHUB_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=env)
        return self.proc

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(tmp_path / "state")
    yield stack
    if stack.proc is not None and stack.proc.poll() is None:
        stack.proc.kill()
        stack.proc.wait(30)
    for pid in _processes_mentioning(str(stack.state)):
        os.kill(pid, signal.SIGKILL)


def test_dev_serves_readyz_and_stops_without_orphans(dev_stack: DevStack) -> None:
    proc = dev_stack.start()
    body = _wait_ready(f"http://127.0.0.1:{dev_stack.internal_port}/readyz", proc)
    assert body == {"ready": True, "kafka": True, "redis": True, "replies": True, "serving": True}
    with urllib.request.urlopen(f"http://127.0.0.1:{dev_stack.port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    # `sockethub dev` serves the demo page, which a deployment leaves off
    with urllib.request.urlopen(f"http://127.0.0.1:{dev_stack.port}/", timeout=5) as resp:
        assert "Content-Security-Policy" in resp.headers
    deadline = time.monotonic() + 30
    while "Sockethub is ready at" not in dev_stack.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"Sockethub is ready at http://127.0.0.1:{dev_stack.port}/" in dev_stack.output()
    assert (dev_stack.state / "kafka" / "data" / "meta.properties").exists()
    asyncio.run(_echo_and_crash(dev_stack.port))

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0
    assert _processes_mentioning(str(dev_stack.state)) == []
    assert not (dev_stack.state / "kafka" / "kafka.pid").exists()


def test_dev_recovers_after_kill_9(dev_stack: DevStack) -> None:
    proc = dev_stack.start()
    _wait_ready(f"http://127.0.0.1:{dev_stack.internal_port}/readyz", proc)
    proc.kill()
    proc.wait(10)
    seen = len(dev_stack.output())
    # The children notice their parent's death; the next start clears whatever is left.
    proc = dev_stack.start()
    # The old gateway may still answer while it shuts down: wait for the new run's word.
    deadline = time.monotonic() + READY_DEADLINE
    while "Sockethub is ready at" not in dev_stack.output()[seen:]:
        assert proc.poll() is None, f"second start exited with {proc.returncode}"
        assert time.monotonic() < deadline, "the second start never became ready"
        time.sleep(0.5)
    body = _wait_ready(f"http://127.0.0.1:{dev_stack.internal_port}/readyz", proc)
    assert body["ready"] is True
    proc.send_signal(signal.SIGINT)
    assert proc.wait(90) == 0
    assert _processes_mentioning(str(dev_stack.state)) == []


def test_dev_says_in_one_line_when_the_port_is_taken(dev_stack: DevStack) -> None:
    import socket

    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", dev_stack.port))
        holder.listen()
        proc = dev_stack.start()
        assert proc.wait(60) == 1
    out = dev_stack.output().strip().splitlines()
    assert out[-1].startswith("sockethub: gateway: port ")
    assert "already taken" in out[-1]
    assert "Traceback" not in dev_stack.output()
