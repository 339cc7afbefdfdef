"""Recovery offsets and index entries, without services."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from gateway.kafka_bridge import parse_position, position
from gateway.recovery import Entry, RecoveryIndex


def test_a_position_round_trips_and_junk_is_refused() -> None:
    assert parse_position(position("p.replies.gw-1", 2, 41)) == ("p.replies.gw-1", 2, 41)
    for junk in (None, 7, "", "a|b|c", "t|1", "t|-1|2", "x" * 500, ["t", 1, 2]):
        assert parse_position(junk) is None


def test_an_entry_round_trips_through_its_json() -> None:
    entry = Entry("sid", [("p.replies.a", {0: 1, 2: 9}), ("p.replies.b", {1: 0})], [("irc", "k")])
    assert Entry.load(entry.dump()) == entry


def test_an_entry_never_outlives_the_connections_the_runners_keep_for_it() -> None:
    """Runners release a killed holder's connections once its liveness key (expiry
    ``heartbeat_ttl``) has been missing for the window: a connected entry expires within
    the window plus at most that expiry of its last refresh, and a stopped holder's parked
    entry within the window."""
    index = RecoveryIndex(cast(Redis, None), "p", window=120, refresh_s=5.0)
    assert index.refresh_s == 5.0
    assert index.live_ttl == 125
    assert index.stopped_ttl == 120
    small = RecoveryIndex(cast(Redis, None), "p", window=2, refresh_s=5.0)
    assert small.refresh_s == 1.0 and small.live_ttl == 3
    # A live holder's own timer ends a dropped session: its entry must outlast the timer.
    assert index.parked_ttl > index.window and small.parked_ttl > small.window
