"""Offset tracking with out-of-order completion."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from platform_runners.offsets import PartitionTracker, decode_done, encode_done


def test_commit_point_is_the_lowest_unfinished_offset() -> None:
    tracker = PartitionTracker(committed=10)
    assert tracker.commit_point() is None  # nothing new since the committed point
    for offset in (10, 11, 12, 14):  # 13 is a transaction marker: offsets have gaps
        assert tracker.received(offset)
    tracker.finished(11)
    tracker.finished(14)
    assert tracker.commit_point() == (10, "sh1:1,4")
    tracker.finished(10)
    assert tracker.commit_point() == (12, "sh1:2")
    tracker.committed((12, "sh1:2"))
    assert tracker.commit_point() is None
    tracker.finished(12)
    assert tracker.commit_point() == (15, "")


def test_a_new_owner_skips_what_the_metadata_says_is_done() -> None:
    tracker = PartitionTracker(committed=10, metadata="sh1:1-2,5")
    assert tracker.received(10)
    assert not tracker.received(11)
    assert not tracker.received(12)
    assert tracker.received(13)
    assert tracker.commit_point() is None  # still exactly what is committed
    tracker.finished(10)
    # 15 has not arrived yet, but must stay in the metadata until it does.
    assert tracker.commit_point() == (13, "sh1:2")
    assert not tracker.received(15)
    tracker.finished(13)
    assert tracker.commit_point() == (16, "")


def test_refetched_offsets_are_not_handled_twice() -> None:
    tracker = PartitionTracker(committed=5)
    assert not tracker.received(4)
    assert tracker.received(5)
    assert not tracker.received(5)


def test_unknown_metadata_means_nothing_done() -> None:
    assert decode_done(0, "something else") == set()
    assert decode_done(0, "sh1:x") == set()
    assert decode_done(0, "sh1:0") == set()
    assert decode_done(0, None) == set()


@given(st.integers(0, 10**12), st.sets(st.integers(1, 500)))
def test_metadata_round_trips(base: int, rel: set[int]) -> None:
    done = {base + r for r in rel}
    assert decode_done(base, encode_done(base, done)) == done


@given(st.permutations(list(range(30))))
def test_any_completion_order_ends_at_the_end(order: list[int]) -> None:
    tracker = PartitionTracker()
    for offset in range(30):
        tracker.received(offset)
    for offset in order:
        tracker.finished(offset)
        point = tracker.commit_point()
        if point is not None:
            base, meta = point
            done_ahead = decode_done(base, meta)
            finished = set(order[: order.index(offset) + 1])
            assert base == min(set(range(30)) - finished, default=30)
            assert done_ahead == {o for o in finished if o > base}
            tracker.committed(point)
    assert tracker.commit_point() is None
    assert tracker.open_count == 0
