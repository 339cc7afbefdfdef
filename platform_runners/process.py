"""``sockethub runner --platform NAME``: one platform's runner as an OS process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from typing import Any

import structlog

from platform_runners.committer import CommitError
from platform_runners.health import HealthServer
from platform_runners.platform import PlatformFactory
from platform_runners.registry import UnknownPlatform, load_platform
from platform_runners.runner import Runner
from platform_runners.settings import SHUTDOWN_SLACK, RunnerSettings
from schemas.platform_registry import PlatformDescriptor, PlatformRegistry
from schemas.topics import TopicLayout
from sockethub.runtime.heap import freeze_startup_heap
from sockethub.runtime.kafka_clients import TopicSetupError, ensure_topics
from sockethub.runtime.observability import configure_logging

log = structlog.get_logger("platform_runners.process")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2


def run_runner(settings: RunnerSettings, platform: str) -> int:
    """Run until SIGTERM/SIGINT (exit 0, offsets committed) or a fatal error (exit 1)."""
    configure_logging(settings, process=f"runner:{platform}")
    try:
        factory = load_platform(platform)
        descriptor = PlatformRegistry([platform], dummy_faults=settings.dummy_faults).get(platform)
    except (UnknownPlatform, ValueError) as exc:
        print(f"sockethub runner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    assert descriptor is not None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(_main(settings, factory, descriptor))
    return int(uvloop.run(_main(settings, factory, descriptor)))


def _on_stop_signal(stop: asyncio.Event, settings: RunnerSettings) -> None:
    """First signal: stop gracefully, with a deadline; a second signal: exit at once.

    Without the deadline a runner whose broker is gone (its supervisor was killed with
    the rest of the stack) would retry its final commit forever. Giving up is safe: its
    open transaction is aborted by the broker or fenced by its successor.
    """
    if stop.is_set():
        os._exit(EXIT_FATAL)
        return
    stop.set()
    deadline = settings.shutdown_grace + SHUTDOWN_SLACK
    timer = threading.Timer(deadline, _give_up, args=(deadline,))
    timer.daemon = True
    timer.start()


def _give_up(deadline: float) -> None:
    log.error("runner.shutdown.timeout", seconds=deadline)
    sys.stderr.flush()
    os._exit(EXIT_FATAL)


class _Current:
    """The runner once constructed, for the health listener that starts before it."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.runner: Runner | None = None
        self._stop = stop

    def status(self) -> dict[str, Any]:
        if self.runner is None:
            return {"ready": False, "consumer": False, "joined": False, "partitions": []}
        current = self.runner.status()
        if self._stop.is_set():  # draining: a stopping runner is no longer ready
            current["ready"] = False
        return current


async def _main(
    settings: RunnerSettings, factory: PlatformFactory, descriptor: PlatformDescriptor
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_stop_signal, stop, settings)
    current = _Current(stop)
    health: HealthServer | None = None
    if settings.metrics_port is not None:
        # before the topics and the consumer, so that liveness answers while they start
        health = HealthServer(settings.metrics_host, settings.metrics_port, current.status)
        try:
            await health.start()
        except OSError as exc:
            log.error("runner.health.failed", error=str(exc))
            return EXIT_FATAL
    try:
        return await _run(settings, factory, descriptor, stop, current)
    finally:
        if health is not None:
            await health.close()


async def _run(
    settings: RunnerSettings,
    factory: PlatformFactory,
    descriptor: PlatformDescriptor,
    stop: asyncio.Event,
    current: _Current,
) -> int:
    try:
        await ensure_topics(settings, TopicLayout(settings).specs([descriptor.id]))
    except TopicSetupError as exc:
        log.error("runner.topics.failed", error=str(exc))
        return EXIT_FATAL
    runner = current.runner = Runner(settings, factory, descriptor)
    try:
        await runner.start()
        freeze_startup_heap(f"runner:{descriptor.id}")
        await runner.run(stop)
    except CommitError as exc:
        log.error("runner.fatal", error=str(exc))
        return EXIT_FATAL
    except Exception as exc:
        log.exception("runner.fatal", error=repr(exc))
        return EXIT_FATAL
    finally:
        await runner.close()
    return EXIT_OK
