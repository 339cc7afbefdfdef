"""A real ngircd on loopback, started in the foreground with a generated configuration."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sockethub.devstack.processes import free_port, spawn, stop, wait_for_port
from tests.fixtures.certs import self_signed

NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"
SERVER_NAME = "irc.test"


@dataclass
class Ngircd:
    directory: Path
    password: str | None = None
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def log_path(self) -> Path:
        return self.directory / "ngircd.log"

    def _config(self) -> str:
        cert, key = self_signed(self.directory, "127.0.0.1", ip_addresses=["127.0.0.1"])
        password = f"Password = {self.password}\n" if self.password else ""
        return (
            "[Global]\n"
            f"Name = {SERVER_NAME}\nInfo = Sockethub test server\n"
            f"Listen = 127.0.0.1\nPorts = {self.port}\n{password}"
            f"MotdPhrase = hello\nPidFile = {self.directory}/ngircd.pid\n"
            "[Limits]\nMaxConnectionsIP = 0\nMaxJoins = 0\nPingTimeout = 120\nPongTimeout = 60\n"
            "[Options]\nPAM = no\nIdent = no\nDNS = no\nOperCanUseMode = yes\n"
            f"[SSL]\nCertFile = {cert}\nKeyFile = {key}\nPorts = {self.tls_port}\n"
        )

    def start(self, timeout: float = 20.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "ngircd.conf"
        config.write_text(self._config())
        self.proc = spawn([NGIRCD, "-n", "-f", str(config)], log_path=self.log_path)
        deadline = time.monotonic() + timeout
        for port in (self.port, self.tls_port):
            left = max(deadline - time.monotonic(), 0.0)
            if not wait_for_port("127.0.0.1", port, timeout=left, proc=self.proc):
                if self.proc.poll() is not None:
                    log = self.log_path.read_text(errors="replace")
                    raise RuntimeError(f"ngircd exited: {log}")
                raise RuntimeError(f"ngircd not listening after {timeout}s")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=10)
        self.proc = None
