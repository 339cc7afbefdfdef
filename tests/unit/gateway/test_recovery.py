"""Recovery offsets and index entries, without services."""

from __future__ import annotations

from gateway.kafka_bridge import parse_position, position
from gateway.recovery import Entry


def test_a_position_round_trips_and_junk_is_refused() -> None:
    assert parse_position(position("p.replies.gw-1", 2, 41)) == ("p.replies.gw-1", 2, 41)
    for junk in (None, 7, "", "a|b|c", "t|1", "t|-1|2", "x" * 500, ["t", 1, 2]):
        assert parse_position(junk) is None


def test_an_entry_round_trips_through_its_json() -> None:
    entry = Entry("sid", [("p.replies.a", {0: 1, 2: 9}), ("p.replies.b", {1: 0})], [("irc", "k")])
    assert Entry.load(entry.dump()) == entry
