"""The Dockerfile: there is no engine to build it here, so check what can be checked.

The files it copies into the build context must be all that ``pip install .`` needs,
and none of them may be excluded by .dockerignore.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def _copied_sources() -> list[str]:
    sources: list[str] = []
    for line in _final_stage().splitlines():
        match = re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line.strip())
        if match:
            sources += match.group(1).split()
    return sources


def test_runs_as_a_fixed_non_root_user_from_python_slim() -> None:
    stage = _final_stage()
    assert stage.startswith("python:3.11-slim")
    assert re.search(r"^USER 10001:10001$", stage, re.M)
    assert stage.index("USER 10001:10001") > stage.index("RUN pip install --no-deps")
    assert 'ENTRYPOINT ["sockethub"]' in stage
    assert "EXPOSE 10550" in stage


def test_copied_sources_are_everything_pip_install_needs() -> None:
    # Checked offline against pyproject.toml (building the wheel would need PyPI for
    # the build backend): the project file, its readme, and every package it ships.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in includes}
    assert packages == {"gateway", "platform_runners", "schemas", "sockethub"}
    needed = {"pyproject.toml", project["project"]["readme"], *packages}
    assert needed <= set(_copied_sources())
    for package in packages:
        assert (REPO / package / "__init__.py").is_file()
    # Every first-party import of the shipped code resolves inside the shipped packages.
    first_party = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    for package in packages:
        for source in (REPO / package).rglob("*.py"):
            if "node_modules" in source.parts:
                continue
            for match in re.finditer(r"^\s*(?:from|import)\s+(\w+)", source.read_text(), re.M):
                module = match.group(1)
                assert module not in first_party - packages, f"{source} imports {module}"


def test_dockerignore_keeps_sources_and_drops_local_state() -> None:
    ignored = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    for source in _copied_sources():
        assert source not in ignored
    for state in (".venv", ".sockethub", "**/node_modules", "compose/.env", ".git"):
        assert state in ignored


def test_base_images_are_pinned_by_digest() -> None:
    images = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.M)
    assert len(images) == 2
    for image in images:
        assert re.fullmatch(r"[\w.:/-]+@sha256:[0-9a-f]{64}", image), image


def test_python_is_the_minor_version_the_lock_was_resolved_for() -> None:
    makefile = (REPO / "Makefile").read_text()
    [locked] = re.findall(r"--python-version (\d+\.\d+)", makefile)
    assert _final_stage().startswith(f"python:{locked}-slim@")


def test_dependencies_come_from_the_runtime_lock_with_hashes() -> None:
    stage = _final_stage()
    lock = "RUN pip install --require-hashes -r requirements/build.lock " + (
        "-r requirements/runtime.lock"
    )
    assert lock in stage
    assert "RUN pip install --no-deps --no-build-isolation ." in stage
    assert stage.index(lock) < stage.index("RUN pip install --no-deps")
    assert {"requirements/build.lock", "requirements/runtime.lock"} <= set(_copied_sources())
    for line in stage.splitlines():
        if line.startswith("RUN pip install"):
            assert "--require-hashes" in line or "--no-deps" in line, line
