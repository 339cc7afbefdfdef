"""compose/compose.yaml, rendered and validated by a real Compose implementation.

There is no Docker engine here: ``compose config`` only parses, interpolates,
validates against the Compose Specification and prints the resolved project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from platform_runners.settings import SHUTDOWN_SLACK
from sockethub.devstack.tools import ensure_compose
from tests.integration.deploy.settings_check import load_deployed_settings

# The first run builds Compose from source (minutes); later runs find it cached.
pytestmark = pytest.mark.timeout(2400)

REPO = Path(__file__).resolve().parents[3]
COMPOSE_DIR = REPO / "compose"
# The dummy test platform's runner comes only with the `dummy` profile.
PLATFORMS = ["feeds", "metadata", "irc", "xmpp", "caldav", "carddav"]
RUNNERS = {f"runner-{p}" for p in PLATFORMS}
CORE = {"redpanda", "redis", "gateway"} | RUNNERS
DEMO = {"ircd", "xmppd"}

Project = dict[str, Any]


@pytest.fixture(scope="session")
def compose_cmd() -> list[str]:
    return ensure_compose()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of compose/ with .env from .env.example (never the user's own .env)."""
    folder = tmp_path_factory.mktemp("compose") / "compose"
    shutil.copytree(COMPOSE_DIR, folder, ignore=shutil.ignore_patterns(".env"))
    shutil.copy(COMPOSE_DIR / ".env.example", folder / ".env")
    (folder.parent / "Dockerfile").write_text((REPO / "Dockerfile").read_text())
    return folder


def _env(tmp: Path) -> dict[str, str]:
    # Only what compose needs: nothing from the caller's SOCKETHUB_* or COMPOSE_* leaks in.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
            "DOCKER_CONFIG": str(tmp / ".docker")}  # fmt: skip


