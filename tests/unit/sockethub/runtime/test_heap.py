"""The start-up heap is frozen: the collector no longer walks it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sockethub.runtime.heap import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_alive_at_start_up_leave_the_collected_generations(unfrozen: None) -> None:
    before = Node()
    before.peer = before
    assert any(o is before for o in gc.get_objects())

    frozen = freeze_startup_heap("test")

    assert frozen == gc.get_freeze_count() > 0
    assert not any(o is before for o in gc.get_objects())
    later = Node()
    later.peer = later
    assert any(o is later for o in gc.get_objects())


def test_garbage_is_collected_before_freezing(unfrozen: None) -> None:
    cycle = Node()
    cycle.peer = cycle
    ref = weakref.ref(cycle)
    del cycle
    assert ref() is not None  # only the collector frees a cycle

    freeze_startup_heap("test")

    assert ref() is None  # collected, not frozen with the live heap
