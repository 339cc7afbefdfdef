"""The supervisor's restart policy: at once after a crash of a child that was working,
a growing backoff for one that cannot start or keeps crashing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sockethub.supervisor import Child, Supervisor


def child_cmd(tmp_path: Path, *, ready: bool) -> list[str]:
    """A child that (maybe) creates its ready file, then exits with 3."""
    code = (
        "import os, pathlib, sys\n"
        + ("pathlib.Path(os.environ['SOCKETHUB_READY_FILE']).touch()\n" if ready else "")
        + "sys.exit(3)\n"
    )
    return [sys.executable, "-c", code]


def wait_exit(sup: Supervisor, child: Child) -> float:
    """Poll until the child's exit is seen; returns the delay chosen for its restart."""
    assert child.proc is not None
    child.proc.wait(30)
    sup.poll_once()
    assert child.proc is None
    return child.next_start - time.monotonic()


def test_a_child_that_was_ready_is_restarted_at_once(tmp_path: Path) -> None:
    exits: list[int] = []
    sup = Supervisor(on_exit=lambda child, code: exits.append(code))
    child = sup.add("runner:x", child_cmd(tmp_path, ready=True), readiness=True)
    sup.start_all()
    assert wait_exit(sup, child) <= 0
    assert exits == [3]
    for _ in range(Supervisor.FAST_RESTARTS - 1):
        sup.poll_once()  # restarts it
        assert wait_exit(sup, child) <= 0
    # Crashing faster than FAST_RESTARTS a minute: backed off after all.
    sup.poll_once()
    assert wait_exit(sup, child) > 0.5


def test_a_child_that_never_got_ready_is_backed_off(tmp_path: Path) -> None:
    sup = Supervisor()
    child = sup.add("runner:x", child_cmd(tmp_path, ready=False), readiness=True)
    sup.start_all()
    first = wait_exit(sup, child)
    assert 0.5 < first <= 1.0
    child.next_start = 0.0
    sup.poll_once()
    assert wait_exit(sup, child) > 1.5  # doubled


def test_a_child_without_readiness_keeps_the_backoff(tmp_path: Path) -> None:
    sup = Supervisor()
    child = sup.add("gateway", child_cmd(tmp_path, ready=False))
    sup.start_all()
    assert child.ready_file is None
    assert wait_exit(sup, child) > 0.5
