"""The Runner on in-process fakes (``runner_fakes``): no broker, no Redis; the same
behaviour against the real ones is in tests/integration/runners."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from platform_runners import runner as runner_module
from platform_runners.attempts import DONE, Attempts
from schemas.codec import Codec
from schemas.envelopes import (
    SESSION_RESUMED,
    PlatformEvent,
    Request,
    RequestKind,
    Result,
)
from schemas.platform_registry import canonical_context
from tests.unit.platform_runners.runner_fakes import (
    EXIT_CODE,
    REPLIES,
    FakeAdmin,
    FakeAttempts,
    FakeConsumer,
    FakeProducer,
    dead_letters_total,
    eventually,
)
from tests.unit.schemas.codec_fixtures import KEY_A


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "RETRY_BASE_S", 0.001)


# -- tests ----------------------------------------------------------------------------------


async def test_a_request_is_answered_and_its_offset_committed(harness: Any) -> None:
    h = harness()
    request = h.request("a", 1)
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(1, ""))
    result = h.result("a-1")
    assert result.activity_id == request.activity_id
    assert result.error is None
    assert result.activity["object"] == {"type": "message", "content": "1"}
    assert result.activity["@context"] == list(canonical_context("dummy"))
    assert h.kafka.produced[0].key == b"a"


async def test_order_within_a_session_while_sessions_run_side_by_side(harness: Any) -> None:
    h = harness()
    sent = [
        h.request(s, n, partition=p) for n in range(12) for s, p in (("a", 0), ("b", 0), ("c", 1))
    ]
    await h.start()
    await eventually(lambda: len(h.results()) == len(sent))
    for session in "abc":
        expected = [f"{session}-{n}" for n in range(12)]
        assert [c for c in h.script.started if c.startswith(session)] == expected
        assert [c for c in h.answered() if c.startswith(session)] == expected
    assert h.script.most_per_session == 1
    assert h.script.most_at_once >= 2
    await eventually(
        lambda: (
            h.committed(0) == OffsetAndMetadata(24, "")
            and h.committed(1) == OffsetAndMetadata(12, "")
        )
    )


async def test_failures_become_error_answers(harness: Any) -> None:
    h = harness(transient_retries=2)
    h.credentials.stored[("a", "dummy", "a@example")] = {"object": {"type": "credentials"}}
    h.request("a", 0, "fail")
    h.request("a", 1, "nope")
    h.request("a", 2, "whoami")
    h.request("b", 0, "whoami")
    h.request("a", 3, "echo")
    await h.start()
    await eventually(lambda: len(h.results()) == 5)
    refused = h.result("a-0")
    assert refused.error == "Error: the platform refused"
    assert refused.activity["error"] == refused.error
    assert refused.activity["type"] == "fail"
    assert h.result("a-1").error == "Error: nope is not supported by the dummy platform"
    assert h.result("a-2").activity["object"] == {"type": "credentials"}
    assert h.result("b-0").error == "Error: credentials not found for dummy:b@example"
    assert h.result("a-3").error is None


async def test_transient_errors_are_retried_then_reported(harness: Any) -> None:
    h = harness(transient_retries=2)
    h.script.flaky_failures = 2
    h.request("a", 0, "flaky")
    await h.start()
    await eventually(lambda: len(h.results()) == 1)
    assert h.result("a-0").error is None
    assert h.script.flaky_calls == 3

    h.script.flaky_failures = 100
    h.request("a", 1, "flaky")
    await eventually(lambda: len(h.results()) == 2)
    assert h.result("a-1").error == "Error: try again"
    assert h.script.flaky_calls == 6  # the first call and two retries


async def test_the_job_timeout_gives_up_on_a_handler_and_the_session_moves_on(
    harness: Any,
) -> None:
    h = harness(job_timeout=0.2)
    stalled = h.request("a", 0, "stall")
    h.request("a", 1, "echo")
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(2, ""))
    assert h.answered() == ["a-1"]  # a timed-out request gets no answer
    assert h.script.started == ["a-0", "a-1"]
    assert stalled.activity_id not in h.attempts.abandoned  # it counts: it was tried


async def test_a_suspect_is_rerun_alone_and_its_session_is_not_told(harness: Any) -> None:
    """The process died while many requests ran: none is to blame yet."""
    h = harness(max_attempts=3)
    suspect = h.request("a", 0, "echo")
    h.attempts.counts[suspect.activity_id] = 1  # it was running when the process died
    await h.start()
    await eventually(lambda: len(h.results()) == 1)
    assert not [r for r in h.replies() if isinstance(r, PlatformEvent)]
    assert h.script.attempts["a-0"] == 2
    assert h.result("a-0").error is None
    assert h.attempts.charges[suspect.activity_id] == 1  # charged while it ran alone


async def test_a_request_that_crashed_alone_is_announced_and_retried(harness: Any) -> None:
    h = harness(max_attempts=3)
    culprit = h.request("a", 0, "echo")
    h.attempts.counts[culprit.activity_id] = 2
    h.attempts.charges[culprit.activity_id] = 1  # it ended the process while alone
    await h.start()
    await eventually(lambda: len(h.results()) == 1)
    (notice,) = [r for r in h.replies() if isinstance(r, PlatformEvent)]
    assert notice.session_id == "a"
    assert notice.error == f"Error: session thread closed unexpectedly: {EXIT_CODE}"
    assert h.result("a-0").error is None
    assert h.attempts.charges[culprit.activity_id] == 2


async def test_suspects_are_never_dead_lettered_however_often_they_were_seen(
    harness: Any,
) -> None:
    """Crashes beside other requests are not charged, so only charges reach the limit."""
    h = harness(max_attempts=2)
    seen = h.request("a", 0, "echo")
    h.attempts.counts[seen.activity_id] = 5
    await h.start()
    await eventually(lambda: len(h.results()) == 1)
    assert h.result("a-0").error is None
    assert not [s for s in h.kafka.produced if s.topic == h.dead_letters]


async def test_a_request_waiting_behind_a_suspect_is_not_counted(harness: Any) -> None:
    """Only requests that entered the gate count an attempt: one that waited behind a
    suspect running alone did not run, so a crash then does not make it a suspect."""
    h = harness(max_attempts=3)
    suspect = h.request("a", 0, "hold")
    waiting = h.request("b", 0, "echo")
    h.attempts.counts[suspect.activity_id] = 1
    await h.start()
    await eventually(lambda: "a-0" in h.script.started)
    assert h.attempts.counts[waiting.activity_id] == 0
    assert "b-0" not in h.script.started
    h.script.release.set()
    await eventually(lambda: len(h.results()) == 2)
    assert h.attempts.counts[waiting.activity_id] == 1


async def test_a_poison_request_is_dead_lettered_after_the_attempt_limit(harness: Any) -> None:
    h = harness(max_attempts=3)
    poison = h.request("a", 0, "echo")
    h.request("a", 1, "echo")
    h.attempts.counts[poison.activity_id] = 4
    h.attempts.charges[poison.activity_id] = 3  # it has ended the process three times alone
    crashes = dead_letters_total("crash")
    await h.start()
    await eventually(lambda: len(h.results()) == 2 and h.committed() == OffsetAndMetadata(2, ""))
    assert h.script.started == ["a-1"]  # never handed to the platform again
    error = h.result("a-0").error
    assert error == (
        "Error: request abandoned after 3 attempts: "
        f"session thread closed unexpectedly: {EXIT_CODE}"
    )
    (dead,) = [s for s in h.kafka.produced if s.topic == h.dead_letters]
    headers = dict(dead.headers)
    assert headers["sockethub-attempts"] == b"3"
    assert headers["sockethub-reason"] == b"crash"
    assert dead_letters_total("crash") == crashes + 1
    assert headers["sockethub-exit-code"] == EXIT_CODE.encode()
    assert headers["sockethub-source"] == f"{h.kafka.topic}/0/0".encode()
    dead_request = h.codec.decode(dead.value, dead.headers)
    assert isinstance(dead_request, Request)
    assert dead_request.activity_id == poison.activity_id
    notices = [r for r in h.replies() if isinstance(r, PlatformEvent)]
    assert len(notices) == 1


def lag_gauge(partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "sockethub_runner_consumer_lag", {"platform": "dummy", "partition": str(partition)}
    )


async def test_consumer_lag_counts_requests_not_yet_finished(harness: Any) -> None:
    """Lag is measured from what the runner finished, not from what it fetched: a held
    request and the requests queued behind it in its lane all count."""
    h = harness(request_partitions=1)
    h.request("a", 0, "hold")
    for n in range(1, 4):
        h.request("a", n)
    running = await h.start()
    await eventually(lambda: "a-0" in h.script.started)
    assert await running.runner.measure_lag() == {0: 4}
    assert lag_gauge(0) == 4
    h.script.release.set()
    await eventually(lambda: h.committed() == OffsetAndMetadata(4, ""))
    assert await running.runner.measure_lag() == {0: 0}
    await running.consumer.rebalance(set())
    assert lag_gauge(0) is None  # a partition given away is reported by its new owner


async def test_an_undecodable_record_is_dead_lettered_as_it_was(harness: Any) -> None:
    h = harness()
    h.kafka.append(0, b"not avro", [], b"x")
    h.request("a", 1)
    undecodable = dead_letters_total("undecodable")
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(2, ""))
    (dead,) = [s for s in h.kafka.produced if s.topic == h.dead_letters]
    assert dead.value == b"not avro"
    assert dict(dead.headers)["sockethub-error"].startswith(b"undecodable request")
    assert dict(dead.headers)["sockethub-reason"] == b"undecodable"
    assert dead_letters_total("undecodable") == undecodable + 1
    assert h.answered() == ["a-1"]


@pytest.mark.parametrize(
    "route", ["t.requests.dummy", "t.deadletter.dummy", "other.replies.gw", "t.audit"]
)
async def test_a_request_routed_outside_the_reply_topics_is_dead_lettered(
    harness: Any, route: str
) -> None:
    h = harness()
    h.request("evil", 1, reply_route=route)
    h.request("a", 1)
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(2, ""))
    assert {s.topic for s in h.kafka.produced} == {REPLIES, h.dead_letters}
    (dead,) = [s for s in h.kafka.produced if s.topic == h.dead_letters]
    error = dict(dead.headers)["sockethub-error"]
    assert error == f"reply route {route!r} is not a reply topic of this deployment".encode()
    assert dict(dead.headers)["sockethub-reason"] == b"foreign_reply_route"
    assert h.answered() == ["a-1"]
    assert h.script.started == ["a-1"]


async def test_an_unsealed_request_is_dead_lettered_when_keys_are_set(harness: Any) -> None:
    h = harness(log_keys=f"k1:{KEY_A}")
    h.request("plain", 1, codec=Codec())
    h.request("a", 1)
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(2, ""))
    (dead,) = [s for s in h.kafka.produced if s.topic == h.dead_letters]
    assert dict(dead.headers)["sockethub-error"].startswith(
        b"undecodable request: unsealed request record refused"
    )
    assert h.answered() == ["a-1"]
    assert h.script.started == ["a-1"]


async def test_finished_offsets_above_the_commit_point_are_skipped_after_a_restart(
    harness: Any,
) -> None:
    h = harness()
    held = h.request("a", 0, "hold")
    for session in "bcd":
        h.request(session, 0)
    first = await h.start()
    # a-0 holds the commit point; b, c and d finish above it.
    await eventually(lambda: h.committed() == OffsetAndMetadata(0, "sh1:1-3"))
    await first.stop()  # gives a-0 back (not a crash)
    assert h.attempts.abandoned == [held.activity_id]
    assert sorted(h.answered()) == ["b-0", "c-0", "d-0"]

    h.script.release.set()
    h.kafka.unavailable = 2  # the coordinator answers the offset fetch on the third try
    fetches = h.kafka.offset_fetches
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(4, ""))
    assert Counter(h.answered()) == {"a-0": 1, "b-0": 1, "c-0": 1, "d-0": 1}
    assert h.kafka.offset_fetches >= fetches + 3
    assert h.script.started == ["a-0", "b-0", "c-0", "d-0", "a-0"]
    assert h.script.attempts["a-0"] == 1  # the give-back was not counted as a crash


async def test_partitions_revoked_mid_flight_go_to_the_next_owner_unanswered(
    harness: Any,
) -> None:
    h = harness()
    held = h.request("a", 0, "hold", partition=0)
    h.request("a", 1, "echo", partition=0)  # queued behind a-0 in its session's lane
    h.request("b", 0, "echo", partition=1)
    first = await h.start()
    await eventually(lambda: "a-0" in h.script.started and h.answered() == ["b-0"])

    await first.consumer.rebalance(keep={1})
    assert h.script.revoked == [{0, 1}]
    assert h.script.assigned == [{0, 1}, {1}]
    assert h.attempts.abandoned == [held.activity_id]
    assert h.answered() == ["b-0"]
    committed = h.committed(0)
    assert committed is None or committed.offset == 0

    h.script.release.set()
    await h.start(owns={0})
    h.request("b", 1, "echo", partition=1)  # still served by the first runner
    await eventually(lambda: h.committed(0) == OffsetAndMetadata(2, "") and len(h.results()) == 4)
    assert Counter(h.answered()) == {"a-0": 1, "a-1": 1, "b-0": 1, "b-1": 1}
    assert h.script.started.count("a-0") == 2 and h.script.started.count("a-1") == 1
    assert [c for c in h.answered() if c.startswith("a")] == ["a-0", "a-1"]


async def test_fetching_waits_while_max_buffered_requests_are_unfinished(harness: Any) -> None:
    h = harness(max_buffered=2)
    for session in "abcde":
        h.request(session, 0, "hold")
    running = await h.start(batch=1)
    await eventually(lambda: len(h.script.started) == 2)
    await asyncio.sleep(0.1)  # room for the run loop to fetch more, if it would
    assert running.consumer.positions[h.tp()] == 2
    assert len(h.script.started) == 2
    h.script.release.set()
    await eventually(lambda: h.committed() == OffsetAndMetadata(5, ""))
    assert sorted(h.answered()) == ["a-0", "b-0", "c-0", "d-0", "e-0"]


async def test_a_partition_whose_commit_metadata_grows_too_wide_is_paused(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "PAUSE_METADATA_CHARS", 5)
    h = harness()
    h.request("a", 0, "hold")
    for session in "bcd":
        h.request(session, 0)
    running = await h.start()
    await eventually(lambda: h.tp() in running.consumer.paused)
    assert h.committed() == OffsetAndMetadata(0, "sh1:1-3")  # wider than the limit of 5
    h.request("e", 0)
    await asyncio.sleep(0.05)
    assert "e-0" not in h.script.started  # not fetched while paused

    h.script.release.set()
    await eventually(lambda: h.committed() == OffsetAndMetadata(5, ""))
    assert running.consumer.resumed == [h.tp()]
    assert sorted(h.answered()) == ["a-0", "b-0", "c-0", "d-0", "e-0"]


async def test_a_control_request_reaches_the_platform_and_is_not_answered(harness: Any) -> None:
    h = harness()
    h.request("a", 0, "announce")
    h.request("a", 1, "close", kind=RequestKind.SESSION_CLOSED)
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(2, ""))
    assert h.script.closed == ["a"]
    replies = h.replies()
    assert [type(r).__name__ for r in replies] == ["PlatformEvent", "Result"]
    event = replies[0]
    assert isinstance(event, PlatformEvent) and event.verb == "announce"
    assert event.reply_route == REPLIES


async def test_without_transactions_offsets_are_committed_after_the_answers(
    harness: Any,
) -> None:
    h = harness(transactions=False)
    sent = [h.request("a", n) for n in range(3)]
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(3, ""))
    assert h.answered() == ["a-0", "a-1", "a-2"]
    await eventually(lambda: len(h.attempts.done_ids) == 3)
    assert h.attempts.done_ids == [r.activity_id for r in sent]


async def test_a_request_already_answered_is_skipped(harness: Any) -> None:
    h = harness()
    answered = h.request("a", 0)
    h.request("a", 1)
    h.attempts.counts[answered.activity_id] = DONE
    await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(2, ""))
    assert h.answered() == ["a-1"]
    assert h.script.started == ["a-1"]


def test_fakes_cover_what_the_runner_calls() -> None:
    """The fakes stand in for the real classes: they must offer the methods used on them."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    pairs: list[tuple[type, type, list[str]]] = [
        (FakeConsumer, AIOKafkaConsumer, ["subscribe", "start", "stop", "getmany",
                                          "assignment", "pause", "resume", "commit"]),
        (FakeProducer, AIOKafkaProducer, ["start", "stop", "begin_transaction", "send",
                                          "send_offsets_to_transaction",
                                          "commit_transaction", "abort_transaction"]),
        (FakeAdmin, AIOKafkaAdminClient, ["start", "close", "list_consumer_group_offsets"]),
        (FakeAttempts, Attempts, ["begin", "abandon", "done", "last_exit_code"]),
    ]  # fmt: skip
    for fake, real, methods in pairs:
        for method in methods:
            assert hasattr(real, method), (real, method)
            assert hasattr(fake, method), (fake, method)


