"""A real ngircd on loopback, started in the foreground with a generated configuration."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sockethub.devstack.processes import free_port

NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"
SERVER_NAME = "irc.test"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), good as its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


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
        cert, key = self_signed(self.directory)
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
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [NGIRCD, "-n", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ngircd exited: {self.log_path.read_text(errors='replace')}")
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=1),
                    socket.create_connection(("127.0.0.1", self.tls_port), timeout=1),
                ):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"ngircd not listening after {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
