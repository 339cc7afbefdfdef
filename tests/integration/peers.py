"""Steps the IRC and XMPP end-to-end tests share: Socket.IO clients of a gateway, waiting for
a pushed event, and the hand-over of a connection when the runner holding it is killed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.fixtures.gateway import Client, GatewayProcess
from tests.fixtures.runners import RunnerStack


async def new_client(gateway: GatewayProcess, made: list[Client]) -> Client:
    """A connected client, added to ``made`` (closed by the test's ``clients`` fixture)."""
    client = await Client(gateway.url).connect()
    made.append(client)
    return client


async def next_matching(
    client: Client, predicate: Callable[[dict[str, Any]], bool], wait: float = 60.0
) -> dict[str, Any]:
    async with asyncio.timeout(wait):
        while True:
            event: dict[str, Any] = await client.next_event("message", wait)
            if predicate(event):
                return event


async def kill_the_holder(stack: RunnerStack, platform: str, client: Client) -> None:
    """Start a spare runner, then SIGKILL the one holding ``client``'s connection: the
    survivor re-establishes it from the desired state and tells the session."""
    holder = stack.processes[0]
    spare = stack.runner(platform, instance="b")
    spare.wait_for_log("runner.partitions.assigned", timeout=120)
    holder.wait_for_log("runner.partitions.assigned", count=2, timeout=120)
    if "persistent.restored" in spare.log_text():
        spare, holder = holder, spare  # the rebalance already moved it: kill the new holder
        note = await next_matching(client, lambda e: e.get("type") == "connect")
        assert note["object"]["type"] == "note"
    holder.kill()
    note = await next_matching(client, lambda e: e.get("type") == "connect", wait=120)
    assert note["object"] == {
        "type": "note",
        "content": "connection re-established by another runner",
    }
    spare.wait_for_log("persistent.restored", timeout=30)