async def test_the_runner_is_ready_once_its_group_assignment_reached_it(harness: Any) -> None:
    h = harness()
    running = await h.start()
    await eventually(lambda: running.runner.joined)
    status = running.runner.status()
    assert status["ready"] is True and status["consumer"] is True
    assert status["partitions"] == sorted(status["partitions"])


async def test_an_idle_runner_fetches_without_waiting_for_bytes(harness: Any) -> None:
    """Below kafka_batch_above_rate the runner's fetches return at the first record; the
    configured minimum is only for busy spells (sockethub.runtime.adaptive)."""
    h = harness()
    fetcher = SimpleNamespace(_fetch_min_bytes=h.settings.kafka_fetch_min_bytes)
    running = await h.start()
    running.consumer._fetcher = fetcher
    h.request("a", 1)
    await eventually(lambda: h.committed() == OffsetAndMetadata(1, ""))
    assert fetcher._fetch_min_bytes == 1
    assert running.runner._committer._linger_s == h.settings.commit_gap_ms / 1000


async def test_session_resumed_moves_the_route_and_is_answered_on_the_new_one(
    harness: Any,
) -> None:
    moved = "t.replies.gw2"
    h = harness()
    h.request("a", 0, "announce")
    resume = h.request("a", 1, SESSION_RESUMED, kind=RequestKind.CREDENTIALS, reply_route=moved)
    running = await h.start()
    await eventually(lambda: h.committed() == OffsetAndMetadata(2, ""))
    assert running.runner.emit("a", {"type": "announce", "object": {"content": "later"}})
    await eventually(lambda: len([s for s in h.kafka.produced if s.topic == moved]) == 2)
    there = [h.codec.decode(s.value, s.headers) for s in h.kafka.produced if s.topic == moved]
    answer, later = there
    assert isinstance(answer, Result) and answer.activity_id == resume.activity_id
    assert isinstance(later, PlatformEvent) and later.activity["object"]["content"] == "later"
    # Everything for the old route was sent before the answer on the new one.
    assert [type(r).__name__ for r in h.replies()] == ["PlatformEvent", "Result"]
