"""A real Radicale on loopback: own storage, htpasswd users, plain http on a free port.

Radicale speaks only Basic authentication; the platform's Digest support is
covered by the unit tests and by :mod:`tests.integration.dav.digest_server`.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sockethub.devstack.processes import free_port, spawn, stop, wait_for_port
from tests.fixtures.certs import self_signed

HOST = "127.0.0.1"
ALLOWLIST = "127.0.0.1/32"
"""The only non-public address the platforms may reach in these tests."""


@dataclass
class Radicale:
    directory: Path
    users: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    tls: bool = False
    """Serve https with a self-signed certificate for 127.0.0.1 (:attr:`cert` is its CA)."""

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}/"

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def log_path(self) -> Path:
        return self.directory / "radicale.log"

    def write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        htpasswd = self.directory / "users"
        htpasswd.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        config = self.directory / "config"
        tls = ""
        if self.tls:
            cert, key = self_signed(self.directory, HOST, ip_addresses=[HOST])
            tls = f"ssl = True\ncertificate = {cert}\nkey = {key}\n"
        config.write_text(
            f"""[server]
hosts = {HOST}:{self.port}
{tls}[auth]
type = htpasswd
htpasswd_filename = {htpasswd}
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = {self.directory / "collections"}
[web]
type = none
[logging]
level = warning
"""
        )
        return config

    def start(self, timeout: float = 60.0) -> None:
        config = self.write_config()
        cmd = [sys.executable, "-m", "radicale", "--config", str(config)]
        self.proc = spawn(cmd, log_path=self.log_path)
        if not wait_for_port(HOST, self.port, timeout=timeout, proc=self.proc):
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"radicale not listening:\n{tail}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=15)
        self.proc = None

    # --- set-up requests (straight HTTP, not through the platforms) ---------------------------

    def call(self, user: str, method: str, path: str, body: str = "", **headers: str) -> int:
        return self.exchange(user, method, path, body, **headers)[0]

    def exchange(
        self, user: str, method: str, path: str, body: str = "", **headers: str
    ) -> tuple[int, str]:
        """``(status, body)`` of one request as ``user``."""
        auth = base64.b64encode(f"{user}:{self.users[user]}".encode()).decode()
        request = urllib.request.Request(
            self.url.rstrip("/") + path,
            data=body.encode() if body else None,
            method=method,
            headers={"Authorization": f"Basic {auth}", **headers},
        )
        context = ssl.create_default_context(cafile=str(self.cert)) if self.tls else None
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), ""

    def mkcalendar(self, user: str, path: str, name: str, components: tuple[str, ...]) -> str:
        comps = "".join(f'<C:comp name="{c}"/>' for c in components)
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f"<D:displayname>{name}</D:displayname>"
            f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"
            "</D:prop></D:set></C:mkcalendar>"
        )
        status = self.call(user, "MKCALENDAR", path, body, **{"Content-Type": "application/xml"})
        assert status == 201, status
        return self.url.rstrip("/") + path

    def mkaddressbook(self, user: str, path: str, name: str) -> str:
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>'
            "<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"
            f"<D:displayname>{name}</D:displayname>"
            "<CR:addressbook-description>Contacts for tests</CR:addressbook-description>"
            "</D:prop></D:set></D:mkcol>"
        )
        status = self.call(user, "MKCOL", path, body, **{"Content-Type": "application/xml"})
        assert status == 201, status
        return self.url.rstrip("/") + path
