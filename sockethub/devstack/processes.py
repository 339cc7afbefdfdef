"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sockethub.devstack.errors import StackError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM when the parent dies,
    so even a ``kill -9`` of the supervisor leaves no orphans."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    cmd: Sequence[str],
    *,
    log_path: Path | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group, output appended to ``log_path``
    (or shared with ours when it is None)."""
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path or os.devnull, "ab") as log:
        try:
            return subprocess.Popen(
                list(cmd),
                stdout=log if log_path is not None else None,
                stderr=subprocess.STDOUT if log_path is not None else None,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError as err:
            raise StackError(f"cannot run {cmd[0]!r}: not installed or not on PATH") from err


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 20.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


_HANDED_OUT: set[int] = set()
"""Ports :func:`free_port` returned: nothing holds a port between the call and its use, so
the kernel may offer the same one again to the next call (it did: a dev stack's Redis and
internal listener once got one port)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now and never returned before by this process."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port that was not handed out already")


def wait_for_port(
    host: str, port: int, *, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> bool:
    """True once something accepts on host:port; False on timeout or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.2)
    return False


def require_free_port(host: str, port: int, what: str, hint: str) -> None:
    if not port_is_free(host, port):
        raise StackError(
            f"{what}: port {port} on {host} is already taken by another program; {hint}"
        )


class PidFile:
    """Records a service's pid so that a later start can clear up after a ``kill -9``."""

    def __init__(self, path: Path, marker: str) -> None:
        self.path = path
        self.marker = marker
        """A string found in the service's command line (its data dir), so that a recycled
        pid of an unrelated process is never signalled."""

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def reap_stale(self) -> bool:
        """Stop a leftover process of ours; True if one was found."""
        try:
            pid = int(self.path.read_text().strip())
        except (OSError, ValueError):
            self.clear()
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            self.clear()
            return False
        if self.marker not in cmdline:
            self.clear()
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.clear()
        return True


class LocalService:
    """A server process this project starts on loopback (the broker, Redis).

    Subclasses set ``_proc`` to None initially and provide ``_pidfile``.
    """

    name = "service"
    stop_timeout = 20.0
    _proc: subprocess.Popen[bytes] | None

    @property
    def _pidfile(self) -> PidFile:
        raise NotImplementedError

    def _launch(
        self,
        cmd: Sequence[str],
        *,
        log: Path,
        host: str,
        port: int,
        timeout: float,
        wait: bool = True,
    ) -> None:
        """Start ``cmd`` and (with ``wait``) wait until it accepts on host:port, or stop it
        and say why."""
        self._proc = spawn(cmd, log_path=log)
        self._pidfile.write(self._proc.pid)
        if wait:
            self._await_port(log=log, host=host, port=port, timeout=timeout)

    def _await_port(self, *, log: Path, host: str, port: int, timeout: float) -> None:
        assert self._proc is not None
        if not wait_for_port(host, port, timeout=timeout, proc=self._proc):
            code = self._proc.poll()
            self.stop()
            why = f"exit code {code}" if code is not None else "timed out"
            raise StackError(f"{self.name} did not start on {host}:{port} ({why}); see {log}")

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, for fault tests: what a crash looks like to clients."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc, timeout=self.stop_timeout)
            self._proc = None
        self._pidfile.clear()
