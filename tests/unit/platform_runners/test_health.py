"""The runner's internal listener: liveness, readiness from the runner's state, metrics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from platform_runners.health import HealthServer
from platform_runners.settings import RunnerSettings


async def _get(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_healthz_readyz_and_metrics_on_the_configured_address() -> None:
    state: dict[str, Any] = {"ready": False, "joined": False}
    server = HealthServer("127.0.0.1", 0, lambda: dict(state))
    await server.start()
    try:
        assert await _get(server.port, b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n") == (200, b"ok")
        status, body = await _get(server.port, b"GET /readyz HTTP/1.1\r\n\r\n")
        assert status == 503 and json.loads(body) == {"ready": False, "joined": False}
        state.update(ready=True, joined=True)
        status, body = await _get(server.port, b"GET /readyz?verbose HTTP/1.1\r\n\r\n")
        assert status == 200 and json.loads(body)["joined"] is True
        status, body = await _get(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 200 and b"sockethub_runner_requests_total" in body
        assert (await _get(server.port, b"GET /other HTTP/1.1\r\n\r\n"))[0] == 404
        assert (await _get(server.port, b"POST /readyz HTTP/1.1\r\n\r\n"))[0] == 405
        assert (await _get(server.port, b"nonsense\r\n\r\n"))[0] == 400
    finally:
        await server.close()


def test_the_address_is_a_setting_loopback_by_default() -> None:
    settings = RunnerSettings()
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", None)
    given = RunnerSettings(metrics_host="0.0.0.0", metrics_port=9102)
    assert (given.metrics_host, given.metrics_port) == ("0.0.0.0", 9102)
