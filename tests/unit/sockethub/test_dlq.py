"""``sockethub dlq``'s selection rules, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.envelopes import Request
from schemas.topics import TopicLayout
from sockethub.cli import main
from sockethub.devstack.errors import StackError
from sockethub.dlq import (
    DeadLetter,
    DlqFilters,
    dead_letter_topics,
    infer_reason,
    latest_per_activity,
    select,
)
from sockethub.replay import Entry, entry_from
from sockethub.runtime.settings import CommonSettings

LAYOUT = TopicLayout(CommonSettings(topic_prefix="p"))
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def letter(
    offset: int,
    *,
    platform: str = "dummy",
    session: str = "s1",
    activity_id: str | None = "a1",
    minutes: int = 0,
    headers: dict[str, str] | None = None,
) -> DeadLetter:
    topic = LAYOUT.dead_letters(platform)
    when = T0 + timedelta(minutes=minutes)
    if activity_id is None:
        entry = Entry(topic, 0, offset, when, "undecodable", None, None, None, None,
                      problem="not a readable Sockethub record", key=session)  # fmt: skip
    else:
        request = Request(session_id=session, reply_route="p.replies.gw", platform=platform,
                          verb="exit1", activity={"type": "exit1"}, activity_id=activity_id,
                          created_at=T0 - timedelta(hours=1))  # fmt: skip
        entry = entry_from(request, topic, 0, offset)
    entry.logged_at = when
    entry.headers = headers if headers is not None else {"sockethub-reason": "crash"}
    return DeadLetter(entry)


def test_dead_letter_topics_are_this_prefix_s_only() -> None:
    existing = ["p.deadletter.dummy", "p.deadletter.irc", "p.requests.dummy", "q.deadletter.dummy"]
    assert dead_letter_topics(LAYOUT, existing, None) == ["p.deadletter.dummy", "p.deadletter.irc"]
    assert dead_letter_topics(LAYOUT, existing, "irc") == ["p.deadletter.irc"]


def test_filters_use_the_dead_letter_time_not_the_request_s() -> None:
    old, new = letter(0, minutes=0), letter(1, minutes=10, session="s2")
    since = DlqFilters(since=T0 + timedelta(minutes=5))
    assert [since.matches(d) for d in (old, new)] == [False, True]
    until = DlqFilters(until=T0 + timedelta(minutes=5))
    assert [until.matches(d) for d in (old, new)] == [True, False]
    assert [DlqFilters(session="s2").matches(d) for d in (old, new)] == [False, True]
    assert DlqFilters(platform="irc").matches(old) is False
    assert DlqFilters(platform="dummy").matches(old) is True


def test_reason_from_the_header_or_else_from_the_error_text() -> None:
    assert letter(0).reason == "crash"
    raw = letter(1, activity_id=None, headers={"sockethub-error": "undecodable request: x"})
    assert raw.reason == "undecodable"
    assert DlqFilters(reasons=frozenset({"crash"})).matches(raw) is False
    assert DlqFilters(reasons=frozenset({"crash", "undecodable"})).matches(raw) is True
    assert infer_reason("not a request: Result") == "not_a_request"
    assert infer_reason("reply route 'x' is not a reply topic of this deployment") == (
        "foreign_reply_route"
    )
    assert infer_reason("Error: request abandoned after 3 attempts: ...") == "crash"
    assert infer_reason("something else") == "unknown"


def test_the_id_names_platform_partition_and_offset() -> None:
    d = letter(7, platform="irc")
    assert d.id == "irc:0:7" and d.session_id == "s1" and d.activity_id == "a1"
    d.entry.headers["sockethub-source"] = "p.requests.irc/4/123"
    assert d.source_partition(LAYOUT) == 4
    d.entry.headers["sockethub-source"] = "p.requests.dummy/4/123"  # not its own topic
    assert d.source_partition(LAYOUT) is None


def test_select_by_id_or_activity_takes_the_latest_of_an_activity() -> None:
    first, again, other = letter(0), letter(1, minutes=5), letter(2, activity_id="a2")
    letters = [first, again, other]
    assert select(letters, ["a1"]) == [again]
    assert select(letters, ["dummy:0:0", "a2"]) == [first, other]
    with pytest.raises(StackError, match="no dead letter with id nope"):
        select(letters, ["a1", "nope"])
    raw = letter(3, activity_id=None)
    assert latest_per_activity([*letters, raw]) == [other, raw, again]  # by dead-letter time


def test_the_redrive_arguments_are_checked_before_any_connection(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["dlq", "redrive"]) == 1
    assert "give dead-letter ids, or --all --platform P" in capsys.readouterr().err
    assert main(["dlq", "redrive", "--all"]) == 1
    assert "--all needs --platform" in capsys.readouterr().err
    assert main(["dlq", "redrive", "dummy:0:1", "--all", "--platform", "dummy"]) == 1
