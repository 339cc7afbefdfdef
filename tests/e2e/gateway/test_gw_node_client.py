"""``@sockethub/client@5.0.0-alpha.11`` from npm, run in Node against the gateway."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.fixtures.gateway import DUMMY_CONTEXT, GatewayProcess

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

JS = Path(__file__).resolve().parents[2] / "js"


async def test_published_client_sends_a_dummy_echo(served_gateway: GatewayProcess) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for this test (make provision)"
    assert (JS / "node_modules" / "@sockethub" / "client").is_dir(), "npm install --prefix tests/js"
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS / "client_echo.mjs"),
        served_gateway.url,
        served_gateway.path,
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, stderr.decode()
    line = [x for x in stdout.decode().splitlines() if x.startswith('{"result"')][-1]
    result = json.loads(line)["result"]
    assert result == {
        "context": "dummy",
        "@context": DUMMY_CONTEXT,
        "type": "echo",
        "actor": {"id": "dummy", "type": "platform"},
        "target": {"id": "jimmy@dummy", "type": "person", "name": "Jimmy"},
        "object": {"type": "message", "content": "hello from node"},
    }
