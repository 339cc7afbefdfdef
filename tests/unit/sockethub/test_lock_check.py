"""sockethub/devstack/lock_check.py, and the committed locks against pyproject.toml."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from sockethub.devstack import lock_check

ROOT = lock_check.ROOT
REQ = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)(?:\s*;\s*([^\\]+?))?\s*\\?$", re.M)
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The libraries whose internals the gateway or the runner touch: bounded above at the lock.
COUPLED = ("python-socketio", "python-engineio", "uvicorn", "websockets", "aiokafka")


def pins(lock: str) -> dict[str, Version]:
    text = (REQ / lock).read_text()
    return {canonicalize_name(name): Version(version) for name, version, _ in PIN.findall(text)}


def requirements(group: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    lines = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(line) for line in lines]


def test_the_committed_locks_match_pyproject() -> None:
    assert lock_check.problems(ROOT) == []


@pytest.mark.parametrize(
    ("lock", "groups"), [("runtime.lock", [None]), ("test.lock", [None, "test"])]
)
def test_every_requirement_is_pinned_at_a_version_it_allows(
    lock: str, groups: list[str | None]
) -> None:
    pinned = pins(lock)
    for group in groups:
        for req in requirements(group):
            name = canonicalize_name(req.name)
            assert name in pinned, f"{req} is not in requirements/{lock}: run `make lock`"
            assert req.specifier.contains(pinned[name], prereleases=True), (
                f"requirements/{lock} pins {name}=={pinned[name]}, outside {req}: run `make lock`"
            )


def test_the_build_backend_is_pinned_at_a_version_the_build_system_allows() -> None:
    pinned = pins("build.lock")
    for line in PYPROJECT["build-system"]["requires"]:
        req = Requirement(line)
        assert req.specifier.contains(pinned[canonicalize_name(req.name)])


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    runtime, test = pins("runtime.lock"), pins("test.lock")
    differing = {name: (v, test.get(name)) for name, v in runtime.items() if test.get(name) != v}
    assert differing == {}


def test_coupled_libraries_are_bounded_at_their_locked_version() -> None:
    pinned = pins("runtime.lock")
    bounds = {canonicalize_name(r.name): r.specifier for r in requirements()}
    for name in COUPLED:
        upper = [s for s in bounds[name] if s.operator in ("<=", "==")]
        assert upper, f"{name} has no upper bound in pyproject.toml"
        assert Version(upper[0].version) == pinned[name], (
            f"{name}'s upper bound {upper[0]} is not the locked {pinned[name]}"
        )


@pytest.mark.parametrize("lock", lock_check.LOCKS)
def test_every_pin_carries_a_hash(lock: str) -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (REQ / lock).read_text())
    entries = [block for block in blocks if PIN.match(block)]
    assert entries
    assert all("--hash=sha256:" in block for block in entries)


def _copy_inputs(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REQ, tmp_path / "requirements")
    return tmp_path


def test_an_edited_dependency_list_is_named_with_its_fix(tmp_path: Path) -> None:
    root = _copy_inputs(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.10"', '"orjson>=3.11"'))
    [problem] = lock_check.problems(root)
    assert "changed since the lock was made" in problem
    assert "make lock" in problem


def test_edits_outside_the_dependency_tables_keep_the_lock(tmp_path: Path) -> None:
    root = _copy_inputs(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.1"'))
    assert lock_check.problems(root) == []


def test_a_missing_lock_is_named(tmp_path: Path) -> None:
    root = _copy_inputs(tmp_path)
    (root / "requirements" / "runtime.lock").unlink()
    assert lock_check.problems(root) == [
        "requirements/ lacks runtime.lock: run `make lock` and commit requirements/"
    ]


def test_the_script_exits_non_zero_on_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_inputs(tmp_path)
    (root / "requirements" / "build.in").write_text("setuptools>=78\n")
    monkeypatch.setattr(lock_check, "ROOT", root)
    assert lock_check.main([]) == 1
    assert "make lock" in capsys.readouterr().err
    lock_check.write(root)
    assert lock_check.main([]) == 0
