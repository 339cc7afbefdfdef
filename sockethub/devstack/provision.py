"""``sockethub provision``: what the stack needs on this machine, installed once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sockethub.devstack.errors import StackError
from sockethub.devstack.kafka import KAFKA_VERSION, ensure_kafka_libs

STACK_PACKAGES = {"redis-server": "redis-server"}
"""Debian package for each program: the runtime stack."""

TEST_PACKAGES = {
    "ngircd": "ngircd",
    "prosody": "prosody",
    "chromium": "chromium",
    "haproxy": "haproxy",
}
"""The real peers and browser that the test suite drives."""

_SBIN = ("/usr/sbin", "/usr/bin", "/sbin")

DEMO_DIR = Path(__file__).resolve().parents[2] / "gateway" / "demo"
"""The npm package of the demo's browser bundles (``gateway.demo`` serves them)."""


def _have(program: str) -> bool:
    return shutil.which(program) is not None or any(
        os.path.exists(os.path.join(d, program)) for d in _SBIN
    )


def _apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise StackError(f"missing programs; as root run: apt-get install -y {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StackError(f"{' '.join(cmd[:2])} failed: {tail[0]}")


def provision(*, tests: bool = False, repo: Path | None = None) -> None:
    wanted = dict(STACK_PACKAGES)
    if tests:
        wanted.update(TEST_PACKAGES)
    missing = sorted({pkg for prog, pkg in wanted.items() if not _have(prog)})
    if missing:
        print(f"installing Debian packages: {' '.join(missing)}", flush=True)
        _apt_install(missing)
    libs = ensure_kafka_libs()
    print(f"Kafka {KAFKA_VERSION} ready in {libs}", flush=True)
    # The browser bundles the gateway serves (/socket.io.js, /sockethub-client.js), beside
    # gateway/demo wherever it is installed: `make run` needs them too.
    _npm_ci(DEMO_DIR)
    if tests:
        root = repo or Path.cwd()
        for js in (root / "tests" / "js", root / "tests" / "e2e" / "browser"):
            if (js / "package.json").exists():
                _npm_ci(js)
        # Built from source with Go on first use (minutes), then cached: the deploy tests
        # render the Helm chart and the Compose project with them.
        from sockethub.devstack.tools import ensure_compose, ensure_helm

        print(f"helm ready: {ensure_helm()}", flush=True)
        print(f"compose ready: {' '.join(ensure_compose())}", flush=True)


def _npm_ci(folder: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise StackError(
            "npm is missing: the browser bundles and client tests need Node.js 20 and npm"
        )
    lock = folder / "package-lock.json"
    stamp = folder / "node_modules" / ".sockethub-lock"
    if stamp.exists() and lock.exists() and stamp.read_bytes() == lock.read_bytes():
        return
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(folder)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise StackError(f"npm ci in {folder} failed: {tail[0]}")
    if lock.exists():
        stamp.write_bytes(lock.read_bytes())
