"""A real Prosody on loopback: generated config, own data dir, foreground, test accounts.

STARTTLS with a self-signed certificate for ``localhost`` (clients trust it as
their CA file; slixmpp refuses to authenticate in the clear), no s2s (a stanza
for another domain fails at once instead of a DNS lookup), a MUC component
``conference.localhost`` whose rooms are created unlocked on first join.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.serialization import PrivateFormat

from sockethub.devstack.processes import free_port, spawn, stop, wait_for_port
from tests.fixtures.certs import self_signed

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
PROSODYCTL = shutil.which("prosodyctl") or "/usr/bin/prosodyctl"
DOMAIN = "localhost"
MUC = "conference.localhost"
HOST = "127.0.0.1"


@dataclass
class Prosody:
    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    plaintext: bool = False
    """No TLS at all (no ``tls`` module): SASL runs in the clear, for the no-TLS refusal."""

    @property
    def config_path(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    @property
    def cert(self) -> Path:
        """The CA file clients use to trust this server."""
        return self.directory / "cert.pem"

    @property
    def log_path(self) -> Path:
        return self.directory / "prosody.log"

    @property
    def server(self) -> str:
        return f"xmpp://{HOST}:{self.port}"

    def _config(self) -> str:
        d = self.directory
        tls = "" if self.plaintext else ' "tls";'
        encryption = "false" if self.plaintext else "true"
        plain_auth = "true" if self.plaintext else "false"
        return f"""
run_as_root = true
daemonize = false
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
plugin_paths = {{ }}
modules_enabled = {{ "disco"; "roster"; "saslauth";{tls} "ping"; "posix"; }}
modules_disabled = {{ "s2s"; }}
allow_registration = false
authentication = "internal_hashed"
c2s_require_encryption = {encryption}
allow_unencrypted_plain_auth = {plain_auth}
ssl = {{ certificate = "{d}/cert.pem"; key = "{d}/key.pem"; }}
c2s_ports = {{ {self.port} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
component_ports = {{ }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
log = {{ debug = "{self.log_path}"; }}
VirtualHost "{DOMAIN}"
Component "{MUC}" "muc"
    muc_room_locking = false
    restrict_room_creation = false
"""

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        self_signed(
            self.directory,
            DOMAIN,
            dns_names=[DOMAIN, MUC],
            ip_addresses=[HOST],
            key_format=PrivateFormat.TraditionalOpenSSL,
        )
        self.config_path.write_text(self._config())

    def register(self, user: str, password: str) -> str:
        """Create an account; its bare JID."""
        subprocess.run(
            [PROSODYCTL, "--config", str(self.config_path), "register", user, DOMAIN, password],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return f"{user}@{DOMAIN}"

    def start(self, timeout: float = 60.0) -> None:
        if not self.config_path.exists():
            self.write_config()
        self.proc = spawn([PROSODY, "--config", str(self.config_path)], log_path=self.log_path)
        if not wait_for_port(HOST, self.port, timeout=timeout, proc=self.proc):
            self.stop()
            raise RuntimeError(f"prosody not listening:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=15)
        self.proc = None
