"""``sockethub dev`` and ``sockethub runners``: the processes of a deployment, on one machine."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from platform_runners.settings import SHUTDOWN_SLACK, RunnerSettings
from schemas.topics import TopicLayout
from sockethub.devstack.errors import StackError
from sockethub.devstack.kafka import KafkaBroker
from sockethub.devstack.processes import require_free_port
from sockethub.devstack.redis import RedisServer
from sockethub.runtime.kafka_clients import ensure_topics
from sockethub.runtime.observability import configure_logging
from sockethub.runtime.settings import (
    FILE_SUFFIX,
    CommonSettings,
    env_prefix,
    nested_models,
    read_secret_file,
)
from sockethub.supervisor import Child, Supervisor, python_cmd

log = structlog.get_logger("sockethub.dev")


def _export(settings: BaseSettings) -> None:
    """Children read their settings from the environment: pass on what flags set.

    A secret read from a ``_FILE`` stays there (the children read the same file) unless a
    flag replaced it: then the flag's value goes to the children instead of the file."""
    prefix = env_prefix(type(settings))
    nested = nested_models(type(settings))
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if name in nested:
            _export(value)
            continue
        if value is None:
            continue
        variable = f"{prefix}{name.upper()}"
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            path = os.environ.get(variable + FILE_SUFFIX)
            if path is not None:
                if read_secret_file(variable + FILE_SUFFIX, path) == text:
                    continue
                del os.environ[variable + FILE_SUFFIX]
            os.environ[variable] = text
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        os.environ[variable] = str(value)


def _default_dummy_faults(settings: BaseSettings) -> None:
    """The children get the dummy's fault verbs unless the user chose (flag or variable).

    A local stack is where they are tried out; a deployment leaves them off."""
    if "dummy_faults" not in settings.model_fields_set:
        os.environ["SOCKETHUB_DUMMY_FAULTS"] = "true"


def _default_demo(settings: GatewaySettings) -> None:
    """The demo page is on for a local stack unless the user chose; a deployment leaves
    it off (the setting's default)."""
    if "demo" not in settings.model_fields_set:
        os.environ["SOCKETHUB_DEMO"] = "true"


def _announce_when_up(settings: GatewaySettings, sup: Supervisor) -> None:
    url = f"http://{settings.host}:{settings.port}/"
    internal_host, internal_port = settings.internal_address()
    readyz = f"http://{internal_host}:{internal_port}/readyz"
    for _ in range(600):
        if sup.stopping:
            return
        try:
            with urllib.request.urlopen(readyz, timeout=2) as resp:
                if resp.status == 200:
                    print(f"Sockethub is ready at {url}", flush=True)
                    return
        except OSError:
            pass
        sup.wait(0.5)
    print(f"Sockethub did not become ready ({readyz}); see the logs above", flush=True)


def _local_secret(state: Path) -> SecretStr:
    """One server secret per state dir, so runners and a restarted gateway share it."""
    path = state / "secret"
    if not path.exists():
        state.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return SecretStr(path.read_text().strip())


@dataclass(frozen=True)
class DevPorts:
    kafka: int = 9092
    kafka_controller: int = 9093
    redis: int = 6379


def run_dev(settings: GatewaySettings, *, state_dir: str, ports: DevPorts = DevPorts()) -> int:
    configure_logging(settings, process="dev")
    state = Path(state_dir).resolve()
    started: list[KafkaBroker | RedisServer] = []
    try:
        require_free_port(settings.host, settings.port, "gateway",
                          "stop the other program or choose --port")  # fmt: skip
        require_free_port(*settings.internal_address(), "gateway internal listener",
                          "stop the other program or choose --internal-port")  # fmt: skip
        if "kafka_bootstrap" not in settings.model_fields_set:
            broker = KafkaBroker(
                state / "kafka",
                port=ports.kafka,
                controller_port=ports.kafka_controller,
                quick_start=False,
            )
            print(f"starting Kafka on {broker.bootstrap} (data in {broker.data_dir})", flush=True)
            broker.start()
            started.append(broker)
            settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
        if "redis_url" not in settings.model_fields_set:
            redis = RedisServer(state / "redis", port=ports.redis)
            print(f"starting Redis on {redis.host}:{redis.port}", flush=True)
            redis.start()
            started.append(redis)
            settings = settings.model_copy(update={"redis_url": redis.url})
        if settings.secret is None:
            settings = settings.model_copy(update={"secret": _local_secret(state)})
        settings.model_fields_set.update({"kafka_bootstrap", "redis_url", "secret"})
        layout = TopicLayout(settings)
        asyncio.run(
            ensure_topics(settings, layout.specs(settings.platform_ids(), [settings.gateway_id]))
        )
        _export(settings)
        _default_dummy_faults(settings)
        _default_demo(settings)
        sup = Supervisor(on_exit=_crash_recorder(settings))
        sup.add("gateway", python_cmd("gateway"))
        for platform in settings.platform_ids():
            sup.add(
                f"runner:{platform}", python_cmd("runner", "--platform", platform), readiness=True
            )
        threading.Thread(target=_announce_when_up, args=(settings, sup), daemon=True).start()
        return sup.run()
    finally:
        for service in reversed(started):
            service.stop()


def run_runners(settings: RunnerSettings) -> int:
    configure_logging(settings, process="runners")
    if not settings.platform_ids():
        raise StackError("no platforms enabled: set SOCKETHUB_PLATFORMS or --platforms")
    _export(settings)
    # A runner gives up stopping after its own deadline: wait a little longer than that.
    stop_timeout = settings.shutdown_grace + SHUTDOWN_SLACK + 5
    sup = Supervisor(on_exit=_crash_recorder(settings), stop_timeout=stop_timeout)
    for platform in settings.platform_ids():
        sup.add(f"runner:{platform}", python_cmd("runner", "--platform", platform), readiness=True)
    return sup.run()


def _crash_recorder(settings: CommonSettings) -> Callable[[Child, int], None]:
    """Records a crashed runner's exit code in Redis: its restarted self tells the sessions
    whose requests were in flight (``session thread closed unexpectedly: <code>``)."""
    from platform_runners.attempts import record_exit

    def on_exit(child: Child, code: int) -> None:
        kind, _, platform = child.name.partition(":")
        if kind != "runner":
            return
        try:
            record_exit(settings.redis_url, settings.topic_prefix, platform, code)
        except Exception as exc:  # Redis down: the notice says "unknown" instead
            log.warning("runner exit not recorded", process=child.name, error=repr(exc))

    return on_exit
