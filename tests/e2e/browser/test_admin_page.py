"""The admin page in a real browser: Debian's chromium, driven by playwright-core.

A real gateway (with ``SOCKETHUB_ADMIN_TOKEN``) and a dummy runner share a topic prefix on
the session's Kafka and Redis; one undecodable record on the dummy request topic becomes a
dead letter. The browser first meets the sign-in form (no token, then a wrong one), signs
in, reads every section, takes a screenshot into the test's tmp dir, re-drives the dead
letter through the form (refused: it is not a readable request) and signs out.

A missing chromium, node or playwright-core fails the test: it is never a skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.e2e.browser.test_demo_page import CHROMIUM, HERE, _browser_tooling
from tests.fixtures.gateway import GatewayFactory
from tests.fixtures.runners import RunnerStack, started_runners

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(600)]

DRIVER = HERE / "drive_admin.mjs"
TOKEN = "admin-" + uuid.uuid4().hex


@pytest.fixture
def admin_stack(
    kafka_bootstrap: str, redis_url: str, stack_env: dict[str, str], tmp_path: Path
) -> Iterator[RunnerStack]:
    stack = RunnerStack(
        kafka_bootstrap, redis_url, f"adm{uuid.uuid4().hex[:8]}", tmp_path / "logs", stack_env
    )
    with started_runners(stack, "dummy", timeout=180):
        yield stack


def _get(url: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


async def _poison(stack: RunnerStack) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            stack.layout.requests("dummy"), b"\x00not a request", key=b"s-admin"
        )
    finally:
        await producer.stop()


def test_admin_page_in_chromium(
    gateway_factory: GatewayFactory, admin_stack: RunnerStack, tmp_path: Path
) -> None:
    missing = _browser_tooling()
    assert not missing, "the browser test needs: " + "; ".join(missing)
    gateway = gateway_factory(topic_prefix=admin_stack.prefix, admin_token=TOKEN,
                              platforms="dummy")  # fmt: skip
    url = f"{gateway.internal_url}/admin"
    asyncio.run(_poison(admin_stack))

    # Without the token (or with a wrong one) there is only the sign-in form.
    status, body = _get(url, None)
    assert status == 401 and 'id="login"' in body and "Runners" not in body
    assert _get(url, "wrong")[0] == 401
    # With it: wait for the dead letter and the runner's report of its assignment.
    deadline = time.monotonic() + 180
    while True:
        status, body = _get(url, TOKEN)
        assert status == 200, body[:500]
        if "undecodable" in body and "<td>0, 1, 2</td>" in body:
            break
        assert time.monotonic() < deadline, f"admin page never showed both:\n{body[-3000:]}"
        time.sleep(1)

    screenshot = tmp_path / "admin.png"
    run = subprocess.run(
        ["node", str(DRIVER), url, str(screenshot)],
        cwd=HERE, env={**os.environ, "CHROMIUM": CHROMIUM, "ADMIN_TOKEN": TOKEN},
        capture_output=True, text=True, timeout=420, check=False,
    )  # fmt: skip
    assert run.returncode == 0, (
        f"browser run failed ({run.returncode}):\n{run.stderr[-4000:]}\n{run.stdout[-2000:]}\n"
        f"gateway log:\n{gateway.log_text()[-3000:]}"
    )
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    assert seen["problems"] == [], seen["problems"]
    assert seen["unauthorizedLoads"] >= 2  # no token, a wrong one (and after signing out)
    assert seen["noTokenStatus"] == 401 and "default-src 'none'" in seen["noTokenCsp"]
    assert seen["noTokenHasRunners"] is False
    assert "not the admin token" in seen["wrongToken"]
    assert seen["documentCookie"] == ""
    assert seen["cookie"] == [{"httpOnly": True, "sameSite": "Strict", "path": "/admin"}]
    assert seen["sections"] == ["Sessions per gateway", "Requests, errors, timeouts",
                                "Consumer lag (committed offsets)", "Runners",
                                "Dead letters"]  # fmt: skip
    assert any(gateway.gateway_id in row for row in seen["sessions"]), seen["sessions"]
    assert len(seen["lag"]) == 3 and all(r.startswith("dummy") for r in seen["lag"]), seen["lag"]
    # The runner reports its assignment: its partitions are listed beside its state.
    assert any(r.startswith("dummy0running0, 1, 2") for r in seen["runners"]), seen["runners"]
    assert seen["reasons"] == ["dummyundecodable1"], seen["reasons"]
    assert len(seen["deadLetters"]) == 1
    assert seen["stylesheetApplied"] == "rgb(238, 238, 238)"  # the CSS came, under the CSP
    assert "refused" in seen["redrive"] and "not a readable request" in seen["redrive"]
    assert seen["signedOut"] is True
    assert screenshot.stat().st_size > 10_000
