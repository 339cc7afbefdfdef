"""HTTP actions against a real gateway process and a real dummy runner, through httpx."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fixtures.gateway import GatewayFactory, GatewayProcess, dummy
from tests.fixtures.runners import RunnerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

TOKEN = "http-actions-test-token"
SECRET_WORD = "hunter2-http-do-not-log"


@pytest.fixture
def http_gateway(
    gateway_factory: GatewayFactory, shared_gateway_prefix: str, dummy_runner: RunnerProcess
) -> GatewayProcess:
    return gateway_factory(
        topic_prefix=shared_gateway_prefix,
        http_actions="true",
        http_actions_token=TOKEN,
        http_actions_max_messages=5,
        max_payload=4096,
        rate_limit=1000,
        request_timeout=15,
    )


@pytest.fixture
async def http(http_gateway: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=http_gateway.url, headers=headers, timeout=60) as client:
        yield client


def _creds() -> dict[str, Any]:
    creds = dummy("credentials")
    creds["object"] = {"type": "credentials", "password": SECRET_WORD}
    return creds


def _rid() -> str:
    return f"req-{uuid.uuid4().hex[:12]}"


async def test_results_stream_as_ndjson_in_payload_order(http: httpx.AsyncClient) -> None:
    body = [
        dummy("echo", "first", id="m1"),
        _creds(),
        dummy("fail", "boom", id="m2"),
        42,
        dummy("echo", "last", id="m3"),
    ]
    async with http.stream(
        "POST", "/sockethub-http", json=body, headers={"X-Request-Id": _rid()}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        assert r.headers["cache-control"] == "no-store"
        lines = [json.loads(line) async for line in r.aiter_lines() if line]
    assert len(lines) == 5
    assert lines[0]["id"] == "m1" and lines[0]["object"]["content"] == "first"
    assert lines[1]["type"] == "credentials-ack" and "error" not in lines[1]
    assert lines[1]["actor"] == {"id": "jimmy@dummy", "type": "person"}
    assert lines[2]["id"] == "m2" and lines[2]["error"] == "Error: boom"
    assert lines[3]["type"] == "error" and lines[3]["error"] == "unsupported payload type"
    assert lines[4]["id"] == "m3" and lines[4]["object"]["content"] == "last"
    assert SECRET_WORD not in json.dumps(lines)


async def test_a_retry_replays_and_runs_nothing_twice(
    http: httpx.AsyncClient, http_gateway: GatewayProcess, stack_env: dict[str, str]
) -> None:
    rid, cid = _rid(), f"once-{uuid.uuid4().hex[:8]}"
    body = {"requestId": rid, "messages": [_creds(), dummy("echo", "once", id=cid)]}
    first, second = await asyncio.gather(
        http.post("/sockethub-http", json=body),
        http.post("/sockethub-http", json=body),  # while the first runs: waits for it
    )
    third = await http.post("/sockethub-http", json=body)
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.content == second.content == third.content
    assert json.loads(first.content.splitlines()[1])["id"] == cid
    ran = [r for r in (first, second, third) if "x-idempotent-replay" not in r.headers]
    assert len(ran) == 1
    sid = ran[0].headers["x-sockethub-session"]
    looked = await http.get(f"/sockethub-http/{rid}")
    assert looked.status_code == 200 and looked.content == first.content
    # The log holds the request once and its result once, and replay shows them.
    env = {**os.environ, **stack_env, "SOCKETHUB_TOPIC_PREFIX": http_gateway.topic_prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sockethub.cli", "replay", "--actor=jimmy@dummy",
        "--format", "json", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    rows = [json.loads(line) for line in out.decode().splitlines()]
    mine = [r for r in rows if r["correlation_id"] == cid]
    assert sorted(r["type"] for r in mine) == ["request", "result"]
    assert {r["session_id"] for r in mine} == {sid}
    assert [r["verb"] for r in rows if r["session_id"] == sid and r["type"] == "credentials"] == [
        "credentials"
    ]
    assert SECRET_WORD not in out.decode()


async def test_refusals_are_json(http: httpx.AsyncClient, http_gateway: GatewayProcess) -> None:
    url = "/sockethub-http"
    rid = {"X-Request-Id": _rid()}
    as_json = {"Content-Type": "application/json"}
    cases: list[tuple[httpx.Response, int, str]] = [
        (await http.post(url, content=b"{not json", headers={**rid, **as_json}),
         400, "request body is not valid JSON"),
        (await http.post(url, json=[], headers=rid), 400,
         "request body must be a payload object or array of payloads"),
        (await http.post(url, content=b"[1]", headers={**rid, "Content-Type": "text/plain"}), 400,
         "request body must be a payload object or array of payloads"),
        (await http.post(url, json=[dummy("echo")] * 6, headers=rid), 413,
         "payload limit exceeded (max 5)"),
        (await http.post(url, json=[dummy("echo", "x" * 5000)], headers=rid), 413,
         "request body larger than 4096 bytes (SOCKETHUB_MAX_PAYLOAD)"),
        (await http.post(url, json=[dummy("echo")]), 400, "requestId is required"),
        (await http.post(url, json=[dummy("echo")], headers={"X-Request-Id": "a b"}), 400,
         "requestId contains invalid characters"),
        (await http.post(url, json=[dummy("echo")], headers={"X-Request-Id": "a" * 129}), 400,
         "requestId must be at most 128 characters"),
        (await http.get(f"{url}/never-seen"), 404, "request not found"),
        (await http.put(url, json=[]), 405, "method not allowed"),
        (await http.post(url, json=[dummy("echo")], headers={**rid, "Origin": "http://evil.test"}),
         403, "origin not allowed"),
    ]  # fmt: skip
    for response, status, error in cases:
        assert (response.status_code, response.json()) == (status, {"error": error, **(
            {"requestId": "never-seen"} if status == 404 else {})})  # fmt: skip
    async with httpx.AsyncClient(base_url=http_gateway.url, timeout=30) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = await anonymous.post(url, json=[dummy("echo")], headers={**rid, **headers})
            assert r.status_code == 401 and r.json() == {"error": "missing or invalid bearer token"}
    preflight = await http.options(url, headers={"Origin": f"http://127.0.0.1:{http_gateway.port}"})
    assert preflight.status_code == 204
    assert (
        preflight.headers["access-control-allow-origin"] == f"http://127.0.0.1:{http_gateway.port}"
    )


async def test_the_rate_limit_answers_429(gateway_factory: GatewayFactory) -> None:
    # A prefix of its own: the block it starts is shared, through Redis, with every
    # gateway of its prefix, and all test clients come from 127.0.0.1.
    gateway = gateway_factory(http_actions="true", rate_limit=4, rate_block_seconds=1)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        body = [dummy("echo", str(i)) for i in range(5)]  # five events against four a second
        r = await client.post("/sockethub-http", json=body, headers={"X-Request-Id": _rid()})
    assert r.status_code == 429
    assert r.json() == {"error": "rate limit exceeded, temporarily blocked"}
    assert int(r.headers["retry-after"]) >= 1


async def test_off_by_default(served_gateway: GatewayProcess) -> None:
    async with httpx.AsyncClient(base_url=served_gateway.url, timeout=30) as client:
        r = await client.post("/sockethub-http", json=[dummy("echo")])
    assert r.status_code == 404
