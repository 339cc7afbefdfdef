"""Keeps a set of child processes running: restart, stop them all on a signal.

Used by ``sockethub dev`` (gateway and runners) and ``sockethub runners`` (one process
per platform, so a crash in one platform never touches another).

A child given a ready file (``SOCKETHUB_READY_FILE``) that created it before it died was
working: it crashed (a poison request, a bug) and is restarted at once, since every
second it is down its platform's sessions wait. A child that died before it was ready
cannot start (a broker or configuration problem) and is restarted with a growing
backoff, as is one that keeps crashing faster than ``FAST_RESTARTS`` per minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import structlog

from sockethub.devstack.processes import spawn, stop

log = structlog.get_logger("sockethub.supervisor")


@dataclass
class Child:
    name: str
    cmd: Sequence[str]
    log_path: Path | None = None
    restart: bool = True
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    restarts: int = field(default=0)
    ready_file: Path | None = None
    crashes: deque[float] = field(default_factory=deque)
    """When it last exited after being ready (within the last minute)."""

    def backoff(self) -> float:
        return float(min(30, 2 ** max(0, self.failures - 1)))

    def was_ready(self) -> bool:
        return self.ready_file is not None and self.ready_file.exists()


class Supervisor:
    HEALTHY_AFTER = 60.0
    """A child that ran this long counts as healthy again: its backoff resets."""
    FAST_RESTARTS = 5
    """Crashes after readiness within a minute that are restarted at once."""
    POLL_S = 0.1

    def __init__(
        self,
        on_exit: Callable[[Child, int], None] | None = None,
        *,
        stop_timeout: float = 20.0,
    ) -> None:
        """``stop_timeout``: how long a child may take to stop after SIGTERM (at least its
        own shutdown deadline) before it is killed."""
        self.children: list[Child] = []
        self.stop_timeout = stop_timeout
        self._stop = threading.Event()
        self._on_exit = on_exit
        self._ready_dir: Path | None = None

    def add(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        log_path: Path | None = None,
        readiness: bool = False,
    ) -> Child:
        """``readiness``: the child understands ``SOCKETHUB_READY_FILE`` (runners do)."""
        child = Child(name, list(cmd), log_path)
        if readiness:
            if self._ready_dir is None:
                self._ready_dir = Path(tempfile.mkdtemp(prefix="sockethub-ready-"))
            child.ready_file = self._ready_dir / f"{len(self.children)}.ready"
        self.children.append(child)
        return child

    def _start(self, child: Child) -> None:
        env = None
        if child.ready_file is not None:
            child.ready_file.unlink(missing_ok=True)
            env = {**os.environ, "SOCKETHUB_READY_FILE": str(child.ready_file)}
        child.proc = spawn(child.cmd, log_path=child.log_path, env=env)
        child.started_at = time.monotonic()
        log.info("process started", process=child.name, pid=child.proc.pid)

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def poll_once(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if child.restart and now >= child.next_start:
                    child.restarts += 1
                    self._start(child)
                continue
            code = child.proc.poll()
            if code is None:
                if child.failures and now - child.started_at > self.HEALTHY_AFTER:
                    child.failures = 0
                continue
            child.proc = None
            child.next_start = now + self._restart_delay(child, now)
            log.warning(
                "process exited",
                process=child.name,
                exit_code=code,
                restart_in=round(child.next_start - now, 3),
            )
            if self._on_exit is not None:
                self._on_exit(child, code)

    def _restart_delay(self, child: Child, now: float) -> float:
        if child.was_ready():
            while child.crashes and now - child.crashes[0] > 60.0:
                child.crashes.popleft()
            child.crashes.append(now)
            if len(child.crashes) <= self.FAST_RESTARTS:
                child.failures = 0
                return 0.0
        child.failures += 1
        return child.backoff()

    def request_stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if a stop was requested meanwhile."""
        return self._stop.wait(seconds)

    def run(self) -> int:
        """Supervise until SIGINT/SIGTERM, then stop every child; returns 0."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.request_stop)
        self.start_all()
        try:
            while not self._stop.wait(self.POLL_S):
                self.poll_once()
        finally:
            self.stop_all()
            if self._ready_dir is not None:
                shutil.rmtree(self._ready_dir, ignore_errors=True)
        return 0

    def stop_all(self) -> None:
        """SIGTERM to every child at once, then wait for each (SIGKILL after a grace period)."""
        running = [c for c in reversed(self.children) if c.proc is not None]
        for child in running:
            assert child.proc is not None
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in running:
            assert child.proc is not None
            code = stop(child.proc, timeout=self.stop_timeout)
            log.info("process stopped", process=child.name, exit_code=code)
            child.proc = None


def python_cmd(*args: str) -> list[str]:
    """A ``sockethub`` subcommand run by this same interpreter."""
    return [sys.executable, "-m", "sockethub.cli", *args]
