"""A ``redis-server`` from the system's packages, on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sockethub.devstack.errors import StackError
from sockethub.devstack.processes import LocalService, PidFile, require_free_port


def redis_binary() -> str:
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if path is None:
        raise StackError(
            "redis-server is missing: install Debian's package (apt-get install redis-server) "
            "or point SOCKETHUB_REDIS_URL at an existing Redis"
        )
    return path


@dataclass
class RedisServer(LocalService):
    name = "Redis"

    data_dir: Path
    port: int = 6379
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def _pidfile(self) -> PidFile:
        return PidFile(self.data_dir / "redis.pid", marker=f"{self.host}:{self.port}")

    def start(self, *, timeout: float = 20.0) -> None:
        binary = redis_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._pidfile.reap_stale()
        require_free_port(
            self.host, self.port, "Redis", "stop it, or point SOCKETHUB_REDIS_URL at it"
        )
        # Session state is ephemeral by design: no snapshots, no append-only file.
        cmd = [
            binary, "--bind", self.host, "--port", str(self.port), "--dir", str(self.data_dir),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        self._launch(cmd, log=self.data_dir / "redis.log", host=self.host, port=self.port,
                     timeout=timeout)  # fmt: skip
