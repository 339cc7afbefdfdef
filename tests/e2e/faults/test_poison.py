"""A poison request hurts only its own session (the blast-radius issue's first scenario).

Ten sessions send dummy echoes while an eleventh sends one ``sigkill``, the
whole stack as ``make run`` runs it: a real gateway, the runner supervisor,
Kafka and Redis. The runner crashes; the crash names no culprit at first, so
the requests it held are re-run one at a time and only the request that
crashes again alone is charged. The test prints the figures: innocent
failures, the worst innocent latency, the crashes, and how long the culprit
waited for its error.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.e2e.faults.load import Load
from tests.e2e.faults.stack import FaultStack
from tests.e2e.faults.test_faults import show, wait_assigned, wait_sent
from tests.fixtures.gateway import Client, dummy

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(300)]

SESSIONS = 10
ECHOES = 300
RATE = 30.0
CRASH_TEXT = "session thread closed unexpectedly"


async def test_poison_request_fails_only_its_sender(
    fault_stack: FaultStack, capsys: pytest.CaptureFixture[str]
) -> None:
    supervisor = fault_stack.runners.supervised("dummy", dummy_faults="true")
    gateway = fault_stack.gateway()
    await wait_assigned(supervisor)

    load = Load(gateway.url, clients=SESSIONS, tag="i")
    pushed: list[dict[str, Any]] = []
    for sio in load.sios:
        sio.on("message", lambda data, *_offset: pushed.append(data))
    await load.connect()
    culprit = Client(gateway.url)
    await culprit.connect()
    try:
        await load.probe_until_ok(within=120)
        sending = asyncio.create_task(load.send(ECHOES, RATE))
        await wait_sent(load, ECHOES // 4)
        poisoned_at = time.monotonic()
        ack = await culprit.call("message", dummy("sigkill", id="poison"), wait=120)
        culprit_waited = time.monotonic() - poisoned_at
        await sending
        await load.drain()
        notices = []
        while not culprit.events["message"].empty():
            notices.append(culprit.events["message"].get_nowait())
    finally:
        await culprit.close()
        await load.close()
    crashes = supervisor.log_text().count('"process exited"')

    innocents = list(load.outcomes.values())
    failed = [o for o in innocents if not o.ok]
    worst = max(o.answered_at - o.sent_at for o in innocents if o.answered_at is not None)
    show(
        capsys,
        f"[poison] innocent echoes={len(innocents)} failed={len(failed)} "
        f"worst innocent latency={worst:.2f}s runner crashes={crashes} "
        f"culprit answered after {culprit_waited:.1f}s: {ack.get('error')!r}",
    )
    assert not failed, [(o.request_id, o.ack) for o in failed[:5]]
    assert crashes >= 2  # the first crash, and at least one charged while it ran alone
    assert ack["error"].startswith("Error: request abandoned after 3 attempts")
    assert CRASH_TEXT in ack["error"]
    # Only the culprit's session was told of the crashes.
    assert not [p for p in pushed if CRASH_TEXT in str(p.get("error", ""))]
    assert [m for m in notices if CRASH_TEXT in str(m.get("error"))], "the culprit was not told"
