"""``sockethub dlq`` against the real broker and a supervised runner: a poison request is
dead-lettered, listed, shown, re-driven after a fix and answered once; a second re-drive is
refused without ``--force``; purge removes it; every action is in the audit log."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from datetime import UTC, datetime

import orjson
import pytest

from schemas.envelopes import Result
from sockethub.dlq import Dlq, DlqFilters
from sockethub.replay import Filters, Replayer
from tests.fixtures.runners import FakeGateway, RunnerStack, echo_request

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

CRASHED = "Error: request abandoned after 2 attempts: session thread closed unexpectedly: 1"
FIXED = "Error: exit1 is not supported by the dummy platform"


def answers(gateway: FakeGateway, activity_id: str) -> list[Result]:
    return [r for r in gateway.results if r.activity_id == activity_id]


async def listed(stack: RunnerStack, **filters: object) -> list[dict[str, object]]:
    out = io.StringIO()
    await Dlq(stack.settings, err=io.StringIO()).list(DlqFilters(**filters), "json", out)  # type: ignore[arg-type]
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


async def test_a_poison_request_is_listed_shown_redriven_once_and_purged(
    runner_stack: RunnerStack,
) -> None:
    await runner_stack.create_topics(["dummy"])
    gateway = FakeGateway(runner_stack)
    await gateway.start()
    route = runner_stack.reply_topic
    try:
        supervisor = runner_stack.supervised("dummy", max_attempts=2)
        await asyncio.to_thread(supervisor.wait_for_log, "runner.partitions.assigned")
        poison = echo_request("s-poison", 1, verb="exit1", content="password: hunter2",
                              reply_route=route)  # fmt: skip
        fine = echo_request("s-fine", 1, reply_route=route)
        await gateway.send([poison, fine])
        await gateway.wait_for(
            lambda g: bool(answers(g, poison.activity_id)) and bool(answers(g, fine.activity_id)),
            within=180,
            what="the dead-letter error answer",
        )
        assert [r.error for r in answers(gateway, poison.activity_id)] == [CRASHED]
        assert supervisor.terminate() == 0

        # list, with its filters; the CLI itself once
        (row,) = await listed(runner_stack)
        assert row["reason"] == "crash" and row["activity_id"] == poison.activity_id
        assert row["session_id"] == "s-poison" and row["attempts"] == "2"
        assert await listed(runner_stack, reasons=frozenset({"undecodable"})) == []
        assert await listed(runner_stack, session="s-fine") == []
        assert await listed(runner_stack, since=datetime.now(UTC)) == []
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "sockethub.cli", "dlq", "list", "--platform", "dummy",
             "--reason", "crash"],
            env=runner_stack.env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert row["id"] in cli.stdout and "1 dead letters" in cli.stderr

        # show: the request in full, its secret-looking pair redacted
        out = io.StringIO()
        await Dlq(runner_stack.settings).show([poison.activity_id], out)
        shown = orjson.loads(out.getvalue())
        assert shown["id"] == row["id"] and shown["exit_code"] == "1"
        assert shown["activity"]["object"]["content"] == "password: [redacted]"
        assert "hunter2" not in out.getvalue()

        # the fix: the runner no longer runs the crashing verb; re-driven, answered once
        supervisor = runner_stack.supervised("dummy", max_attempts=2, dummy_faults=False)
        await asyncio.to_thread(supervisor.wait_for_log, "runner.partitions.assigned")
        out = io.StringIO()
        code = await Dlq(runner_stack.settings).redrive(
            [str(row["id"])], platform=None, since=None, force=False, out=out
        )
        assert code == 0 and "re-driven" in out.getvalue()
        await gateway.wait_for(
            lambda g: len(answers(g, poison.activity_id)) == 2, within=120, what="the re-run"
        )
        await gateway.settle(2.0)
        assert [r.error for r in answers(gateway, poison.activity_id)] == [CRASHED, FIXED]
        assert len(await listed(runner_stack)) == 1  # not dead-lettered again

        # answered now: refused without --force, by id and with --all
        err = io.StringIO()
        refused = await Dlq(runner_stack.settings, err=err).redrive(
            [poison.activity_id], platform=None, since=None, force=False, out=io.StringIO()
        )
        assert refused == 1 and "already has a result" in err.getvalue()
        assert (
            await Dlq(runner_stack.settings, err=io.StringIO()).redrive(
                [], platform="dummy", since=None, force=False, out=io.StringIO()
            )
            == 1
        )
        await gateway.settle(2.0)
        assert len(answers(gateway, poison.activity_id)) == 2
        assert supervisor.terminate() == 0

        # purge: everything dead-lettered before now is gone
        out = io.StringIO()
        await Dlq(runner_stack.settings, err=io.StringIO()).purge(datetime.now(UTC), None, out)
        assert "removed" in out.getvalue()
        assert await listed(runner_stack) == []

        audit = Replayer(runner_stack.settings, Filters(types=frozenset({"operation"})))
        verbs = [e.verb async for e in audit.entries()]
        assert verbs.count("dlq-list") >= 5
        assert {"dlq-show", "dlq-redrive", "dlq-purge"} <= set(verbs)
        assert verbs.count("dlq-redrive") == 3
    finally:
        await gateway.close()
