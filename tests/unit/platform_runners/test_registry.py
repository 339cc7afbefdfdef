"""Finding a platform's code: built-ins, entry points, and a clear error for unknown ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from platform_runners.dummy import DummyPlatform
from platform_runners.registry import UnknownPlatform, known_platforms, load_platform

REPO = Path(__file__).resolve().parents[3]


def test_builtin_dummy() -> None:
    assert load_platform("dummy") is DummyPlatform
    assert "dummy" in known_platforms()


def test_unknown_platform() -> None:
    with pytest.raises(UnknownPlatform, match=r"unknown platform 'nope' \(known: .*dummy"):
        load_platform("nope")


def test_runner_refuses_an_unknown_platform_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sockethub.cli", "runner", "--platform", "nope"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sockethub runner: unknown platform 'nope'")