def compose(
    cmd: list[str], folder: Path, *args: str, profiles: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    flags: list[str] = ["--project-directory", str(folder), "-f", str(folder / "compose.yaml")]
    for profile in profiles:
        flags += ["--profile", profile]
    return subprocess.run([*cmd, *flags, *args], capture_output=True, text=True, cwd=folder,
                          env=_env(folder.parent), timeout=120, check=False)  # fmt: skip


def render(cmd: list[str], folder: Path, *profiles: str) -> Project:
    result = compose(cmd, folder, "config", "--format", "json", profiles=profiles)
    assert result.returncode == 0, result.stderr
    project: Project = json.loads(result.stdout)
    return project


@pytest.fixture(scope="module")
def project(compose_cmd: list[str], workdir: Path) -> Project:
    return render(compose_cmd, workdir)


@pytest.fixture(scope="module")
def demo(compose_cmd: list[str], workdir: Path) -> Project:
    return render(compose_cmd, workdir, "demo")


def test_config_is_valid(compose_cmd: list[str], workdir: Path) -> None:
    for profiles in [(), ("demo",), ("dummy",)]:
        result = compose(compose_cmd, workdir, "config", "--quiet", profiles=profiles)
        assert result.returncode == 0, result.stderr


def test_services(project: Project, demo: Project) -> None:
    assert set(project["services"]) == CORE
    assert set(demo["services"]) == CORE | DEMO
    assert project["name"] == "sockethub"


def test_dummy_platform_is_off_by_default(
    compose_cmd: list[str], workdir: Path, project: Project
) -> None:
    gateway = project["services"]["gateway"]["environment"]
    assert gateway["SOCKETHUB_PLATFORMS"] == ",".join(PLATFORMS)
    for service in project["services"].values():
        assert "SOCKETHUB_DUMMY_FAULTS" not in service.get("environment", {})
    with_dummy = render(compose_cmd, workdir, "dummy")
    assert set(with_dummy["services"]) == CORE | {"runner-dummy"}
    runner = with_dummy["services"]["runner-dummy"]
    assert runner["entrypoint"][2].startswith("exec sockethub runners --platforms dummy ")
    assert "SOCKETHUB_DUMMY_FAULTS" not in runner["environment"]


def test_one_scalable_runner_service_per_platform(project: Project) -> None:
    for platform in PLATFORMS:
        runner = project["services"][f"runner-{platform}"]
        shell, flag, script = runner["entrypoint"]
        assert (shell, flag) == ("sh", "-c")
        # Replicas are told apart by their container hostname (their transactional id);
        # `compose config` keeps the `$$` escape, the container's shell sees `$HOSTNAME`.
        assert script == f'exec sockethub runners --platforms {platform} --instance "$$HOSTNAME"'
        assert runner.get("command") is None
        # Scalable with --scale: no fixed name, no published port.
        assert "container_name" not in runner
        assert not runner.get("ports")
        assert runner["read_only"] is True
        assert runner["cap_drop"] == ["ALL"]


def test_health_checks(project: Project, demo: Project) -> None:
    services = project["services"]
    gateway = " ".join(services["gateway"]["healthcheck"]["test"])
    # the internal listener, not the public port
    assert "http://127.0.0.1:10551/readyz" in gateway
    assert services["gateway"]["environment"]["SOCKETHUB_INTERNAL_PORT"] == "10551"
    for runner in RUNNERS:
        check = " ".join(services[runner]["healthcheck"]["test"])
        assert "http://127.0.0.1:9102/readyz" in check
        assert services[runner]["environment"]["SOCKETHUB_METRICS_PORT"] == "9102"
    assert "rpk cluster health" in " ".join(services["redpanda"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in DEMO:
        assert demo["services"][name]["healthcheck"]["test"]


def test_start_order_waits_for_healthy_backends(project: Project) -> None:
    for name in {"gateway"} | RUNNERS:
        depends = project["services"][name]["depends_on"]
        assert {k: v["condition"] for k, v in depends.items()} == {
            "redpanda": "service_healthy",
            "redis": "service_healthy",
        }


def test_named_volumes(project: Project, demo: Project) -> None:
    assert {"redpanda-data", "redis-data"} <= set(project["volumes"])

    def mounts(service: str, proj: Project) -> dict[str, str]:
        return {v["target"]: v["source"] for v in proj["services"][service]["volumes"]
                if v["type"] == "volume"}  # fmt: skip

    assert mounts("redpanda", project) == {"/var/lib/redpanda/data": "redpanda-data"}
    assert mounts("redis", project) == {"/data": "redis-data"}
    assert mounts("xmppd", demo)["/var/lib/prosody"] == "prosody-data"


def test_ports_are_bound_to_loopback_only(demo: Project) -> None:
    published = []
    for name, service in demo["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port}"
            published.append((name, port["target"]))
    assert ("gateway", 10550) in published
    assert ("redpanda", 19092) in published


def test_services_talk_to_redpanda_and_its_schema_registry(project: Project) -> None:
    for name in {"gateway"} | RUNNERS:
        env = project["services"][name]["environment"]
        assert env["SOCKETHUB_KAFKA_BOOTSTRAP"] == "redpanda:9092"
        assert env["SOCKETHUB_SCHEMA_REGISTRY_URL"] == "http://redpanda:8081"
        assert env["SOCKETHUB_REDIS_URL"] == "redis://:change-me-redis-password@redis:6379/0"
        assert env["SOCKETHUB_SECRET"] == "change-me-server-secret"
    command = project["services"]["redpanda"]["command"]
    assert "--schema-registry-addr=internal://0.0.0.0:8081,external://0.0.0.0:18081" in command
    assert project["services"]["gateway"]["environment"]["SOCKETHUB_HOST"] == "0.0.0.0"


def test_secrets_are_required_from_the_env_file(compose_cmd: list[str], workdir: Path) -> None:
    bare = workdir.parent / "bare"
    shutil.copytree(workdir, bare, ignore=shutil.ignore_patterns(".env"))
    result = compose(compose_cmd, bare, "config", "--quiet")
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr or "SOCKETHUB_SECRET" in result.stderr


def test_the_demo_password_is_only_for_the_demo(compose_cmd: list[str], workdir: Path) -> None:
    core = workdir.parent / "core"
    shutil.copytree(workdir, core)
    env = (core / ".env").read_text().splitlines()
    (core / ".env").write_text("\n".join(line for line in env if "XMPP_DEMO_PASSWORD" not in line))
    result = compose(compose_cmd, core, "config", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "XMPP_DEMO_PASSWORD" not in result.stderr


def test_the_image_builds_from_the_top_level_dockerfile(project: Project) -> None:
    for name in {"gateway"} | RUNNERS:
        build = project["services"][name]["build"]
        assert Path(build["context"]).name != "compose"
        assert build["dockerfile"] == "Dockerfile"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "\nUSER 10001:10001\n" in dockerfile


def test_every_setting_is_a_known_valid_setting(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.settings import GatewaySettings
    from platform_runners.settings import RunnerSettings

    for name in {"gateway"} | RUNNERS:
        model = GatewaySettings if name == "gateway" else RunnerSettings
        env = {k: v for k, v in project["services"][name]["environment"].items() if v}
        settings = load_deployed_settings(model, env, monkeypatch, name)
        assert settings.replication_factor == 1


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60}
    for unit in ("ms", "s", "m"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text) / 1e9  # docker compose config prints nanoseconds when no unit


def test_stop_grace_outlasts_the_runners_deadline(project: Project) -> None:
    shutdown_slack = SHUTDOWN_SLACK
    for runner in RUNNERS:
        service = project["services"][runner]
        grace = float(service["environment"]["SOCKETHUB_SHUTDOWN_GRACE"])
        assert _seconds(str(service["stop_grace_period"])) >= grace + shutdown_slack + 15
    assert _seconds(str(project["services"]["gateway"]["stop_grace_period"])) > 10


def test_the_readme_says_dev_container_mode_does_not_fsync() -> None:
    readme = (REPO / "compose" / "README.md").read_text()
    assert "--mode=dev-container" in readme and "fsync" in readme
    assert "rpk redpanda mode production" in readme
