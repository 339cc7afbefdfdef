"""The demo page in chromium across a ``kill -9`` of its gateway: the session is recovered by
the replacement gateway and the page says how many missed events came back.

The dummy runner is paused (SIGSTOP) while the page sends three echoes, so their results are
written to the dead gateway's reply topic only after the kill: they are the missed events."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockethub.devstack.processes import free_port
from tests.e2e.browser.test_demo_page import CHROMIUM, HERE, _browser_tooling
from tests.fixtures.gateway import GatewayFactory, wait_ready
from tests.fixtures.recovery import kill9
from tests.fixtures.runners import RunnerStack, started_runners

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(600)]

DRIVER = HERE / "drive_recovery.mjs"


@pytest.fixture
def dummy_stack(
    kafka_bootstrap: str, redis_url: str, stack_env: dict[str, str], tmp_path: Path
) -> Iterator[RunnerStack]:
    stack = RunnerStack(
        kafka_bootstrap, redis_url, f"drec{uuid.uuid4().hex[:8]}", tmp_path / "logs",
        {"SOCKETHUB_SECRET": stack_env["SOCKETHUB_SECRET"]},
    )  # fmt: skip
    with started_runners(stack, "dummy"):
        yield stack


async def test_the_demo_page_reports_recovered_events_after_a_gateway_kill(
    gateway_factory: GatewayFactory, dummy_stack: RunnerStack
) -> None:
    missing = _browser_tooling()
    assert not missing, "the browser test needs: " + "; ".join(missing)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = {"allowed_origins": origin, "demo": "true", "port": port}
    a = dataclasses.replace(
        gateway_factory(topic_prefix=dummy_stack.prefix, wait=False, **settings), port=port
    )
    wait_ready(a)
    driver = await asyncio.create_subprocess_exec(
        "node", str(DRIVER), f"{origin}/", cwd=HERE, env={**os.environ, "CHROMIUM": CHROMIUM},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert driver.stdin is not None and driver.stdout is not None
    runner = dummy_stack.processes[0].pid

    async def line() -> dict[str, object]:
        raw = await asyncio.wait_for(driver.stdout.readline(), 180)  # type: ignore[union-attr]
        assert raw, (await driver.stderr.read()).decode()[-3000:]  # type: ignore[union-attr]
        parsed: dict[str, object] = json.loads(raw)
        return parsed

    b = a
    try:
        assert await line() == {"ready": True}
        os.killpg(runner, signal.SIGSTOP)  # the echoes wait in their request topic
        try:
            driver.stdin.write(b"send\n")
            assert await line() == {"sent": True}
            await asyncio.sleep(2)  # produced by the gateway (acks=all) before it dies
            kill9(a)
        finally:
            os.killpg(runner, signal.SIGCONT)
        b = dataclasses.replace(
            gateway_factory(topic_prefix=dummy_stack.prefix, wait=False, **settings), port=port
        )
        wait_ready(b)
        driver.stdin.write(b"wait\n")
        status = str((await line())["status"])
    finally:
        if driver.returncode is None:
            driver.kill()
        await driver.wait()
    told = [x for x in b.log_text().splitlines() if "recover" in x or "session_connected" in x]
    assert "reconnected: 3 missed events recovered" in status, (status, told[-10:])
