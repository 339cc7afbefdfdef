"""Fixtures the integration tests of several platforms share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    """An open loopback port that records every connection it accepts."""
    accepted: list[int] = []

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    yield port, accepted
    server.close()
    await server.wait_closed()
