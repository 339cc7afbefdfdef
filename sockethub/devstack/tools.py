"""Deployment tools the tests drive: ``helm`` and a real Compose implementation.

Both are built from their pinned Go sources with the local Go toolchain (the Go
module proxy is reachable, their release download sites may not be), into
``<cache>/tools/<name>-<version>/`` outside the repository (the same cache as
the Kafka jars, see :func:`sockethub.devstack.kafka.cache_dir`). The first call
builds (a few minutes); later calls only check that the binary is there.

Why these and not something else:

* ``helm`` -- ``go install helm.sh/helm/v3/cmd/helm@<version>`` works as is.
* Compose -- there is no Docker engine here, and the ``docker`` client on this
  machine has no compose plugin. Debian bookworm only packages
  ``docker-compose`` 1.29 (the end-of-life Python v1, which predates parts of
  the Compose Specification), and ``docker-compose-plugin`` lives in Docker's
  own apt repository, not Debian's. So we build the real Compose v2+ CLI
  (``github.com/docker/compose/v5``) whose ``config`` command renders and
  validates a project without talking to an engine. ``go install pkg@version``
  refuses that module (its go.mod has ``exclude`` directives), so it is fetched
  with ``go mod download`` and built with ``go build`` inside the downloaded,
  unmodified module, which makes it the main module and honours its go.mod.
  If the ``docker`` client does have a working compose plugin, that is used
  instead and nothing is built.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sockethub.devstack.errors import StackError
from sockethub.devstack.kafka import cache_dir

HELM_VERSION = "v3.22.0"
"""go.mod says go 1.26.0: builds with the machine's Go without fetching a toolchain."""

_HELM_KUBE_VERSION = ("1", "37")
"""The Kubernetes version helm assumes without a cluster (``helm template``, ``lint``).
Helm's Makefile derives it from its k8s.io/client-go (v0.37.0 in v3.22.0); a plain
``go install`` would leave the built-in 1.20 and refuse charts needing anything newer."""

COMPOSE_VERSION = "v5.6.0"
"""go.mod says go 1.26.8; v5.7.x needs a newer Go than the machine has."""

_HELM_MODULE = "helm.sh/helm/v3"
_COMPOSE_MODULE = "github.com/docker/compose/v5"
_BUILD_TIMEOUT = 1800.0


def tools_dir() -> Path:
    return cache_dir() / "tools"


def _go() -> str:
    path = shutil.which("go")
    if path is None:
        raise StackError("go is missing: helm and compose are built from source with Go 1.26+")
    return path


def _go_env(gobin: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Never download another Go toolchain behind the user's back: fail clearly instead.
    env["GOTOOLCHAIN"] = "local"
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = "-buildvcs=false"
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    return env


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One build per tool at a time, across processes (parallel test sessions)."""
    tools_dir().mkdir(parents=True, exist_ok=True)
    with open(tools_dir() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_logged(cmd: list[str], *, env: dict[str, str], log: Path, what: str) -> None:
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                timeout=_BUILD_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as err:
            raise StackError(f"{what} timed out after {_BUILD_TIMEOUT:.0f}s; see {log}") from err
    if result.returncode != 0:
        raise StackError(
            f"{what} failed (exit {result.returncode}); see {log}, "
            "check access to the Go module proxy, then run again"
        )


def _install(name: str, version: str, build: Path, produced: str, cmd: list[str]) -> Path:
    """Run ``cmd`` (which writes ``produced`` into ``build``) and publish the result."""
    final = tools_dir() / f"{name}-{version}" / name
    if os.access(final, os.X_OK):
        return final
    with _locked(name):
        if os.access(final, os.X_OK):  # another process built it while we waited
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        log = final.parent / "build.log"
        log.unlink(missing_ok=True)
        print(f"building {name} {version} with Go (first time only, a few minutes)", flush=True)
        _run_logged(cmd, env=_go_env(build), log=log, what=f"building {name} {version}")
        binary = build / produced
        if not os.access(binary, os.X_OK):
            raise StackError(f"building {name} {version} produced no {produced}; see {log}")
        binary.replace(final)  # atomic: a half-written binary is never at ``final``
    return final


def _helm_ldflags(version: str) -> str:
    major, minor = _HELM_KUBE_VERSION
    flags = ["-s", "-w", f"-X {_HELM_MODULE}/internal/version.version={version}"]
    for pkg in ("pkg/lint/rules", "pkg/chartutil"):
        flags += [f"-X {_HELM_MODULE}/{pkg}.k8sVersionMajor={major}",
                  f"-X {_HELM_MODULE}/{pkg}.k8sVersionMinor={minor}"]  # fmt: skip
    return " ".join(flags)


def ensure_helm(version: str = HELM_VERSION) -> Path:
    """The path of a ``helm`` binary of ``version``, built on first use."""
    final = tools_dir() / f"helm-{version}" / "helm"
    if os.access(final, os.X_OK):
        return final
    go = _go()
    tools_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="helm-", dir=tools_dir()) as tmp:
        return _install(
            "helm", version, Path(tmp), "helm",
            [
                go, "install", "-trimpath",
                "-ldflags", _helm_ldflags(version),
                f"{_HELM_MODULE}/cmd/helm@{version}",
            ],
        )  # fmt: skip


def _docker_compose_plugin() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        result = subprocess.run(
            [docker, "compose", "version", "--short"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [docker, "compose"] if result.returncode == 0 else None


def _module_dir(go: str, module: str, version: str) -> Path:
    try:
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{module}@{version}"],
            env=_go_env(), capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise StackError(f"downloading {module}@{version} timed out") from err
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    folder = info.get("Dir")
    if result.returncode != 0 or not folder:
        reason = info.get("Error") or (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackError(f"go mod download {module}@{version} failed: {reason}")
    return Path(folder)


def ensure_compose(version: str = COMPOSE_VERSION) -> list[str]:
    """The command prefix of a Compose implementation (``[..., "config"]`` renders)."""
    plugin = _docker_compose_plugin()
    if plugin is not None:
        return plugin
    final = tools_dir() / f"docker-compose-{version}" / "docker-compose"
    if os.access(final, os.X_OK):
        return [str(final)]
    go = _go()
    source = _module_dir(go, _COMPOSE_MODULE, version)
    tools_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compose-", dir=tools_dir()) as tmp:
        out = Path(tmp) / "docker-compose"
        path = _install(
            "docker-compose", version, Path(tmp), "docker-compose",
            [
                go, "build", "-C", str(source), "-trimpath",
                "-ldflags", f"-s -w -X {_COMPOSE_MODULE}/internal.Version={version}",
                "-o", str(out), "./cmd",
            ],
        )  # fmt: skip
    return [str(path)]
